package engine_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// TestRateLimitSharedByEngines: two engines on one database (two
// processes), whose Clerk clients send through their Metrics' transports,
// share one request budget: 120 list-page reads (requests the client does
// not coalesce, unlike lookups) made as fast as 16 goroutines can between
// them, at a budget equal to the fake's own rate limit, get no 429. Each
// engine's /metrics shows the budget's series, and the requests granted are
// the requests the fake got.
func TestRateLimitSharedByEngines(t *testing.T) {
	t.Parallel()
	const limit, n = 40, 120
	url := pgtest.NewDatabase(t)
	fake := clerkfake.New(clerkfake.Options{})
	t.Cleanup(fake.Close)
	fake.Seed(3)
	fake.SetRateLimit(limit, limit/2)

	type proc struct {
		e      *engine.Engine
		m      *engine.Metrics
		client provider.Provider
	}
	var procs []proc
	for range 2 {
		pool := pgtest.NewPool(t, url, 4)
		m := engine.NewMetrics()
		env := fake.Env()
		c, err := clerk.New(clerk.Config{SecretKey: env["CLERK_SECRET_KEY"], WebhookSecret: env["CLERK_WEBHOOK_SECRET"],
			APIURL: fake.URL(), HTTPClient: &http.Client{Transport: m.Transport("clerk", nil)}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(t.Context(), pool, engine.Config{Providers: []engine.Provider{{Client: c}}, Metrics: m,
			RateLimits: map[string]float64{"clerk": limit}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		if err := e.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, proc{e, m, c})
	}
	before := fake.Requests()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for _, p := range procs {
		for range 8 {
			wg.Go(func() {
				for i := next.Add(1); i <= n; i = next.Add(1) {
					if _, err := p.client.ListUsers(t.Context(), ""); err != nil {
						failed.Add(1)
						t.Errorf("ListUsers: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	sent := fake.Requests() - before
	if sent < n {
		t.Errorf("the fake got %d requests, want at least %d", sent, n)
	}
	if fake.RateLimited() != 0 || failed.Load() != 0 {
		t.Errorf("%d requests answered 429, %d failed, want none", fake.RateLimited(), failed.Load())
	}

	var granted float64
	for i, p := range procs {
		text := scrape(t, p.m)
		for _, want := range []string{`usersync_provider_rate_limit{provider="clerk"} 40`, `usersync_provider_rate_limit_effective{provider="clerk"} 40`,
			`usersync_provider_rate_limit_throttled_total{provider="clerk",slowed="true"} 0`, `usersync_provider_rate_limit_wait_seconds_total{provider="clerk"}`} {
			if !strings.Contains(text, want) {
				t.Errorf("engine %d's /metrics lacks %s", i, want)
			}
		}
		granted += metricValue(t, text, `usersync_provider_rate_limit_granted_total{provider="clerk"}`)
	}
	if granted != float64(sent) {
		t.Errorf("usersync_provider_rate_limit_granted_total sums to %v over both engines, want the %d requests the fake got", granted, sent)
	}

	st, err := procs[0].e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rl := st.Providers[0].RateLimit
	if rl == nil || rl.Limit != limit || rl.Granted < sent || rl.CurrentMinute+rl.LastMinute < sent {
		t.Errorf("Status' rate limit = %+v, want limit %d and at least %d granted", rl, limit, sent)
	}
}

// TestRateLimitSeriesFromStart: before any request, /metrics shows the
// budget's series of every configured provider: the default limit, zero
// counts.
func TestRateLimitSeriesFromStart(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	fake := clerkfake.New(clerkfake.Options{})
	t.Cleanup(fake.Close)
	m := engine.NewMetrics()
	e, err := engine.New(t.Context(), pool, engine.Config{Providers: []engine.Provider{{Client: fake.Provider()}}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	text := scrape(t, m)
	for _, want := range []string{`usersync_provider_rate_limit{provider="clerk"} 90`, `usersync_provider_rate_limit_effective{provider="clerk"} 90`,
		`usersync_provider_rate_limit_granted_total{provider="clerk"} 0`, `usersync_provider_rate_limit_wait_seconds_total{provider="clerk"} 0`,
		`usersync_provider_rate_limit_throttled_total{provider="clerk",slowed="false"} 0`,
		`usersync_provider_rate_limit_throttled_total{provider="clerk",slowed="true"} 0`} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestRateLimitsRejected: a limit that is not a positive number, or one for
// a provider that is not configured, is refused.
func TestRateLimitsRejected(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	fake := clerkfake.New(clerkfake.Options{})
	t.Cleanup(fake.Close)
	for _, limits := range []map[string]float64{{"clerk": 0}, {"clerk": -3}, {"workos": 10}} {
		_, err := engine.New(t.Context(), pool, engine.Config{Providers: []engine.Provider{{Client: fake.Provider()}}, RateLimits: limits})
		if err == nil || !strings.Contains(err.Error(), "Config.RateLimits") {
			t.Errorf("RateLimits %v: New: %v, want an error naming Config.RateLimits", limits, err)
		}
	}
}

func scrape(t *testing.T, m *engine.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}
