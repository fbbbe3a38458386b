package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/provider"
)

// rateLimitVar names each provider's request budget variable.
var rateLimitVar = map[string]string{"stackauth": "STACK_RATE_LIMIT", "clerk": "CLERK_RATE_LIMIT", "workos": "WORKOS_RATE_LIMIT"}

// Burst under a rate limit (BenchmarkBurstRateLimited).
const (
	burstUsers = 3000
	// burstFakeLimit is the fake's token bucket: 100 requests/s, bursts of
	// 20; beyond it, 429 with Retry-After.
	burstFakeLimit = 100
	burstFakeBurst = 20
	// burstBudget is usersync's *_RATE_LIMIT: at the fake's limit
	// (USERSYNC_BENCH_BURST_BUDGET overrides it, e.g. 200 to see how a
	// budget above the provider's limit is slowed down by its 429s).
	burstBudget = "100"
	// burstBefore is how many users the provider has before the burst in
	// the runs where a complete backfill listed them first: the 3,000 are
	// then a tenth of all users, and listing everyone (300 requests for
	// WorkOS, 60 for Clerk, 30 for Stack Auth) costs less than looking the
	// 3,000 up.
	burstBefore = 27_000
)

// BenchmarkBurstRateLimited: 3,000 users of the fake change at once, and
// their webhooks arrive within a second or so; the fake enforces 100
// requests/s (429 with Retry-After beyond), usersync is configured at that
// limit (*_RATE_LIMIT=100), with one or three `usersync worker` processes
// sharing the budget through the database. Reported: the time from the
// first webhook until every user's row is in users_sync, that time's ratio
// to the one-by-one floor (3,000 users / 100 requests/s = 30 s; above 1 is
// faster than one lookup per user at the limit), provider requests per
// user, and the share of requests answered 429. With before=0 the 3,000 are
// the provider's only users and no backfill has listed any: syncs look
// their users up. With before=27000, 27,000 users were listed by a complete
// backfill first: where listing all 30,000 costs fewer requests than the
// lookups (Stack Auth, WorkOS; not Clerk, whose lookups carry 100 users), a
// backfill run serves the backlog (docs/limits.md, "A large backlog").
//
//	go test ./integration_test -run '^$' -bench BurstRateLimited -benchtime 1x -timeout 30m
func BenchmarkBurstRateLimited(b *testing.B) {
	for _, prov := range providerNames() {
		for _, procs := range []int{1, 3} {
			for _, before := range []int{0, burstBefore} {
				b.Run(fmt.Sprintf("%s/procs=%d/before=%d", prov, procs, before), func(b *testing.B) { benchBurst(b, prov, procs, before) })
			}
		}
	}
}

func benchBurst(b *testing.B, prov string, procs, before int) {
	budget := burstBudget
	if v := os.Getenv("USERSYNC_BENCH_BURST_BUDGET"); v != "" {
		budget = v
	}
	// The product's defaults for workers (sized for the machine) and
	// connections, not the test harness's smaller ones: how many syncs run
	// at once decides how many lookups can share a request.
	s := NewSystem(b, prov, map[string]string{rateLimitVar[prov]: budget,
		"USERSYNC_WORKERS": strconv.Itoa(config.DefaultWorkers()), "USERSYNC_DB_MAX_CONNS": "20"})
	sv := s.Serve(map[string]string{"USERSYNC_WORKERS": "0"})
	for range procs {
		w := s.Start(nil, "worker")
		Eventually(b, 30*time.Second, "worker starts", func() string {
			if strings.Contains(w.Logs(), "usersync worker running") {
				return ""
			}
			return w.Logs()
		})
	}
	if before > 0 {
		s.Fake.Seed(before)
		if code, out := s.Backfill(context.Background(), "--wait"); code != 0 {
			b.Fatalf("backfill of the users before the burst exited %d: %s", code, out)
		}
	}
	var converged time.Duration
	var requests, limited int64
	for i := range b.N {
		ids := s.Fake.Seed(burstUsers)
		bodies := make([][]byte, len(ids))
		headers := make([]http.Header, len(ids))
		for j, id := range ids {
			bodies[j], headers[j] = s.Fake.Webhook(provider.EventUserChanged, id)
		}
		s.Fake.SetRateLimit(burstFakeLimit, burstFakeBurst)
		req0, lim0 := s.Fake.Requests(), s.Fake.RateLimited()
		start := time.Now()
		var next atomic.Int64
		parallel(32, func() {
			for j := next.Add(1) - 1; j < int64(len(ids)); j = next.Add(1) - 1 {
				if code := s.Post(sv.Addr, bodies[j], headers[j]); code != 200 {
					b.Errorf("webhook answered %d", code)
				}
			}
		})
		want := int64((i+1)*burstUsers + before)
		for {
			var n int64
			if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{s.Schema, "users_sync"}.Sanitize()).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n >= want {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("%d of %d rows after 10 minutes", n, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		converged = time.Since(start)
		requests, limited = s.Fake.Requests()-req0, s.Fake.RateLimited()-lim0
		s.Fake.SetRateLimit(0, 0)
		if d := s.Diff(); d != "" {
			b.Fatalf("not converged:\n%s", d)
		}
	}
	floor := float64(burstUsers) / burstFakeLimit
	b.ReportMetric(converged.Seconds(), "converged-s")
	b.ReportMetric(floor/converged.Seconds(), "x-floor")
	b.ReportMetric(float64(requests)/burstUsers, "requests/user")
	b.ReportMetric(100*float64(limited)/float64(max(requests, 1)), "429-%")
	b.ReportMetric(float64(limited), "429s")
	b.ReportMetric(0, "ns/op")
}
