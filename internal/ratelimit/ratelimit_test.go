package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/internal/ratelimit"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

// migrated returns the URL of a fresh database with usersync's tables.
func migrated(t *testing.T) string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool := pgtest.NewPool(t, url, 2)
	plan := store.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: "SELECT 1;"}
	if err := store.Migrate(t.Context(), pool, plan, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return url
}

var layout = store.New(store.Schemas{Internal: "usersync"})

// process is one usersync process's view of a provider's budget: its own
// pool, budget and transport.
type process struct {
	budget *ratelimit.Budget
	client *http.Client
	obs    *recorder
}

func newProcess(t *testing.T, url, prov string, limit float64) *process {
	t.Helper()
	pool := pgtest.NewPool(t, url, 3)
	return newProcessOn(t, pool, prov, limit)
}

func newProcessOn(t *testing.T, pool *pgxpool.Pool, prov string, limit float64) *process {
	t.Helper()
	obs := &recorder{}
	b, err := ratelimit.New(ratelimit.Config{Provider: prov, Limit: limit, DB: pool, Store: layout, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	var g ratelimit.Gates
	g.Bind(b)
	return &process{budget: b, client: &http.Client{Transport: g.Transport(prov, nil)}, obs: obs}
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu                     sync.Mutex
	granted                int
	rates                  []float64
	throttled, slowedCount int
}

func (r *recorder) RateLimitGranted(string, time.Duration) { r.mu.Lock(); r.granted++; r.mu.Unlock() }
func (r *recorder) RateLimitRate(_ string, rate float64) {
	r.mu.Lock()
	r.rates = append(r.rates, rate)
	r.mu.Unlock()
}
func (r *recorder) RateLimitThrottled(_ string, slowed bool) {
	r.mu.Lock()
	r.throttled++
	if slowed {
		r.slowedCount++
	}
	r.mu.Unlock()
}
func (r *recorder) lastRate() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rates) == 0 {
		return 0
	}
	return r.rates[len(r.rates)-1]
}

// limitedServer is a provider API that enforces a token bucket (the fakes'
// limiter) and answers 429 with Retry-After: 1 beyond it.
func limitedServer(t *testing.T, perSecond float64, burst int) (*httptest.Server, *fakekit.RateLimiter, *atomic.Int64) {
	t.Helper()
	lim := &fakekit.RateLimiter{}
	lim.Set(perSecond, burst)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if ok, ra := lim.Allow(time.Now()); !ok {
			w.Header().Set("Retry-After", fakekit.RetryAfterHeader(ra))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, lim, &served
}

// hammer makes n requests to url from conc goroutines per client, as fast
// as the clients let them go, and returns how many failed to be sent.
func hammer(t *testing.T, url string, n, conc int, clients ...*http.Client) int64 {
	t.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range clients {
		for range conc {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					resp, err := c.Get(url)
					if err != nil {
						failed.Add(1)
						continue
					}
					resp.Body.Close()
				}
			})
		}
	}
	wg.Wait()
	return failed.Load()
}

// TestBudgetSharedAcrossProcesses: two processes on one database, each
// with 8 concurrent requesters, configured at the provider's limit, make
// 150 requests between them: the provider's own token bucket answers none
// of them 429. The same requests without the budget are answered 429 (the
// test can fail), and the shared row counts every granted request.
func TestBudgetSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	const limit, n = 50, 150
	url := migrated(t)

	srv, lim, _ := limitedServer(t, limit, limit/2)
	if failed := hammer(t, srv.URL, n, 8, http.DefaultClient, http.DefaultClient); failed != 0 {
		t.Fatalf("%d requests failed", failed)
	}
	if lim.Limited() == 0 {
		t.Fatalf("without a budget, none of %d requests was answered 429: the check below proves nothing", n)
	}

	srv, lim, served := limitedServer(t, limit, limit/2)
	a, b := newProcess(t, url, "clerk", limit), newProcess(t, url, "clerk", limit)
	if failed := hammer(t, srv.URL, n, 8, a.client, b.client); failed != 0 {
		t.Fatalf("%d requests failed", failed)
	}
	if got := served.Load(); got != n {
		t.Errorf("the provider served %d requests, want %d", got, n)
	}
	if got := lim.Limited(); got != 0 {
		t.Errorf("%d of %d requests were answered 429 with the shared budget at the provider's limit", got, n)
	}
	if a.obs.granted == 0 || b.obs.granted == 0 || a.obs.granted+b.obs.granted != n {
		t.Errorf("granted %d + %d requests, want both processes to share %d", a.obs.granted, b.obs.granted, n)
	}
	pool := pgtest.NewPool(t, url, 1)
	rep, err := layout.RateLimits().Get(t.Context(), pool, "clerk", store.RateLimitRecovery)
	if err != nil || rep == nil {
		t.Fatalf("budget row: %v %v", rep, err)
	}
	if rep.Granted < n || rep.Limit != limit || rep.Throttled != 0 {
		t.Errorf("budget row = %+v, want at least %d granted at limit %d, none throttled", rep, n, limit)
	}
}

// TestThrottleSlowsSharedBudget: a 429 seen by one process halves the
// effective rate of the budget that another process reserves from, keeps
// every process's requests back until its Retry-After, and 429s right after
// it (answers to requests already sent) do not halve it again.
func TestThrottleSlowsSharedBudget(t *testing.T) {
	t.Parallel()
	const limit = 40
	url := migrated(t)
	a, b := newProcess(t, url, "workos", limit), newProcess(t, url, "workos", limit)
	if err := b.budget.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := b.obs.lastRate(); r != limit {
		t.Fatalf("effective rate before any 429 = %v, want %d", r, limit)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	resp, err := a.client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The answer to a second request, sent before the first 429 came back.
	a.budget.Throttled(t.Context(), 3*time.Second)
	if a.obs.throttled != 2 || a.obs.slowedCount != 1 {
		t.Errorf("429s seen = %d, slowdowns = %d; want 2 and 1", a.obs.throttled, a.obs.slowedCount)
	}
	pool := pgtest.NewPool(t, url, 1)
	rep, err := layout.RateLimits().Get(t.Context(), pool, "workos", store.RateLimitRecovery)
	if err != nil || rep == nil {
		t.Fatalf("budget row: %v %v", rep, err)
	}
	if rep.Throttled != 2 || rep.Slowdowns != 1 {
		t.Errorf("row counts %d 429s and %d slowdowns, want 2 and 1", rep.Throttled, rep.Slowdowns)
	}
	// Halved, and recovering by a sixtieth of the limit per second since.
	if rep.Effective < limit/2 || rep.Effective > limit*0.6 {
		t.Errorf("effective rate after a 429 = %v, want about %v", rep.Effective, limit/2)
	}
	if rep.Backlog < time.Second {
		t.Errorf("after a 429 with Retry-After: 3 the budget is reserved only %s ahead", rep.Backlog)
	}

	// The other process's next reservation is spaced at the slowed rate.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.budget.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context during the pause: %v, want context.Canceled", err)
	}
	if r := b.obs.lastRate(); r >= limit*0.6 || r < limit/2 {
		t.Errorf("the other process reserved at %v requests/s, want about %v", r, limit/2)
	}
}

// TestWaitRespectsContext: a request that would have to wait for the next
// slot returns its context's error instead (the slot goes to the next
// request), and its transport sends nothing.
func TestWaitRespectsContext(t *testing.T) {
	t.Parallel()
	url := migrated(t)
	p := newProcess(t, url, "stackauth", 0.5) // a slot every 2 s, burst 1
	if err := p.budget.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv, _, served := limitedServer(t, 1000, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := p.client.Do(req); !errors.Is(err, context.Canceled) {
		t.Errorf("request with a cancelled context: %v, want context.Canceled", err)
	}
	if served.Load() != 0 {
		t.Errorf("the provider got %d requests, want none", served.Load())
	}
	if p.obs.granted != 1 {
		t.Errorf("granted %d, want 1", p.obs.granted)
	}
}

// TestWaitBeyondDeadlineIsRateLimited: a request whose slot comes after
// its deadline is not sent and fails at once with a
// *provider.RateLimitedError (through http.Client's error) saying how long
// until the slot, so that its job waits without spending an attempt.
func TestWaitBeyondDeadlineIsRateLimited(t *testing.T) {
	t.Parallel()
	url := migrated(t)
	p := newProcess(t, url, "clerk", 0.2) // a slot every 5 s, burst 1
	if err := p.budget.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv, _, served := limitedServer(t, 1000, 1000)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	_, err := p.client.Do(req)
	var rl *provider.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 2*time.Second || rl.RetryAfter > 5*time.Second {
		t.Fatalf("request whose slot is after its deadline: %v, want a RateLimitedError of 2 to 5 s", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the request waited until its deadline instead of failing at once")
	}
	if served.Load() != 0 {
		t.Errorf("the provider got %d requests, want none", served.Load())
	}
}

// TestNewRefusesBadLimit: a limit that is not a positive number is refused.
func TestNewRefusesBadLimit(t *testing.T) {
	t.Parallel()
	for _, l := range []float64{0, -1} {
		if _, err := ratelimit.New(ratelimit.Config{Provider: "clerk", Limit: l, DB: &pgxpool.Pool{}, Store: layout}); err == nil {
			t.Errorf("limit %v accepted", l)
		}
	}
}

// TestParseRetryAfter: seconds, an HTTP date, and what is not one.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "0": 0, "-2": 0, "soon": 0, "100000": time.Minute,
		now.Add(5 * time.Second).Format(http.TimeFormat): 5 * time.Second,
	} {
		if got := ratelimit.ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

// TestHighLimitReservesAhead: at a high limit, requests made one at a time
// do not each ask the database for a slot: a reservation (each reports the
// rate once) serves several of them. At a low limit, each reserves for
// itself only (the shared budget is not spent ahead).
func TestHighLimitReservesAhead(t *testing.T) {
	url := migrated(t)
	srv, _, _ := limitedServer(t, 1e9, 1e9)
	for _, c := range []struct {
		prov      string
		limit     float64
		maxReserv int
	}{{"stackauth", 1e6, 10}, {"clerk", 50, 40}} {
		p := newProcess(t, url, c.prov, c.limit)
		const n = 40
		if failed := hammer(t, srv.URL, n, 1, p.client); failed != 0 {
			t.Fatalf("%s: %d requests failed", c.prov, failed)
		}
		p.obs.mu.Lock()
		reservations, granted := len(p.obs.rates), p.obs.granted
		p.obs.mu.Unlock()
		if granted != n || reservations == 0 || reservations > c.maxReserv {
			t.Errorf("%s at %v/s: %d requests granted after %d reservations, want %d after 1..%d", c.prov, c.limit, granted, reservations, n, c.maxReserv)
		}
		if c.limit < 1/0.01 && reservations != n {
			t.Errorf("%s at %v/s: %d reservations for %d one-at-a-time requests, want one each", c.prov, c.limit, reservations, n)
		}
	}
}

// TestUrgentRequestGoesFirst: with lookups queued for the next 1.5 s of a
// budget, an urgent request (a backfill's list page) takes the
// earliest queued slot instead of the last: it goes before all but the
// first of them, and the budget grants no more slots than the rate allows
// (the request whose slot it took queues again).
func TestUrgentRequestGoesFirst(t *testing.T) {
	t.Parallel()
	url := migrated(t)
	p := newProcess(t, url, "workos", 10) // a slot every 100 ms, burst 1
	// With nothing queued, an urgent request queues as any other.
	if err := p.budget.Wait(ratelimit.WithUrgency(t.Context())); err != nil {
		t.Fatal(err)
	}
	const queued = 15
	var mu sync.Mutex
	var order []int // -1: the urgent request
	var wg sync.WaitGroup
	for i := range queued {
		wg.Go(func() {
			if err := p.budget.Wait(t.Context()); err != nil {
				t.Errorf("lookup %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for ratelimit.Sleeping(p.budget) < queued-1 { // the first may already be due
		if time.Now().After(deadline) {
			t.Fatalf("%d lookups queued after 20 s, want %d", ratelimit.Sleeping(p.budget), queued-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.budget.Wait(ratelimit.WithUrgency(t.Context())); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := len(order)
	order = append(order, -1)
	mu.Unlock()
	wg.Wait()
	if before > 2 {
		t.Errorf("the urgent request went after %d of %d queued lookups, want at most 2 (it takes the earliest queued slot)", before, queued)
	}
	pool := pgtest.NewPool(t, url, 1)
	rep, err := layout.RateLimits().Get(t.Context(), pool, "workos", store.RateLimitRecovery)
	if err != nil || rep == nil {
		t.Fatalf("budget row: %v %v", rep, err)
	}
	// Each request used one slot; slots reserved ahead and unused may add
	// a few, never one per bumped request.
	if total := int64(queued + 2); rep.Granted < total || rep.Granted > total+int64(p.budget.Limit()) {
		t.Errorf("the shared budget granted %d slots for %d requests", rep.Granted, total)
	}
	if p.obs.granted != queued+2 {
		t.Errorf("granted %d requests, want %d", p.obs.granted, queued+2)
	}
}
