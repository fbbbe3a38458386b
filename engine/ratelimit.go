package engine

import (
	"fmt"
	"log/slog"
	"math"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersync/usersync/internal/ratelimit"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/provider"
)

// Default request budgets (requests per second, across all processes): each
// provider's documented production limit less a 10% margin, so that
// requests usersync does not make (the application's own, the dashboard's)
// and clock differences leave room. Sources in docs/limits.md.
const (
	// DefaultClerkRateLimit: Clerk's Backend API allows 1,000 requests per
	// 10 s per production instance (100 per 10 s on development instances:
	// set CLERK_RATE_LIMIT=9 there).
	DefaultClerkRateLimit = 90
	// DefaultWorkOSRateLimit: WorkOS allows 1,000 user-management reads per
	// 10 s per environment (and 6,000 requests per 60 s in all).
	DefaultWorkOSRateLimit = 90
	// DefaultStackRateLimit: Stack Auth documents no limit (its hosted API
	// answers 429 with Retry-After when one is reached); usersync keeps to
	// the same rate as for the other providers. A self-hosted Stack Auth
	// may allow more.
	DefaultStackRateLimit = 90
)

// DefaultRateLimit returns the default request budget of the named
// provider, in requests per second.
func DefaultRateLimit(provider string) float64 {
	switch provider {
	case "clerk":
		return DefaultClerkRateLimit
	case "workos":
		return DefaultWorkOSRateLimit
	default:
		return DefaultStackRateLimit
	}
}

// bindRateLimits gives each provider of ps its request budget on pool,
// spent by the requests made through m's transports.
func bindRateLimits(pool *pgxpool.Pool, st *store.Store, m *Metrics, ps []provider.Provider, limits map[string]float64, logger *slog.Logger) error {
	names := map[string]bool{}
	for _, p := range ps {
		names[p.Name()] = true
	}
	for name, v := range limits {
		if !names[name] {
			return fmt.Errorf("usersync: Config.RateLimits names provider %q, which is not configured", name)
		}
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("usersync: Config.RateLimits[%q] is %v: give a positive number of requests per second", name, v)
		}
	}
	for _, p := range ps {
		name := p.Name()
		limit, ok := limits[name]
		if !ok {
			limit = DefaultRateLimit(name)
		}
		b, err := ratelimit.New(ratelimit.Config{Provider: name, Limit: limit, DB: pool, Store: st, Observer: m.m, Logger: logger})
		if err != nil {
			return fmt.Errorf("usersync: %w", err)
		}
		m.gates.Bind(b)
		m.m.SetRateLimit(name, limit)
	}
	return nil
}
