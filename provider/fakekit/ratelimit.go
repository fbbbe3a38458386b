package fakekit

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RateLimiter is a provider's request rate limit as the fakes enforce it: a
// token bucket refilled at a steady rate up to its burst, one token per API
// request; a request that finds no token is answered 429 with Retry-After
// (whole seconds until a token is there, at least 1). The zero value
// limits nothing. It is safe for concurrent use.
type RateLimiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; 0 = off
	burst  float64
	tokens float64
	last   time.Time

	limited atomic.Int64
}

// Set limits requests to perSecond with bursts of up to burst (at least 1)
// requests; perSecond ≤ 0 removes the limit. The bucket starts full.
func (l *RateLimiter) Set(perSecond float64, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if perSecond <= 0 || math.IsNaN(perSecond) {
		l.rate = 0
		return
	}
	l.rate = perSecond
	l.burst = float64(max(burst, 1))
	l.tokens = l.burst
	l.last = time.Now()
}

// Allow takes a token for a request arriving now. When there is none it
// counts the request as limited and returns the Retry-After to answer.
func (l *RateLimiter) Allow(now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate == 0 {
		return true, 0
	}
	if now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
	}
	if l.tokens >= 1 {
		l.tokens--
		return true, 0
	}
	l.limited.Add(1)
	wait := (1 - l.tokens) / l.rate
	return false, time.Duration(max(1, math.Ceil(wait))) * time.Second
}

// Limited returns how many requests were answered 429 by the limit.
func (l *RateLimiter) Limited() int64 { return l.limited.Load() }

// RetryAfterHeader renders d as a Retry-After value: whole seconds,
// rounded up, at least 1.
func RetryAfterHeader(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
