// Package ratelimit keeps usersync's provider API requests within a
// per-provider budget shared by every usersync process on the database
// (docs/limits.md). The budget lives in one row per provider (package store,
// table rate_limit); each process reserves a few request slots at a time
// from it, for the requests waiting at that moment, and lets each request go
// at its slot's time, so the database is asked once per batch rather than
// once per request, and no request polls. A 429 that still happens slows the
// shared budget down for every process.
package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/provider"
)

// Tuning of every budget.
const (
	// burstSeconds is how many seconds' worth of requests may go at once
	// after a quiet time.
	burstSeconds = 0.1
	// batchSeconds bounds one reservation: at most this many seconds' worth
	// of requests.
	batchSeconds = 0.2
	// aheadSeconds is how many seconds' worth of slots a reservation takes
	// at least (at most aheadMax), so that at a high limit a process asks
	// the database once per few requests, not once per request, even when
	// its requests come one at a time. Below 1/aheadSeconds requests per
	// second it reserves only for the requests waiting.
	aheadSeconds = 0.01
	aheadMax     = 100
	// slowFactor multiplies the effective rate at a 429; slowFloor is the
	// lowest share of the limit it goes down to.
	slowFactor = 0.5
	slowFloor  = 1.0 / 64
	// slowGap: 429s within this long of a slowdown do not slow the budget
	// again (they answer requests sent before it).
	slowGap = time.Second
	// defaultPause is how long no request goes after a 429 without
	// Retry-After; maxPause bounds a provider's Retry-After.
	defaultPause = time.Second
	maxPause     = time.Minute
	// dbTimeout bounds one statement on the budget's row.
	dbTimeout = 5 * time.Second
)

// Observer is told how the budget is spent (internal/metrics implements it).
type Observer interface {
	// RateLimitGranted: a request of provider was let go after waiting.
	RateLimitGranted(provider string, waited time.Duration)
	// RateLimitRate: the shared budget's effective rate is now rate.
	RateLimitRate(provider string, rate float64)
	// RateLimitThrottled: the provider answered 429; slowed says whether
	// that slowed the shared budget down.
	RateLimitThrottled(provider string, slowed bool)
}

// Config configures one provider's Budget.
type Config struct {
	// Provider names the budget's row ("stackauth", "clerk", "workos").
	Provider string
	// Limit is the most requests per second across all processes (> 0).
	Limit float64
	// DB runs the budget's statements (a pool).
	DB store.DB
	// Store is the layout of usersync's tables.
	Store *store.Store
	// Observer, when set, is told how the budget is spent.
	Observer Observer
	// Logger receives warnings (a budget statement that failed).
	Logger *slog.Logger
}

// Budget is one provider's request budget in this process. It is safe for
// concurrent use.
type Budget struct {
	name     string
	db       store.DB
	q        store.RateLimits
	budget   store.Budget
	maxBatch int
	ahead    int
	obs      Observer
	log      *slog.Logger

	mu        sync.Mutex
	slots     []slot        // reserved and not yet used, in time order
	sleepers  []*sleeper    // queued requests waiting for their slot's time
	waiting   int           // requests waiting for the reservation under way
	reserving bool          // a reservation is under way
	reserved  chan struct{} // closed when it ends
}

// slot is one reserved request slot: the request may go from at, and the
// slot is dropped unused after expires (a burst's worth of time later).
type slot struct{ at, expires time.Time }

// New returns cfg's budget.
func New(cfg Config) (*Budget, error) {
	if !(cfg.Limit > 0) || math.IsInf(cfg.Limit, 0) {
		return nil, fmt.Errorf("rate limit of %s: %v is not a positive number of requests per second", cfg.Provider, cfg.Limit)
	}
	if cfg.DB == nil || cfg.Store == nil {
		return nil, fmt.Errorf("rate limit of %s: no database", cfg.Provider)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	obs := cfg.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	b := &Budget{name: cfg.Provider, db: cfg.DB, q: cfg.Store.RateLimits(), obs: obs, log: log,
		budget:   store.Budget{Limit: cfg.Limit, Burst: max(1, cfg.Limit*burstSeconds), Recover: store.RateLimitRecovery},
		maxBatch: max(1, int(cfg.Limit*batchSeconds)), reserved: make(chan struct{})}
	b.ahead = min(b.maxBatch, aheadMax, int(cfg.Limit*aheadSeconds))
	return b, nil
}

// Limit is the configured most requests per second.
func (b *Budget) Limit() float64 { return b.budget.Limit }

// Wait returns when a request may go: at once when this process holds a
// slot that is due, else at the time of the next slot it holds or reserves.
// It returns ctx's error if ctx ends first, a *provider.RateLimitedError
// saying how long to wait when the slot comes after ctx's deadline, and an
// error if the budget cannot be read (the request must then not go).
func (b *Budget) Wait(ctx context.Context) error {
	start := time.Now()
	if Urgent(ctx) {
		return b.waitUrgent(ctx, start)
	}
	for {
		b.mu.Lock()
		now := time.Now()
		for len(b.slots) > 0 && b.slots[0].expires.Before(now) {
			b.slots = b.slots[1:]
		}
		if len(b.slots) > 0 {
			s := b.slots[0]
			b.slots = b.slots[1:]
			d := s.at.Sub(now)
			if d <= 0 {
				b.mu.Unlock()
				b.obs.RateLimitGranted(b.name, time.Since(start))
				return nil
			}
			if err := pastDeadline(ctx, s, d); err != nil {
				b.mu.Unlock()
				b.giveBack(s)
				return err
			}
			sl := &sleeper{slot: s, bumped: make(chan struct{}, 1)}
			b.sleepers = append(b.sleepers, sl)
			b.mu.Unlock()
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-sl.bumped:
				t.Stop()
			case <-ctx.Done():
				t.Stop()
			}
			b.mu.Lock()
			held := b.dropSleeper(sl)
			b.mu.Unlock()
			if !held {
				// An urgent request took the slot: queue again.
				if err := ctx.Err(); err != nil {
					return err
				}
				continue
			}
			if err := ctx.Err(); err != nil {
				b.giveBack(s)
				return err
			}
			b.obs.RateLimitGranted(b.name, time.Since(start))
			return nil
		}
		if !b.reserving {
			b.reserving = true
			n := min(max(b.waiting+1, b.ahead), b.maxBatch)
			done := b.reserved
			b.mu.Unlock()
			err := b.reserve(ctx, n)
			b.mu.Lock()
			b.reserving = false
			b.reserved = make(chan struct{})
			b.mu.Unlock()
			close(done)
			if err != nil {
				return err
			}
			continue
		}
		done := b.reserved
		b.waiting++
		b.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

type urgentKey struct{}

// WithUrgency marks the provider requests made with ctx as urgent: a
// budget lets them go before the requests queued in its process. For
// requests that carry many users each (a backfill's list pages), which a
// queue of single-user lookups would otherwise hold back for seconds.
func WithUrgency(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

// Urgent reports whether ctx was marked by WithUrgency.
func Urgent(ctx context.Context) bool {
	v, _ := ctx.Value(urgentKey{}).(bool)
	return v
}

// waitUrgent serves an urgent request (WithUrgency) ahead of the queued
// ones: it takes the earliest of the process's unused slots and of the
// slots its queued requests sleep on (such a request queues again for a
// later one), reserving one when there is neither, so the budget's rate is
// unchanged.
func (b *Budget) waitUrgent(ctx context.Context, start time.Time) error {
	for {
		b.mu.Lock()
		now := time.Now()
		for len(b.slots) > 0 && b.slots[0].expires.Before(now) {
			b.slots = b.slots[1:]
		}
		var first *sleeper
		for _, sl := range b.sleepers {
			if sl.slot.at.After(now) && (first == nil || sl.slot.at.Before(first.slot.at)) {
				first = sl
			}
		}
		var s slot
		switch {
		case len(b.slots) > 0 && (first == nil || !first.slot.at.Before(b.slots[0].at)):
			s = b.slots[0]
			b.slots = b.slots[1:]
		case first != nil:
			b.dropSleeper(first)
			first.bumped <- struct{}{}
			s = first.slot
		default:
			b.mu.Unlock()
			if err := b.reserve(ctx, 1); err != nil {
				return err
			}
			continue
		}
		b.mu.Unlock()
		d := s.at.Sub(now)
		if d <= 0 {
			b.obs.RateLimitGranted(b.name, time.Since(start))
			return nil
		}
		if err := pastDeadline(ctx, s, d); err != nil {
			b.giveBack(s)
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			b.obs.RateLimitGranted(b.name, time.Since(start))
			return nil
		case <-ctx.Done():
			t.Stop()
			b.giveBack(s)
			return ctx.Err()
		}
	}
}

// pastDeadline is the answer to a request whose slot s, d from now, comes
// after its context's deadline, and nil for a slot in time: the request
// could not even start before its deadline, so it says when it could, as
// the provider would have (the job then waits without spending an
// attempt). The caller gives s back for the next request.
func pastDeadline(ctx context.Context, s slot, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && s.at.After(dl) {
		return &provider.RateLimitedError{RetryAfter: d}
	}
	return nil
}

// sleeper is a queued request waiting for the time of the slot it took; an
// urgent request may take the slot from it (bumped).
type sleeper struct {
	slot   slot
	bumped chan struct{} // buffered: the urgent request never blocks
}

// dropSleeper removes sl from the sleepers and reports whether it was there
// (it still holds its slot). b.mu must be held.
func (b *Budget) dropSleeper(sl *sleeper) bool {
	for i, x := range b.sleepers {
		if x == sl {
			b.sleepers = append(b.sleepers[:i], b.sleepers[i+1:]...)
			return true
		}
	}
	return false
}

// reserve reserves n slots from the shared budget and adds them to the
// process's.
func (b *Budget) reserve(ctx context.Context, n int) error {
	// Not cancelled with the request that happens to reserve: the slots
	// serve the others waiting too.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	res, err := b.q.Reserve(rctx, b.db, b.name, b.budget, n)
	if err != nil {
		return fmt.Errorf("%s request budget: %w", b.name, err)
	}
	now := time.Now()
	// A slot unused for a burst's worth of time after it became due is
	// dropped: using it later would let a burst go above the budget.
	keep := time.Duration(b.budget.Burst)*res.Interval + 50*time.Millisecond
	b.mu.Lock()
	for i := range n {
		at := now.Add(res.First + time.Duration(i)*res.Interval)
		b.slots = append(b.slots, slot{at: at, expires: maxTime(at, now).Add(keep)})
	}
	b.mu.Unlock()
	b.obs.RateLimitRate(b.name, res.Rate)
	return nil
}

// giveBack returns an unused slot (its request was cancelled).
func (b *Budget) giveBack(s slot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := 0
	for i < len(b.slots) && b.slots[i].at.Before(s.at) {
		i++
	}
	b.slots = append(b.slots[:i], append([]slot{s}, b.slots[i:]...)...)
}

// Throttled records that the provider answered a request 429, asking to
// wait retryAfter (0: it did not say): the slots this process holds are
// dropped (they were reserved at a rate the provider just refused), no
// process's request goes before retryAfter, and the shared rate slows down.
func (b *Budget) Throttled(ctx context.Context, retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = defaultPause
	}
	retryAfter = min(retryAfter, maxPause)
	b.mu.Lock()
	b.slots = nil
	b.mu.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	slowed, rate, err := b.q.Throttle(rctx, b.db, b.name, b.budget, retryAfter, slowGap, slowFactor, b.budget.Limit*slowFloor)
	if err != nil {
		b.log.Warn("could not slow the provider's request budget down after a 429", "provider", b.name, "err", err)
		b.obs.RateLimitThrottled(b.name, false)
		return
	}
	if slowed {
		b.log.Info("provider answered 429: request budget slowed down", "provider", b.name, "rate_per_second", rate, "retry_after", retryAfter)
	}
	b.obs.RateLimitThrottled(b.name, slowed)
	b.obs.RateLimitRate(b.name, rate)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type nopObserver struct{}

func (nopObserver) RateLimitGranted(string, time.Duration) {}
func (nopObserver) RateLimitRate(string, float64)          {}
func (nopObserver) RateLimitThrottled(string, bool)        {}

// Gates holds each provider's Budget, bound once the database is known;
// a transport built before that lets requests go unlimited until then.
type Gates struct {
	mu      sync.RWMutex
	budgets map[string]*Budget
}

// Bind makes b the budget of b's provider's requests.
func (g *Gates) Bind(b *Budget) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.budgets == nil {
		g.budgets = map[string]*Budget{}
	}
	g.budgets[b.name] = b
}

// Budget returns provider's budget (nil when none is bound).
func (g *Gates) Budget(provider string) *Budget {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.budgets[provider]
}

// Transport wraps base so that every request waits for provider's budget
// (when one is bound) before it goes, and each 429 answer slows the
// budget down. A request whose context ends while it waits fails with the
// context's error without being sent.
func (g *Gates) Transport(provider string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		b := g.Budget(provider)
		if b == nil {
			return base.RoundTrip(req)
		}
		if err := b.Wait(req.Context()); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, err
		}
		resp, err := base.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusTooManyRequests {
			b.Throttled(req.Context(), ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (relative to now); 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxPause/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
