package fakekit

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Faults is the latency and failure injection shared by the fakes: embed it
// (or hold one) and call [Faults.Intercept] first in every API handler. It
// implements the SetLatency, FailNext, ClearFaults and Requests methods of
// [Fake]. The zero value injects nothing and is ready to use.
type Faults struct {
	requests atomic.Int64

	mu         sync.Mutex
	latency    time.Duration
	failLeft   int // < 0: until ClearFaults
	failStatus int
	retryAfter time.Duration

	limiter RateLimiter
}

// SetRateLimit makes the fake enforce a rate limit of perSecond requests
// with bursts of up to burst, answering 429 with Retry-After beyond it (in
// the provider's own error shape); perSecond ≤ 0 removes it. ClearFaults
// leaves it in place: it is the provider's limit, not a fault.
func (f *Faults) SetRateLimit(perSecond float64, burst int) { f.limiter.Set(perSecond, burst) }

// RateLimited returns how many API requests the rate limit answered 429.
func (f *Faults) RateLimited() int64 { return f.limiter.Limited() }

// SetLatency delays every API response by d.
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// FailNext makes the next n API requests answer status (n < 0: all until
// ClearFaults). With status 429 the answer carries Retry-After: retryAfter in
// whole seconds (at least 1). Status 0 drops the connection without answering.
func (f *Faults) FailNext(n int, status int, retryAfter time.Duration) {
	f.mu.Lock()
	f.failLeft = n
	f.failStatus = status
	f.retryAfter = retryAfter
	f.mu.Unlock()
}

// ClearFaults removes latency and failure injection.
func (f *Faults) ClearFaults() {
	f.mu.Lock()
	f.latency = 0
	f.failLeft = 0
	f.failStatus = 0
	f.retryAfter = 0
	f.mu.Unlock()
}

// Requests returns how many API requests reached Intercept.
func (f *Faults) Requests() int64 { return f.requests.Load() }

// Intercept counts the request, takes a token of the rate limit
// (SetRateLimit), applies the injected latency (returning early if the
// client goes away) and, when the rate limit is exceeded or a failure is
// due, answers it: status 0
// drops the connection, any other status is written by writeError (after the
// Retry-After header is set for 429) so each fake keeps its own error shape.
// It reports whether the request has been answered; the handler must then
// return.
func (f *Faults) Intercept(w http.ResponseWriter, r *http.Request, writeError func(w http.ResponseWriter, status int)) bool {
	f.requests.Add(1)
	allowed, limitedFor := f.limiter.Allow(time.Now())

	f.mu.Lock()
	latency := f.latency
	fail := f.failLeft != 0
	status, retryAfter := f.failStatus, f.retryAfter
	if f.failLeft > 0 {
		f.failLeft--
	}
	f.mu.Unlock()

	if latency > 0 {
		timer := time.NewTimer(latency)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return true
		}
	}
	if !allowed {
		w.Header().Set("Retry-After", RetryAfterHeader(limitedFor))
		writeError(w, http.StatusTooManyRequests)
		return true
	}
	if !fail {
		return false
	}
	if status == 0 {
		DropConnection(w)
		return true
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", RetryAfterHeader(retryAfter))
	}
	writeError(w, status)
	return true
}

// DropConnection closes the client's connection without writing a response
// (a connection reset as the client sees it). When the connection cannot be
// hijacked (HTTP/2), it aborts the handler with http.ErrAbortHandler.
func DropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
