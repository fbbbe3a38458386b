package app

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestUILoginThrottle (docs/http.md): failed River UI logins are logged without
// the password tried, and limited: from one address, uiFailBurst at once and
// then one a second; overall, uiGlobalBurst and then uiGlobalRate a second.
// A throttled attempt is not checked (429); a right password from another
// address still gets in.
func TestUILoginThrottle(t *testing.T) {
	const user, pw = "ops", "right-password-123"
	var logs bytes.Buffer
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := newLoginGuard(user, pw, slog.New(slog.NewTextHandler(&logs, nil)), clock.now)
	h := g.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	try := func(ip, u, p string) int {
		req := httptest.NewRequest(http.MethodGet, "/riverui/", nil)
		req.RemoteAddr = ip + ":5555"
		req.SetBasicAuth(u, p)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 429 && rec.Header().Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
		return rec.Code
	}
	count := func(ip string, n int, at func(i int) string) (checked, throttled int) {
		for i := range n {
			switch code := try(ip, user, at(i)); code {
			case 401:
				checked++
			case 429:
				throttled++
			default:
				t.Fatalf("wrong password answered %d", code)
			}
		}
		return
	}
	guess := func(i int) string { return fmt.Sprintf("guess-%04d-pw", i) }

	// 1000 guesses at once from one address: only the burst is checked.
	checked, throttled := count("203.0.113.7", 1000, guess)
	if checked != uiFailBurst || throttled != 1000-uiFailBurst {
		t.Fatalf("1000 guesses at once: %d checked, %d refused; want %d checked", checked, throttled, uiFailBurst)
	}
	// Ten seconds later: about one more a second, however many are tried.
	total := 0
	for range 10 {
		clock.add(time.Second)
		c, _ := count("203.0.113.7", 100, guess)
		total += c
	}
	if total > 10 || total < 9 {
		t.Fatalf("over 10 s of 100 guesses a second: %d checked, want about 10", total)
	}
	// Even the right password is not checked while the address is throttled.
	if code := try("203.0.113.7", user, pw); code != 429 {
		t.Errorf("right password from a throttled address: %d, want 429", code)
	}
	// From another address it gets in, and success spends nothing.
	for range 50 {
		if code := try("198.51.100.1", user, pw); code != 200 {
			t.Fatalf("right password: %d", code)
		}
	}
	// Without credentials: the challenge, nothing spent or logged.
	req := httptest.NewRequest(http.MethodGet, "/riverui/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d", rec.Code)
	}

	// Many addresses: the global allowance caps them all.
	clock.add(time.Hour)
	checked = 0
	for i := range 200 {
		c, _ := count(fmt.Sprintf("192.0.2.%d", i), 1, func(int) string { return "spread-guess-pw" })
		checked += c
	}
	if checked != uiGlobalBurst {
		t.Fatalf("200 addresses, one guess each: %d checked, want %d", checked, uiGlobalBurst)
	}

	out := logs.String()
	if n := strings.Count(out, "msg=\"River UI: failed login\""); n != uiFailBurst+total+uiGlobalBurst {
		t.Errorf("%d failed-login lines, want one per checked guess (%d)", n, uiFailBurst+total+uiGlobalBurst)
	}
	if !strings.Contains(out, "user=ops") || !strings.Contains(out, "too many failed logins") {
		t.Errorf("logs lack the user name or the throttle notice:\n%s", out)
	}
	if strings.Contains(out, "guess-") || strings.Contains(out, pw) || strings.Contains(out, "spread-guess") {
		t.Errorf("a tried password is in the log:\n%s", out)
	}
}
