package clerk_test

import (
	"context"
	"fmt"
	"log"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// Example configures a client from the environment variables (here those of
// a fake), fetches a user, walks the user list and parses a webhook.
func Example() {
	fake := clerkfake.New(clerkfake.Options{})
	defer fake.Close()
	ids := fake.Seed(1200)
	env := fake.Env()

	c, err := clerk.New(clerk.Config{
		SecretKey:     env["CLERK_SECRET_KEY"],
		WebhookSecret: env["CLERK_WEBHOOK_SECRET"],
		APIURL:        env["CLERK_API_URL"],
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

	body, header := fake.Webhook(provider.EventUserDeleted, ids[1])
	ev, err := c.ParseWebhook(body, header)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Type, ev.Kind == provider.EventUserDeleted, ev.UserID == ids[1])
	// Output:
	// clerk true
	// 1200 users in 3 pages
	// user.deleted true true
}
