package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rateLimitMetrics report each provider's request budget (package
// ratelimit): its limit and effective rate, the requests it let go, the
// time they waited for it, and the 429s that slowed it down.
type rateLimitMetrics struct {
	limit     *prometheus.GaugeVec
	effective *prometheus.GaugeVec
	granted   *prometheus.CounterVec
	waited    *prometheus.CounterVec
	throttled *prometheus.CounterVec
}

func newRateLimitMetrics(r *prometheus.Registry) *rateLimitMetrics {
	rl := &rateLimitMetrics{
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_provider_rate_limit", Help: "Configured most provider API requests per second, across all usersync processes.",
		}, []string{"provider"}),
		effective: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_provider_rate_limit_effective", Help: "The shared request budget's current rate (requests per second): the limit, or less while it recovers from a 429.",
		}, []string{"provider"}),
		granted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_provider_rate_limit_granted_total", Help: "Provider API requests this process let go under the request budget.",
		}, []string{"provider"}),
		waited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_provider_rate_limit_wait_seconds_total", Help: "Time this process's provider API requests waited for the request budget, in all.",
		}, []string{"provider"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_provider_rate_limit_throttled_total", Help: "Provider 429 answers seen by this process, by whether they slowed the shared budget down (slowed=true) or came while it was already slowed.",
		}, []string{"provider", "slowed"}),
	}
	r.MustRegister(rl.limit, rl.effective, rl.granted, rl.waited, rl.throttled)
	return rl
}

func (rl *rateLimitMetrics) add(p string) {
	rl.limit.WithLabelValues(p).Set(0)
	rl.effective.WithLabelValues(p).Set(0)
	rl.granted.WithLabelValues(p)
	rl.waited.WithLabelValues(p)
	rl.throttled.WithLabelValues(p, "true")
	rl.throttled.WithLabelValues(p, "false")
}

// SetRateLimit records provider's configured limit (requests per second),
// which is also its effective rate until the budget says otherwise.
func (m *Metrics) SetRateLimit(provider string, limit float64) {
	m.rl.limit.WithLabelValues(provider).Set(limit)
	m.rl.effective.WithLabelValues(provider).Set(limit)
}

// RateLimitGranted implements ratelimit.Observer.
func (m *Metrics) RateLimitGranted(provider string, waited time.Duration) {
	m.rl.granted.WithLabelValues(provider).Inc()
	m.rl.waited.WithLabelValues(provider).Add(waited.Seconds())
}

// RateLimitRate implements ratelimit.Observer.
func (m *Metrics) RateLimitRate(provider string, rate float64) {
	m.rl.effective.WithLabelValues(provider).Set(rate)
}

// RateLimitThrottled implements ratelimit.Observer.
func (m *Metrics) RateLimitThrottled(provider string, slowed bool) {
	l := "false"
	if slowed {
		l = "true"
	}
	m.rl.throttled.WithLabelValues(provider, l).Inc()
}
