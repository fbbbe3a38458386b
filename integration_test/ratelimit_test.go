package integration_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// burstTo changes n users at the fake and delivers their webhooks to the
// service at addr, and returns when all are acknowledged.
func burstTo(t *testing.T, s *System, addr string, n int) {
	t.Helper()
	ids := s.Fake.Seed(n)
	codes := make([]int, len(ids))
	bodies := make([][]byte, len(ids))
	headers := make([]http.Header, len(ids))
	for i, id := range ids {
		bodies[i], headers[i] = s.Fake.Webhook(provider.EventUserChanged, id)
	}
	for i := range ids {
		codes[i] = s.Post(addr, bodies[i], headers[i])
	}
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("webhook %d answered %d", i, c)
		}
	}
}

// TestBurstWithinRateLimit (docs/guarantees.md §11): two `usersync worker`
// processes with *_RATE_LIMIT at the fake's own limit (a token bucket of
// 20 requests/s) sync a burst of 120 changed users; the fake answers at
// most 2% of their requests 429, and `usersync status` shows the budget used.
func TestBurstWithinRateLimit(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{rateLimitVar[prov]: "20"})
			s.Fake.SetRateLimit(20, 5)
			sv := s.Serve(map[string]string{"USERSYNC_WORKERS": "0"})
			s.Start(nil, "worker")
			s.Start(nil, "worker")
			before := s.Fake.Requests()
			burstTo(t, s, sv.Addr, 120)
			s.WaitConverged(90 * time.Second)
			// The target, and docs/guarantees.md §11's "no storm":
			// at most 2% answered 429. Not none: on a loaded machine a
			// process whose timers fire late sends a request or two bunched
			// with the other process's (seen with every release so far).
			// Without the budget, most of the burst is answered 429.
			if n, sent := s.Fake.RateLimited(), s.Fake.Requests()-before; n*50 > sent {
				t.Errorf("%d of %d requests answered 429 with the budget at the fake's limit, want at most 2%%", n, sent)
			}
			code, out := s.Run(nil, "status")
			if !strings.Contains(out, "request budget:           20/s limit") {
				t.Errorf("`usersync status` (exit %d) does not show the budget:\n%s", code, out)
			}
		})
	}
}

// TestRateLimitAboveProviderSlowsDown (docs/guarantees.md §11): with the
// budget set at twice the fake's limit, the 429s that follow slow the
// shared budget down (recorded in its row and in `usersync status`), and
// the burst still converges with every job completed at its first attempt.
func TestRateLimitAboveProviderSlowsDown(t *testing.T) {
	t.Parallel()
	prov := slowTestProvider("workos")[0]
	s := NewSystem(t, prov, map[string]string{rateLimitVar[prov]: "40"})
	s.Fake.SetRateLimit(20, 2)
	sv := s.Serve(map[string]string{"USERSYNC_WORKERS": "0"})
	s.Start(nil, "worker")
	s.Start(nil, "worker")
	burstTo(t, s, sv.Addr, 150)
	s.WaitConverged(120 * time.Second)
	Eventually(t, 10*time.Second, "no sync job left", s.Idle)
	if s.Fake.RateLimited() == 0 {
		t.Fatalf("the fake answered no 429 with the budget at twice its limit: nothing was tested")
	}
	var slowdowns, throttled int64
	if err := s.Pool.QueryRow(context.Background(), `SELECT slowdowns, throttled FROM `+s.is()+`.rate_limit WHERE provider = $1`, prov).
		Scan(&slowdowns, &throttled); err != nil {
		t.Fatal(err)
	}
	if slowdowns < 1 || throttled < 1 {
		t.Errorf("rate_limit row: %d slowdowns, %d 429s recorded; want at least one of each (the fake answered %d)", slowdowns, throttled, s.Fake.RateLimited())
	}
	t.Logf("the fake answered %d of %d requests 429; the budget slowed down %d times", s.Fake.RateLimited(), s.Fake.Requests(), slowdowns)
	var maxAttempt int
	if err := s.Pool.QueryRow(context.Background(), `SELECT max(attempt) FROM `+s.is()+`.river_job WHERE kind = 'sync_user'`).Scan(&maxAttempt); err != nil {
		t.Fatal(err)
	}
	if maxAttempt != 1 {
		t.Errorf("a sync job reached attempt %d: a 429 spent an attempt", maxAttempt)
	}
	if _, out := s.Run(nil, "status"); !strings.Contains(out, "slowed the budget") {
		t.Errorf("`usersync status` does not report the 429s:\n%s", out)
	}
}

// TestLargeBacklogServedByListing (docs/limits.md, "A large backlog"): after
// a complete backfill listed the provider's 50 users, 400 new users' webhooks
// arrive at a budget of 20 requests/s. Looking them all up would take 400
// requests (20 s); listing all 450 users takes a page or a few. The waiting
// syncs reach the threshold, a backfill run starts by itself, and the syncs
// whose users it listed complete without a request: the burst converges
// with fewer than half the lookups. A later burst of 100, under the
// threshold, starts no run.
//
// Not parallel: its bursts would load the machine while the other rate
// limit tests count 429s (a starved process sends its requests late and
// bunched); Go runs it before the parallel tests start.
func TestLargeBacklogServedByListing(t *testing.T) {
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			s := NewSystem(t, prov, map[string]string{rateLimitVar[prov]: "20"})
			s.Fake.Seed(50)
			// The service only enqueues; a worker process works the jobs
			// while it runs.
			sv := s.Serve(map[string]string{"USERSYNC_WORKERS": "0"})
			w := s.Start(nil, "worker")
			if code, out := s.Backfill(context.Background(), "--wait"); code != 0 {
				t.Fatalf("backfill exited %d: %s", code, out)
			}
			runs := func() int {
				return s.Int(`SELECT count(*) FROM ` + s.is() + `.backfill_run WHERE kind = 'users'`)
			}
			if n := runs(); n != 1 {
				t.Fatalf("%d backfill runs after the first backfill, want 1", n)
			}
			// The 400 syncs wait, however long their delivery takes, until
			// a worker runs again.
			w.Terminate(t)
			before := s.Fake.Requests()
			burstTo(t, s, sv.Addr, 400)
			s.Start(nil, "worker")
			s.WaitConverged(120 * time.Second)
			if n := runs(); n != 2 {
				t.Fatalf("%d backfill runs after a backlog of 400 syncs, want 2 (one started by the backlog)", n)
			}
			if lookups := s.Fake.Requests() - before; lookups >= 200 {
				t.Errorf("%d provider requests for 400 changed users, want fewer than 200: the listing did not serve the backlog", lookups)
			}
			if !strings.Contains(sv.Logs(), "served faster by listing") {
				t.Errorf("no log line says a backlog started the run")
			}
			burstTo(t, s, sv.Addr, 100)
			s.WaitConverged(120 * time.Second)
			Eventually(t, 30*time.Second, "no sync job left", s.Idle)
			if n := runs(); n != 2 {
				t.Errorf("%d backfill runs after a backlog of 100 syncs (under the threshold of 200), want still 2", n)
			}
		})
	}
}
