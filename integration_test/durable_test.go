package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// TestDurableAckSurvivesSIGKILL (docs/guarantees.md §1): webhooks answered 2xx by a `serve`
// process that is SIGKILLed right after the answers are not lost: a worker
// started afterwards syncs every acknowledged user.
func TestDurableAckSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			// HTTP only: nothing works the jobs before the kill, so the
			// rows can only come from what the answers committed.
			sv := s.Start(map[string]string{"USERSYNC_WORKERS": "0"}, "serve")
			ids := s.Fake.Seed(60)
			for _, id := range ids[50:] {
				s.Fake.DeleteUser(id)
			}
			s.SendAll(sv.Addr, provider.EventUserChanged, ids[:50], 16)
			s.SendAll(sv.Addr, provider.EventUserDeleted, ids[50:], 4)
			sv.Kill()

			for _, id := range ids {
				if s.JobsOf(id) == 0 {
					t.Fatalf("acknowledged webhook for %s has no sync_user job after SIGKILL", id)
				}
			}
			if d := s.Diff(); d == "" {
				t.Fatal("users_sync already converged before any worker ran: the test proves nothing")
			}
			s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			s.WaitConverged(30 * time.Second)
		})
	}
}

// TestWebhook503WhenDatabaseUnavailable (docs/http.md; docs/guarantees.md §1): when the database cannot
// take the job the receiver answers 503 and nothing is enqueued; once the
// database is back, deliveries are accepted again.
func TestWebhook503WhenDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			sv := s.Start(map[string]string{"USERSYNC_WORKERS": "0"}, "serve")
			a, b, c := s.Fake.CreateUser(), s.Fake.CreateUser(), s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, a); code != 200 {
				t.Fatalf("webhook with the database up answered %d", code)
			}

			admin := AdminConn(t, s.DBURL)
			db := pgx.Identifier{DBName(t, s.DBURL)}.Sanitize()
			ctx := context.Background()
			restore := func() {
				if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true"); err != nil {
					t.Errorf("re-allow connections: %v", err)
				}
			}
			if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(restore)
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = $1 AND pid <> pg_backend_pid()`, DBName(t, s.DBURL)); err != nil {
				t.Fatal(err)
			}

			for i := range 3 {
				code := s.Send(sv.Addr, provider.EventUserChanged, b)
				if code != 503 {
					t.Fatalf("delivery %d with the database unreachable answered %d, want 503", i, code)
				}
			}
			if !sv.Alive() {
				t.Fatal("serve exited while the database was unreachable")
			}
			restore()
			// The service recovers without a restart.
			Eventually(t, 30*time.Second, "webhooks accepted again once the database is back", func() string {
				if code := s.Send(sv.Addr, provider.EventUserChanged, c); code != 200 {
					return fmt.Sprintf("answered %d", code)
				}
				return ""
			})
			s.Pool.Reset() // its connections were terminated
			var got []string
			rows, err := s.Pool.Query(ctx, `SELECT args->>'user_id' FROM `+s.is()+`.river_job WHERE kind = 'sync_user' ORDER BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.Join(got, ","), b) {
				t.Errorf("a job was enqueued for %s, whose deliveries were all answered 503", b)
			}
			if len(got) != 2 {
				t.Errorf("sync_user jobs = %v, want exactly the jobs of %s and %s", got, a, c)
			}
		})
	}
}
