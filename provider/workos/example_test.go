package workos_test

import (
	"context"
	"fmt"
	"log"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/workos"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// Example configures a client from the environment variables (here those of
// a fake), fetches a user, walks the user list and parses a webhook.
func Example() {
	fake := workosfake.New(workosfake.Options{})
	defer fake.Close()
	ids := fake.Seed(250)
	env := fake.Env()

	c, err := workos.New(workos.Config{
		APIKey:        env["WORKOS_API_KEY"],
		WebhookSecret: env["WORKOS_WEBHOOK_SECRET"],
		APIURL:        env["WORKOS_API_URL"],
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	u, err := c.FetchUser(ctx, ids[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Name(), u.ID == ids[0])

	total, pages := 0, 0
	for cursor := ""; ; {
		page, err := c.ListUsers(ctx, cursor)
		if err != nil {
			log.Fatal(err)
		}
		total += len(page.Users)
		pages++
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	fmt.Println(total, "users in", pages, "pages")

	body, header := fake.Webhook(provider.EventUserChanged, ids[1])
	ev, err := c.ParseWebhook(body, header)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Type, ev.Kind == provider.EventUserChanged, ev.UserID == ids[1])
	// Output:
	// workos true
	// 250 users in 3 pages
	// user.created true true
}
