package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// rateLimitVars are the request budget variables, by provider name.
var rateLimitVars = []struct{ provider, name string }{
	{"stackauth", "STACK_RATE_LIMIT"},
	{"clerk", "CLERK_RATE_LIMIT"},
	{"workos", "WORKOS_RATE_LIMIT"},
}

// maxRateLimit bounds a *_RATE_LIMIT value (requests per second).
const maxRateLimit = 1_000_000

// loadRateLimits reads STACK_RATE_LIMIT, CLERK_RATE_LIMIT and
// WORKOS_RATE_LIMIT: requests per second across all processes, a positive
// number. A malformed value is an error even when its provider is not
// enabled; only enabled providers' values are kept (the others default,
// see engine.DefaultRateLimit).
func (c *Config) loadRateLimits(getenv func(string) string) error {
	enabled := map[string]bool{"stackauth": c.Stack != nil, "clerk": c.Clerk != nil, "workos": c.WorkOS != nil}
	for _, v := range rateLimitVars {
		s := strings.TrimSpace(getenv(v.name))
		if s == "" {
			continue
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > maxRateLimit {
			return &Error{v.name, fmt.Sprintf("%q is not a positive number of requests per second, at most %d (e.g. 90 or 2.5)", s, maxRateLimit)}
		}
		if enabled[v.provider] {
			if c.RateLimits == nil {
				c.RateLimits = map[string]float64{}
			}
			c.RateLimits[v.provider] = f
		}
	}
	return nil
}
