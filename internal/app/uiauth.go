package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/usersync/usersync/provider"
)

// Login throttling for the River UI (docs/http.md): failed logins are logged
// (with the user name tried, never the password) and limited, per client
// address and overall, so that guessing passwords drops from thousands of
// tries a second to about one a second per address. A request from an
// address (or at a time) whose failure allowance is spent is answered 429
// without its credentials being checked, so a throttled guess learns
// nothing. Successful logins spend nothing.
const (
	// uiFailBurst failed logins from one address are answered at once...
	uiFailBurst = 10
	// ...then one more each uiFailEvery.
	uiFailEvery = time.Second
	// All addresses together: uiGlobalBurst, then uiGlobalRate a second.
	uiGlobalBurst = 30
	uiGlobalRate  = 10
	// uiMaxTracked bounds the addresses remembered (idle ones are dropped).
	uiMaxTracked = 10000
)

// bucket is a token bucket refilled lazily.
type bucket struct {
	tokens float64
	last   time.Time
	warned bool // the throttle was logged since the bucket was last full
}

func (b *bucket) refill(now time.Time, burst, perSec float64) {
	if !b.last.IsZero() {
		b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*perSec)
	}
	b.last = now
}

// loginGuard is HTTP basic auth with failed logins logged and throttled.
type loginGuard struct {
	wantU, wantP [sha256.Size]byte
	logger       *slog.Logger
	now          func() time.Time

	mu     sync.Mutex
	perIP  map[string]*bucket
	global bucket
}

func newLoginGuard(user, password string, logger *slog.Logger, now func() time.Time) *loginGuard {
	if now == nil {
		now = time.Now
	}
	return &loginGuard{wantU: sha256.Sum256([]byte(user)), wantP: sha256.Sum256([]byte(password)), logger: logger, now: now,
		perIP: map[string]*bucket{}, global: bucket{tokens: uiGlobalBurst}}
}

// admit reports whether a login attempt from ip may be checked now, and
// when not, how long until it may.
func (g *loginGuard) admit(ip string) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.global.refill(now, uiGlobalBurst, uiGlobalRate)
	b := g.perIP[ip]
	if b != nil {
		b.refill(now, uiFailBurst, 1/uiFailEvery.Seconds())
	}
	switch {
	case b != nil && b.tokens < 1:
		if !b.warned {
			b.warned = true
			g.logger.Warn("River UI: too many failed logins from this address; further attempts are refused for a while", "remote", ip)
		}
		return false, time.Duration((1 - b.tokens) * float64(uiFailEvery))
	case g.global.tokens < 1:
		if !g.global.warned {
			g.global.warned = true
			g.logger.Warn("River UI: too many failed logins overall; attempts are refused for a while")
		}
		return false, time.Duration((1 - g.global.tokens) / uiGlobalRate * float64(time.Second))
	}
	return true, 0
}

// failed spends one failure from ip's and the global allowance.
func (g *loginGuard) failed(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	b := g.perIP[ip]
	if b == nil {
		if len(g.perIP) >= uiMaxTracked {
			g.prune(now)
		}
		b = &bucket{tokens: uiFailBurst, last: now}
		g.perIP[ip] = b
	}
	b.refill(now, uiFailBurst, 1/uiFailEvery.Seconds())
	b.tokens = math.Max(0, b.tokens-1)
	g.global.refill(now, uiGlobalBurst, uiGlobalRate)
	g.global.tokens = math.Max(0, g.global.tokens-1)
	if b.tokens >= 1 {
		b.warned = false
	}
	if g.global.tokens >= 1 {
		g.global.warned = false
	}
}

// prune drops addresses whose allowance is whole again (nothing to
// remember), or all of them when that frees nothing.
func (g *loginGuard) prune(now time.Time) {
	for ip, b := range g.perIP {
		b.refill(now, uiFailBurst, 1/uiFailEvery.Seconds())
		if b.tokens >= uiFailBurst {
			delete(g.perIP, ip)
		}
	}
	if len(g.perIP) >= uiMaxTracked {
		clear(g.perIP)
	}
}

// wrap guards next.
func (g *loginGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok {
			// No credentials yet (a browser's first request): the challenge.
			w.Header().Set("WWW-Authenticate", `Basic realm="usersync River UI", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		ip := clientIP(r)
		if allowed, wait := g.admit(ip); !allowed {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
			http.Error(w, "too many failed logins; retry later", http.StatusTooManyRequests)
			return
		}
		gotU, gotP := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		if subtle.ConstantTimeCompare(gotU[:], g.wantU[:])&subtle.ConstantTimeCompare(gotP[:], g.wantP[:]) != 1 {
			g.failed(ip)
			// The user name is logged (cut short, control characters
			// removed); the password never is.
			g.logger.Warn("River UI: failed login", "user", provider.Snippet([]byte(u), 64), "remote", ip)
			w.Header().Set("WWW-Authenticate", `Basic realm="usersync River UI", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the address the request came from (the TCP peer: forwarding
// headers are not trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
