package fakekit_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// TestRateLimitAnswers: each fake's rate limit answers the request beyond
// it 429 with Retry-After (whole seconds until a token is back) and the
// provider's own body (docs/providers.md): Stack Auth {"message"}, Clerk's
// ClerkErrors with code too_many_requests, WorkOS {"message","code"}.
func TestRateLimitAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		fake fakekit.Fake
		path string
		want map[string]any // the body, minus clerk_trace_id
	}{
		{"stackauth", stackfake.New(stackfake.Options{}), "/api/v1/users",
			map[string]any{"message": "Too many requests. Please try again later."}},
		{"clerk", clerkfake.New(clerkfake.Options{}), "/users",
			map[string]any{"errors": []any{map[string]any{"message": "Too many requests",
				"long_message": "Too many requests, please try again later.", "code": "too_many_requests"}}}},
		{"workos", workosfake.New(workosfake.Options{}), "/user_management/users",
			map[string]any{"message": "Too many requests.", "code": "rate_limit_exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.fake.Close()
			// One request per 4 s, no burst: the first request takes the
			// token, the second finds none.
			tc.fake.SetRateLimit(0.25, 1)
			get := func() *http.Response {
				resp, err := http.Get(tc.fake.URL() + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			first := get()
			first.Body.Close()
			if first.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("first request answered 429")
			}
			resp := get()
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("second request: status %d, want 429", resp.StatusCode)
			}
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 4 {
				t.Errorf("Retry-After = %q, want whole seconds from 1 to 4", resp.Header.Get("Retry-After"))
			}
			raw, _ := io.ReadAll(resp.Body)
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", raw, err)
			}
			delete(body, "clerk_trace_id")
			if !reflect.DeepEqual(body, tc.want) {
				t.Errorf("body = %s, want %v", raw, tc.want)
			}
			if n := tc.fake.RateLimited(); n != 1 {
				t.Errorf("RateLimited() = %d, want 1", n)
			}
			if n := tc.fake.Requests(); n != 2 {
				t.Errorf("Requests() = %d, want 2", n)
			}
		})
	}
}

// TestRateLimiterBucket: the token bucket lets a burst through, then one
// request per 1/rate, and counts what it refuses.
func TestRateLimiterBucket(t *testing.T) {
	var l fakekit.RateLimiter
	t0 := time.Now()
	if ok, _ := l.Allow(t0); !ok {
		t.Fatal("the zero value refused a request")
	}
	l.Set(10, 3)
	now := time.Now()
	for i := range 3 {
		if ok, _ := l.Allow(now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, ra := l.Allow(now)
	if ok || ra != time.Second {
		t.Fatalf("beyond the burst: ok=%v retryAfter=%s, want refused with 1s", ok, ra)
	}
	if ok, _ := l.Allow(now.Add(100 * time.Millisecond)); !ok {
		t.Fatal("a request 1/rate later was refused")
	}
	if ok, _ := l.Allow(now.Add(110 * time.Millisecond)); ok {
		t.Fatal("a second request within 1/rate was let through")
	}
	if l.Limited() != 2 {
		t.Errorf("Limited() = %d, want 2", l.Limited())
	}
}
