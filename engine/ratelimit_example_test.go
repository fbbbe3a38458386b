package engine_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// The provider client sends its requests through the Metrics' transport, so
// that they are counted and held to the provider's request budget, shared
// by every process on the database (here 50 requests per second).
func ExampleMetrics_Transport() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()
	ids := fake.Seed(1)

	m := engine.NewMetrics()
	o := fake.Options()
	client, err := stackauth.New(stackauth.Config{
		ProjectID: o.ProjectID, SecretServerKey: o.SecretServerKey, WebhookSecret: o.WebhookSecret,
		APIURL:     fake.URL(),
		HTTPClient: &http.Client{Transport: m.Transport("stackauth", nil)},
		Redactor:   provider.NewRedactor(o.SecretServerKey, o.WebhookSecret),
	})
	if err != nil {
		log.Fatal(err)
	}
	eng, err := engine.New(ctx, pool, engine.Config{
		Providers:  []engine.Provider{{Client: client}},
		Metrics:    m,
		RateLimits: map[string]float64{"stackauth": 50},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := client.FetchUser(ctx, ids[0]); err != nil {
		log.Fatal(err)
	}
	st, err := eng.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	rl := st.Providers[0].RateLimit
	fmt.Printf("limit %v/s, %d request granted\n", rl.Limit, rl.Granted)
	// Output: limit 50/s, 1 request granted
}
