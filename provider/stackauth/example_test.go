package stackauth_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// Construct a Client from the STACK_* settings and fetch one user. Here the
// settings point at a fake Stack Auth server; in production APIURL is left
// empty (https://api.stack-auth.com) or set to a self-hosted Stack Auth.
func Example() {
	fake := stackfake.New(stackfake.Options{Seed: 42})
	defer fake.Close()
	id := fake.CreateUser()
	env := fake.Env()

	client, err := stackauth.New(stackauth.Config{
		ProjectID:       env["STACK_PROJECT_ID"],
		SecretServerKey: env["STACK_SECRET_SERVER_KEY"],
		WebhookSecret:   env["STACK_WEBHOOK_SECRET"],
		APIURL:          env["STACK_API_URL"],
		HTTPClient:      http.DefaultClient, // optional; default: a client with a 15 s timeout
	})
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	user, err := client.FetchUser(context.Background(), id)
	if err != nil {
		fmt.Println("fetch:", err)
		return
	}
	fmt.Println(client.Name(), user.ID == id, user.CreatedAt != nil, len(user.Raw) > 0)
	// Output: stackauth true true true
}
