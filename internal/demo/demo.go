// Package demo is `usersync demo`: everything on embedded defaults (a
// throwaway PostgreSQL, a simulated provider that speaks the real API and
// sends signed webhooks, the service) with live users changing. The
// production commands do not import it; the binary adds it to its command
// table with [Command].
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/internal/app"
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgcluster"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// Command is the `usersync demo` entry of the command table.
func Command() app.Command {
	return app.Command{Name: "demo", Summary: "run everything on embedded defaults: a throwaway Postgres, a simulated Stack Auth, the service, live users", Run: Run}
}

// Run runs `usersync demo` with the arguments after the command name, until
// ctx is done or --duration has passed.
func Run(ctx context.Context, st app.IO, args []string) error {
	fs := app.NewFlags(st, "demo", `Runs everything on embedded defaults, no account needed: uses DATABASE_URL or, when unset,
starts a throwaway Postgres from the local server binaries; runs a simulated provider that
speaks the real API and sends signed webhooks; runs the service; and shows users appearing,
changing and being deleted in users_sync. Ctrl-C stops and cleans up everything.`)
	prov := fs.String("provider", "stackauth", "simulated provider: stackauth, clerk or workos")
	users := fs.Int("users", 300, "users the simulated provider starts with")
	rate := fs.Float64("rate", 4, "simulated user events per second")
	duration := fs.Duration("duration", 0, "stop after this long (0 = run until Ctrl-C)")
	orgs := fs.Bool("organizations", false, "also simulate organizations (Stack Auth teams) and their members, synced into organizations_sync and memberships_sync (USERSYNC_ORGANIZATIONS=on)")
	if err := app.ParseFlags(fs, args, st); err != nil {
		return err
	}
	if *users < 0 || *users > 1_000_000 {
		return app.UsageError(errors.New("--users must be from 0 to 1000000"))
	}
	if *rate <= 0 || *rate > 10_000 {
		return app.UsageError(errors.New("--rate must be above 0 and at most 10000"))
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	base, err := config.Load(st.LookupEnv, false)
	if err != nil {
		return err
	}
	logger := app.NewLogger(base.LogFormat, st.Stderr, slog.LevelWarn)
	out := st.Stdout
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	dbURL := base.DatabaseURL
	if dbURL == "" {
		say("▶ starting a throwaway PostgreSQL (set DATABASE_URL to use your own)…")
		cl, err := pgcluster.Start(ctx, logger)
		if err != nil {
			return err
		}
		defer func() {
			_ = cl.Stop()
			say("▶ throwaway PostgreSQL stopped and removed")
		}()
		dbURL = cl.URL()
	}

	fake, err := newDemoFake(*prov)
	if err != nil {
		return app.UsageError(err)
	}
	defer fake.Close()
	fake.Seed(*users)
	var ofake fakekit.OrganizationsFake
	if *orgs {
		of, ok := fake.(fakekit.OrganizationsFake)
		if !ok {
			return app.UsageError(fmt.Errorf("--organizations: the simulated %s has no organizations", *prov))
		}
		ofake = of
		n := 0
		if *users > 0 {
			n = len(ofake.SeedOrganizations(min(max(1, *users/20), maxDemoOrganizations), min(5, *users)))
		}
		say("▶ simulated %s at %s with %d users in %d organizations", *prov, fake.URL(), *users, n)
	} else {
		say("▶ simulated %s at %s with %d users", *prov, fake.URL(), *users)
	}

	env := fake.Env()
	env["DATABASE_URL"] = dbURL
	env["USERSYNC_BACKFILL_INTERVAL"] = "0"
	if *orgs {
		env["USERSYNC_ORGANIZATIONS"] = "on"
	}
	if _, ok := st.LookupEnv("USERSYNC_LISTEN"); !ok {
		env["USERSYNC_LISTEN"] = "127.0.0.1:0"
	}
	lookup := func(k string) (string, bool) {
		if strings.HasPrefix(k, "STACK_") || strings.HasPrefix(k, "CLERK_") || strings.HasPrefix(k, "WORKOS_") || k == "DATABASE_URL" {
			v, ok := env[k]
			return v, ok
		}
		if v, ok := env[k]; ok {
			return v, true
		}
		return st.LookupEnv(k)
	}
	cfg, err := config.Load(lookup, true)
	if err != nil {
		return err
	}
	e := &app.Env{Config: cfg, Logger: logger, SchemaSQL: st.SchemaSQL}
	pool, err := app.OpenPool(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate.Run(ctx, pool, e.Plan(), logger); err != nil {
		return err
	}
	schema := app.TargetSchemas(cfg)[0]
	say("▶ migrated: River in schema %q, users in %s.users_sync", cfg.InternalSchema, schema)
	if *orgs {
		say("▶ organizations in %s.organizations_sync, memberships in %s.memberships_sync", schema, schema)
	}

	// Watch changes through the notifications an app would LISTEN to.
	notes := make(chan note, 1024)
	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	channels := map[string]string{}
	if ch := cfg.NotifyChannelFor(schema); ch != "" {
		channels[ch] = "users_sync"
	}
	if *orgs {
		channels[schema+"_organizations_sync"] = "organizations_sync"
		channels[schema+"_memberships_sync"] = "memberships_sync"
	}
	for ch, table := range channels {
		go listen(listenCtx, dbURL, ch, table, notes)
	}

	ready := make(chan string, 1)
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- app.Serve(serveCtx, e, false, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		stopServe()
		return err
	}
	defer func() {
		stopServe()
		<-served
		say("▶ service stopped")
	}()
	webhookURL := "http://" + addr + "/webhooks/" + *prov
	say("▶ usersync serving on http://%s (webhooks at %s, metrics at /metrics)", addr, webhookURL)

	// Initial load: a backfill of every existing user.
	say("▶ backfilling the existing users…")
	if ok, err := app.Backfill(ctx, out, e, pool, *prov); err != nil || !ok {
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the initial backfill failed")
		}
		return err
	}
	// The backfill's own notifications were one per user: summarise instead.
	for drained := false; !drained; {
		select {
		case <-notes:
		default:
			drained = true
		}
	}
	printCounts(ctx, out, pool, schema, *orgs)
	if *orgs {
		say("▶ now simulating sign-ups, profile edits and deletions, organizations created, renamed and deleted,")
		say("  members joining, changing role and leaving, sent as signed webhooks (Ctrl-C to stop)")
	} else {
		say("▶ now simulating sign-ups, profile edits and deletions, sent as signed webhooks (Ctrl-C to stop)")
	}
	say("  %-8s %-7s %-38s %s", "time", "change", "id", "name <email>")

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	summary := time.NewTicker(10 * time.Second)
	defer summary.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	live := func() []string {
		ids := make([]string, 0)
		for id := range fake.Snapshot() {
			ids = append(ids, id)
		}
		return ids
	}()
	for {
		select {
		case <-ctx.Done():
			say("\n▶ stopping…")
			printCounts(context.Background(), out, pool, schema, *orgs)
			return nil
		case n := <-notes:
			showChange(ctx, out, pool, schema, n)
		case <-summary.C:
			printCounts(ctx, out, pool, schema, *orgs)
		case <-tick.C:
			if ofake != nil && rng.IntN(10) < 4 {
				for _, d := range orgEvent(rng, *prov, ofake, live) {
					if err := post(ctx, client, webhookURL, d.body, d.header); err != nil && ctx.Err() == nil {
						say("  webhook failed: %v", err)
					}
				}
				continue
			}
			var id string
			kind := provider.EventUserChanged
			switch r := rng.IntN(10); {
			case r < 4 || len(live) == 0:
				id = fake.CreateUser()
				live = append(live, id)
			case r < 8:
				id = live[rng.IntN(len(live))]
				fake.UpdateUser(id)
			default:
				i := rng.IntN(len(live))
				id = live[i]
				live = append(live[:i], live[i+1:]...)
				fake.DeleteUser(id)
				kind = provider.EventUserDeleted
			}
			body, h := fake.Webhook(kind, id)
			if err := post(ctx, client, webhookURL, body, h); err != nil && ctx.Err() == nil {
				say("  webhook failed: %v", err)
			}
		}
	}
}

func newDemoFake(name string) (fakekit.Fake, error) {
	switch name {
	case "stackauth":
		return stackfake.New(stackfake.Options{}), nil
	}
	return newOtherDemoFake(name)
}

func post(ctx context.Context, c *http.Client, url string, body []byte, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// note is one change notification, with the table it is about.
type note struct{ table, payload string }

func listen(ctx context.Context, url, channel, table string, out chan<- note) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := store.Listen(ctx, conn, channel); err != nil {
		return
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		select {
		case out <- note{table, n.Payload}:
		default:
		}
	}
}

func showChange(ctx context.Context, w io.Writer, pool pgxQuerier, schema string, nt note) {
	var n struct{ ID, Op string }
	if json.Unmarshal([]byte(nt.payload), &n) != nil {
		return
	}
	s := func(p *string) string {
		if p == nil {
			return "—"
		}
		return *p
	}
	now := time.Now().Format("15:04:05")
	switch nt.table {
	case "organizations_sync":
		name, _ := store.OrganizationName(ctx, pool, schema, n.ID)
		fmt.Fprintf(w, "  %-8s %-7s %-38s organization %q\n", now, n.Op, n.ID, s(name))
	case "memberships_sync":
		org, user, _ := strings.Cut(n.ID, ":")
		v, _, _ := store.Membership(ctx, pool, schema, org, user)
		role := ""
		if v.Role != nil {
			role = " as " + *v.Role
		}
		fmt.Fprintf(w, "  %-8s %-7s %-38s member %s <%s> of %q%s\n", now, n.Op, user, s(v.UserName), s(v.UserEmail), s(v.OrganizationName), role)
	default:
		name, email, _ := store.UserName(ctx, pool, schema, n.ID)
		fmt.Fprintf(w, "  %-8s %-7s %-38s %s <%s>\n", now, n.Op, n.ID, s(name), s(email))
	}
}

type pgxQuerier = store.DB

func printCounts(ctx context.Context, w io.Writer, pool pgxQuerier, schema string, orgs bool) {
	if live, deleted, err := store.CountUsers(ctx, pool, schema); err == nil {
		fmt.Fprintf(w, "▶ %s.users_sync: %d users, %d marked deleted\n", schema, live, deleted)
	}
	if !orgs {
		return
	}
	if live, deleted, members, err := store.CountOrganizations(ctx, pool, schema); err == nil {
		fmt.Fprintf(w, "▶ %s.organizations_sync: %d organizations, %d marked deleted; %s.memberships_sync: %d memberships\n",
			schema, live, deleted, schema, members)
	}
}
