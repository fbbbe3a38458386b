package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// TestMain stops the throwaway PostgreSQL cluster pgtest may start.
func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m))
}

// exampleDB returns a pool on a fresh, empty database, and a function that
// closes the pool and drops the database. In an application, the pool is
// the one it already has.
func exampleDB(ctx context.Context) (*pgxpool.Pool, func()) {
	url, drop, err := pgtest.CreateDatabase(ctx)
	if err != nil {
		log.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	return pool, func() {
		pool.Close()
		if err := drop(); err != nil {
			log.Print(err)
		}
	}
}

// stackClient configures the Stack Auth client in code, here for a fake
// Stack Auth API (in production: the project's id, secret server key and
// webhook secret, and no APIURL).
func stackClient(fake *stackfake.Fake) *stackauth.Client {
	o := fake.Options()
	c, err := stackauth.New(stackauth.Config{
		ProjectID:       o.ProjectID,
		SecretServerKey: o.SecretServerKey,
		WebhookSecret:   o.WebhookSecret,
		APIURL:          fake.URL(),
		// Scrubs the credentials from any error text the client makes.
		Redactor: provider.NewRedactor(o.SecretServerKey, o.WebhookSecret),
	})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// Configure a provider in code and migrate: usersync's tables (and River's)
// go to the internal schema, the users_sync table to the provider's schema.
func Example_migrate() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()

	eng, err := engine.New(ctx, pool, engine.Config{
		Providers:      []engine.Provider{{Client: stackClient(fake), Schema: "neon_identity"}},
		InternalSchema: "usersync",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := eng.Check(ctx); err != nil {
		log.Fatal(err)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM neon_identity.users_sync").Scan(&rows); err != nil {
		log.Fatal(err)
	}
	fmt.Println("providers:", eng.Providers())
	fmt.Println("users_sync rows:", rows)
	// Output:
	// providers: [stackauth]
	// users_sync rows: 0
}

// WelcomeArgs is the application's own job, worked by the same River client
// as usersync's.
type WelcomeArgs struct {
	Email string `json:"email"`
}

// Kind implements river.JobArgs.
func (WelcomeArgs) Kind() string { return "welcome_email" }

// WelcomeWorker is the application's own worker.
type WelcomeWorker struct {
	river.WorkerDefaults[WelcomeArgs]
	sent chan string
}

// Work implements river.Worker.
func (w *WelcomeWorker) Work(ctx context.Context, job *river.Job[WelcomeArgs]) error {
	w.sent <- job.Args.Email
	return nil
}

// Embed usersync in an application that already runs River and an HTTP
// server: usersync's workers and queues join the application's River
// client, its webhook handler the application's mux. A signed webhook from
// (a fake) Stack Auth becomes a users_sync row.
func Example_embed() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()

	// The application already runs River in its own schema, app_river, and
	// migrates River itself.
	const riverSchema = "app_river"
	if err := migrateRiver(ctx, pool, riverSchema); err != nil {
		log.Fatal(err)
	}
	// usersync's jobs join the application's in app_river; usersync's own
	// tables live in the schema usersync.
	eng, err := engine.New(ctx, pool, engine.Config{
		Providers:           []engine.Provider{{Client: stackClient(fake), Schema: "neon_identity"}},
		InternalSchema:      "usersync",
		RiverSchema:         riverSchema,
		SkipRiverMigrations: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	// Close after the HTTP server and River have stopped (defers run in
	// reverse order), before the pool closes.
	defer eng.Close()
	// usersync's tables and users_sync; River's are the application's.
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	// The application's River client, with its own worker and queue.
	welcome := &WelcomeWorker{sent: make(chan string, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, welcome)
	rc := &river.Config{
		Schema:  riverSchema,
		Workers: workers,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
	}
	if err := eng.ConfigureRiver(rc); err != nil {
		log.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := client.Stop(ctx); err != nil {
			log.Print(err)
		}
	}()
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// The application's mux, with its own routes and usersync's webhooks.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	hooks, err := eng.WebhookHandler(client)
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("/webhooks/{provider}", hooks)
	mux.Handle("GET /metrics", eng.MetricsHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// Await the row by its change notification (sent when it commits).
	conn, err := pool.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN neon_identity_users_sync"); err != nil {
		log.Fatal(err)
	}

	// A user signs up; Stack Auth sends a signed webhook.
	id := fake.CreateUser()
	body, header := fake.Webhook(provider.EventUserChanged, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/webhooks/stackauth", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("webhook:", resp.StatusCode)

	if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
		log.Fatal(err)
	}
	var name, email string
	err = pool.QueryRow(ctx, "SELECT name, email FROM neon_identity.users_sync WHERE id = $1", id).Scan(&name, &email)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("users_sync: %s <%s>\n", name, email)

	// The application's own jobs run on the same client.
	if _, err := client.Insert(ctx, WelcomeArgs{Email: email}, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println("welcome email to:", <-welcome.sent)

	// usersync's jobs are in the application's River schema.
	var syncJobs int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM app_river.river_job WHERE kind = 'sync_user'").Scan(&syncJobs); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sync_user jobs in app_river:", syncJobs)
	// Output:
	// webhook: 200
	// users_sync: Ibrahim Kowalski <ibrahimkowalski@example.org>
	// welcome email to: ibrahimkowalski@example.org
	// sync_user jobs in app_river: 1
}

// migrateRiver is the application's own River migration (usersync's
// Migrate does it too unless Config.SkipRiverMigrations).
func migrateRiver(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema})
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

// startRiver starts a River client that works usersync's jobs in the
// schema usersync migrated, and returns the function that stops it.
func startRiver(ctx context.Context, pool *pgxpool.Pool, eng *engine.Engine) func() {
	rc := &river.Config{Schema: engine.DefaultInternalSchema}
	if err := eng.ConfigureRiver(rc); err != nil {
		log.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	return func() {
		if err := client.Stop(ctx); err != nil {
			log.Print(err)
		}
	}
}

// Start a full backfill of a provider and wait for its run to end, as
// `usersync backfill --wait` does: every user the provider lists is
// written to users_sync, and users_sync rows the provider no longer has
// are marked deleted (a run that would delete too many ends held instead).
// River, here in the same process, works the backfill's jobs.
func ExampleEngine_StartBackfill() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()
	fake.Seed(25)

	eng, err := engine.New(ctx, pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	defer startRiver(ctx, pool, eng)()

	b, err := eng.StartBackfill(ctx, "stackauth")
	if err != nil {
		log.Fatal(err)
	}
	run, err := b.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("run %s: %d users listed, %d written, %d marked deleted\n", run.Status, run.Listed, run.Written, run.Deleted)

	st, err := eng.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p := st.Providers[0]
	fmt.Printf("%s: %d users in %s.users_sync, last complete run %d, healthy: %v\n",
		p.Provider, p.Users, p.Schema, p.LastCompleteRun.ID, st.Healthy())
	// Output:
	// run completed: 25 users listed, 25 written, 0 marked deleted
	// stackauth: 25 users in neon_identity.users_sync, last complete run 1, healthy: true
}

// Read each provider's status, as `usersync status` shows it: here a
// freshly migrated database, whose provider has never completed a
// backfill, so it needs attention.
func ExampleEngine_Status() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()

	eng, err := engine.New(ctx, pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	st, err := eng.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range st.Providers {
		fmt.Printf("%s: %d users, last webhook %v, last complete backfill %v\n", p.Provider, p.Users, p.LastWebhookAt, p.LastCompleteRun)
	}
	fmt.Println("healthy:", st.Healthy())
	for _, a := range st.Attention {
		fmt.Println("attention:", a)
	}
	// Output:
	// stackauth: 0 users, last webhook <nil>, last complete backfill <nil>
	// healthy: false
	// attention: stackauth: no backfill has completed yet (run 'usersync backfill --wait')
}

// Mount the webhook handler on a mux served by a process that works no
// jobs: its River client only inserts, and workers elsewhere (the usersync
// command's `worker`, or another process of the application) work them.
// The handler answers 200 once the sync job is committed, 401 to a delivery
// whose signature does not verify.
func Example_webhookHandler() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()

	eng, err := engine.New(ctx, pool, engine.Config{
		Providers: []engine.Provider{{Client: stackClient(fake)}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	rc := &river.Config{Schema: engine.DefaultInternalSchema}
	eng.ConfigureRiverInserts(rc)
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), rc)
	if err != nil {
		log.Fatal(err)
	}
	hooks, err := eng.WebhookHandler(client)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/{provider}", hooks)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(body []byte, header http.Header) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/webhooks/stackauth", bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	id := fake.CreateUser()
	body, header := fake.Webhook(provider.EventUserChanged, id)
	fmt.Println("signed:", post(body, header))
	forged := bytes.Replace(body, []byte(`"user.created"`), []byte(`"user.updated"`), 1)
	fmt.Println("forged:", post(forged, header))

	res, err := client.JobList(ctx, river.NewJobListParams().Kinds("sync_user"))
	if err != nil {
		log.Fatal(err)
	}
	for _, j := range res.Jobs {
		fmt.Println("job:", j.Kind, j.Queue, j.State)
	}
	// Output:
	// signed: 200
	// forged: 401
	// job: sync_user sync_stackauth available
}

// Keep organizations and memberships too (the usersync command's
// USERSYNC_ORGANIZATIONS=on): Migrate creates organizations_sync and
// memberships_sync beside users_sync, and every backfill also lists the
// provider's organizations (Stack Auth's teams) with all their members;
// Wait returns once both runs have ended. An application then joins its
// users to their organizations, or writes row-level security policies on
// memberships_sync.
func ExampleConfig_organizations() {
	ctx := context.Background()
	pool, done := exampleDB(ctx)
	defer done()
	fake := stackfake.New(stackfake.Options{Seed: 1})
	defer fake.Close()
	users := fake.Seed(5)
	acme := fake.CreateOrganization(users[0]) // the creator joins silently, as in Stack Auth
	fake.AddMember(acme, users[1], "")
	fake.CreateOrganization(users[2])

	eng, err := engine.New(ctx, pool, engine.Config{
		Providers:     []engine.Provider{{Client: stackClient(fake)}},
		Organizations: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	defer startRiver(ctx, pool, eng)()

	b, err := eng.StartBackfill(ctx, "stackauth")
	if err != nil {
		log.Fatal(err)
	}
	run, err := b.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	orgs := b.OrganizationsRun()
	fmt.Printf("users run %s: %d listed; organizations run %s: %d listed\n", run.Status, run.Listed, orgs.Status, orgs.Listed)

	var members int
	if err := pool.QueryRow(ctx, `SELECT count(*)
		FROM neon_identity.memberships_sync m
		JOIN neon_identity.users_sync u ON u.id = m.user_id
		WHERE m.organization_id = $1 AND m.deleted_at IS NULL AND u.deleted_at IS NULL`, acme).Scan(&members); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the first organization has %d members\n", members)
	// Output:
	// users run completed: 5 listed; organizations run completed: 2 listed
	// the first organization has 2 members
}
