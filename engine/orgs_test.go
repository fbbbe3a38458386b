package engine_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// Organization and membership webhooks, signed by the provider: with
// Config.Organizations off they are answered 200 and nothing is enqueued
// (and Migrate creates no organization tables); with it on each enqueues a
// sync_organization job of its organization (coalesced per organization),
// and the organization's deletion is recorded on the job.
func TestOrganizationWebhooks(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[on], func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
			fake := stackfake.New(stackfake.Options{Seed: 2})
			t.Cleanup(fake.Close)
			users := fake.Seed(2)
			team := fake.CreateOrganization(users[0])
			fake.AddMember(team, users[1], "")
			e, err := engine.New(ctx, pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}, Organizations: on})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Close)
			if err := e.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			rc := &river.Config{Schema: "usersync"}
			e.ConfigureRiverInserts(rc)
			client, err := river.NewClient(riverpgxv5.New(pool), rc)
			if err != nil {
				t.Fatal(err)
			}
			h, err := e.WebhookHandler(client)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			post := func(body []byte, header http.Header) {
				t.Helper()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/webhooks/stackauth", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header = header
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("webhook %s: %d, want 200", strings.SplitN(string(body), ",", 2)[0], resp.StatusCode)
				}
			}
			post(fake.OrganizationWebhook(provider.EventOrganizationChanged, team))
			post(fake.MembershipWebhook(team, users[1], false))
			fake.DeleteOrganization(team)
			post(fake.OrganizationWebhook(provider.EventOrganizationDeleted, team))

			var jobs, tables int
			var lastEvent *string
			if err := pool.QueryRow(ctx, `SELECT count(*), max(metadata->>'usersync_last_event') FROM usersync.river_job
				WHERE kind = 'sync_organization' AND args->>'organization_id' = $1`, team).Scan(&jobs, &lastEvent); err != nil {
				t.Fatal(err)
			}
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'neon_identity'
				AND tablename IN ('organizations_sync', 'memberships_sync')`).Scan(&tables); err != nil {
				t.Fatal(err)
			}
			var all int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM usersync.river_job WHERE kind <> 'prune_user_state'`).Scan(&all); err != nil {
				t.Fatal(err)
			}
			if !on {
				if all != 0 || tables != 0 {
					t.Fatalf("organizations off: %d jobs enqueued, %d organization tables; want none", all, tables)
				}
				return
			}
			if jobs != 1 || all != 1 || tables != 2 {
				t.Fatalf("organizations on: %d sync_organization jobs of the team (%d jobs in all), %d tables; want 1, 1, 2", jobs, all, tables)
			}
			if lastEvent == nil || *lastEvent != "deleted" {
				t.Errorf("the coalesced job's latest event: %v, want deleted", lastEvent)
			}
		})
	}
}
