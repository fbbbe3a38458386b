// Package metrics holds usersync's Prometheus metrics (served at /metrics).
// Label sets are bounded: provider, event type, outcome, status class, queue,
// state — never a user id.
package metrics

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/usersync/usersync/internal/store"
)

// Metrics implements the observers of packages webhook and worker, and a
// provider HTTP transport that measures API calls.
type Metrics struct {
	Registry *prometheus.Registry

	webhooks      *prometheus.CounterVec
	syncs         *prometheus.CounterVec
	lag           *prometheus.HistogramVec
	apiDuration   *prometheus.HistogramVec
	apiRequests   *prometheus.CounterVec
	backfillPages *prometheus.CounterVec
	backfillUsers *prometheus.CounterVec
	lastBackfill  *prometheus.GaugeVec
	jobs          *prometheus.GaugeVec
	badCreds      *prometheus.GaugeVec
	orgSyncs      *prometheus.CounterVec
	orgPages      *prometheus.CounterVec
	orgListed     *prometheus.CounterVec
	status        *StatusRecorder

	mu        sync.Mutex
	providers []string // as given to AddProviders
	guard     *guardMetrics
	rl        *rateLimitMetrics
}

// Outcomes of sync_user jobs, as the "outcome" label of usersync_syncs_total.
var syncOutcomes = []string{"changed", "unchanged", "deleted", "stale",
	"rate_limited", "bad_credentials", "provider_error", "database_error"}

// userEventTypes are the user event types every provider sends (all three
// name them alike); their series exist from start.
var userEventTypes = []string{"user.created", "user.updated", "user.deleted"}

// statusClasses are the values of the "status_class" label.
var statusClasses = []string{"2xx", "3xx", "4xx", "429", "5xx", "error"}

// jobStates are River's job states, as the "state" label of usersync_river_jobs.
var jobStates = []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}

// New registers every metric family, plus Go and process collectors.
func New(status *StatusRecorder) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		status:   status,
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_webhooks_total", Help: "Webhook deliveries received, by provider, event type and outcome.",
		}, []string{"provider", "event_type", "outcome"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_syncs_total", Help: "sync_user jobs finished, by provider and outcome.",
		}, []string{"provider", "outcome"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usersync_webhook_to_row_seconds", Help: "Time from a sync job's enqueueing (webhook receipt) to its committed row.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"provider"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usersync_provider_request_duration_seconds", Help: "Provider API request duration, by provider and status class.",
			Buckets: prometheus.DefBuckets,
		}, []string{"provider", "status_class"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_provider_requests_total", Help: "Provider API requests, by provider and status class (2xx, 4xx, 429, 5xx, error).",
		}, []string{"provider", "status_class"}),
		backfillPages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_backfill_pages_total", Help: "Backfill pages committed, by provider.",
		}, []string{"provider"}),
		backfillUsers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_backfill_users_total", Help: "Users listed by backfill pages, by provider.",
		}, []string{"provider"}),
		lastBackfill: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_backfill_last_complete_age_seconds", Help: "Age of the last complete backfill run, by provider (+Inf while none has completed).",
		}, []string{"provider"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_river_jobs", Help: "River jobs by queue and state (sampled).",
		}, []string{"queue", "state"}),
		badCreds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_provider_bad_credentials", Help: "1 when the provider last rejected usersync's credentials.",
		}, []string{"provider"}),
		orgSyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_organization_syncs_total", Help: "sync_organization jobs committed, by provider and outcome (USERSYNC_ORGANIZATIONS=on; failures count in usersync_syncs_total).",
		}, []string{"provider", "outcome"}),
		orgPages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_backfill_organization_pages_total", Help: "Organizations backfill pages committed, by provider.",
		}, []string{"provider"}),
		orgListed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersync_backfill_organizations_total", Help: "Organizations listed by backfill pages, by provider.",
		}, []string{"provider"}),
	}
	r.MustRegister(m.webhooks, m.syncs, m.lag, m.apiDuration, m.apiRequests, m.backfillPages, m.backfillUsers,
		m.lastBackfill, m.jobs, m.badCreds, m.orgSyncs, m.orgPages, m.orgListed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.guard = newGuardMetrics(r)
	m.rl = newRateLimitMetrics(r)
	return m
}

// AddProviders creates every series of the named providers at zero (and the
// age of their last complete backfill at +Inf until a sample says
// otherwise), so that /metrics shows them, and alerts on them can fire,
// before any traffic arrives.
func (m *Metrics) AddProviders(names ...string) {
	m.mu.Lock()
	m.providers = append(m.providers, names...)
	m.mu.Unlock()
	for _, p := range names {
		for _, t := range userEventTypes {
			m.webhooks.WithLabelValues(p, t, "enqueued")
		}
		for _, o := range syncOutcomes {
			m.syncs.WithLabelValues(p, o)
		}
		m.lag.WithLabelValues(p)
		for _, c := range statusClasses {
			m.apiRequests.WithLabelValues(p, c)
			m.apiDuration.WithLabelValues(p, c)
		}
		m.backfillPages.WithLabelValues(p)
		m.backfillUsers.WithLabelValues(p)
		m.badCreds.WithLabelValues(p).Set(0)
		m.lastBackfill.WithLabelValues(p).Set(math.Inf(1))
		m.zeroJobs(p)
		m.rl.add(p)
	}
}

// zeroJobs creates the job series of provider p's queues at zero.
func (m *Metrics) zeroJobs(p string) {
	for _, q := range []string{"sync_" + p, "backfill_" + p} {
		for _, st := range jobStates {
			m.jobs.WithLabelValues(q, st).Set(0)
		}
	}
}

func (m *Metrics) providerNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.providers...)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttpHandler(m.Registry)
}

// Webhook implements webhook.Observer.
func (m *Metrics) Webhook(provider, eventType, outcome string) {
	if eventType == "" {
		eventType = "unknown"
	}
	m.webhooks.WithLabelValues(provider, eventType, outcome).Inc()
	if outcome == "enqueued" && m.status != nil {
		m.status.Webhook(provider)
	}
}

// Synced implements worker.Observer.
func (m *Metrics) Synced(provider, outcome string, lag time.Duration) {
	m.syncs.WithLabelValues(provider, outcome).Inc()
	m.lag.WithLabelValues(provider).Observe(lag.Seconds())
	m.badCreds.WithLabelValues(provider).Set(0)
	if m.status != nil {
		m.status.Synced(provider)
	}
}

// SyncFailed implements worker.Observer.
func (m *Metrics) SyncFailed(provider, kind string, err error) {
	m.syncs.WithLabelValues(provider, kind).Inc()
	if kind == "bad_credentials" {
		m.badCreds.WithLabelValues(provider).Set(1)
	}
	if m.status != nil {
		m.status.Failed(provider, kind, err)
	}
}

// BackfillPage implements worker.Observer.
func (m *Metrics) BackfillPage(provider string, listed, written int, last bool) {
	m.backfillPages.WithLabelValues(provider).Inc()
	m.backfillUsers.WithLabelValues(provider).Add(float64(listed))
	if last {
		m.lastBackfill.WithLabelValues(provider).Set(0)
		m.guard.backfillCompleted(provider)
	}
}

// OrganizationSynced implements worker.OrganizationObserver.
func (m *Metrics) OrganizationSynced(provider, outcome string, _ time.Duration) {
	m.orgSyncs.WithLabelValues(provider, outcome).Inc()
	m.badCreds.WithLabelValues(provider).Set(0)
	if m.status != nil {
		m.status.Synced(provider)
	}
}

// OrganizationBackfillPage implements worker.OrganizationObserver.
func (m *Metrics) OrganizationBackfillPage(provider string, listed, _ int, _ bool) {
	m.orgPages.WithLabelValues(provider).Inc()
	m.orgListed.WithLabelValues(provider).Add(float64(listed))
}

// Transport wraps base so every provider API request is counted and timed.
func (m *Metrics) Transport(provider string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := base.RoundTrip(req)
		class := "error"
		if err == nil {
			class = statusClass(resp.StatusCode)
		}
		m.apiRequests.WithLabelValues(provider, class).Inc()
		m.apiDuration.WithLabelValues(provider, class).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func statusClass(code int) string {
	if code == 429 {
		return "429"
	}
	return strconv.Itoa(code/100) + "xx"
}

// Sample refreshes the sampled gauges (jobs by queue and state, age of the
// last complete backfill) at once and then every interval until ctx is done.
// One cheap query each time.
func (m *Metrics) Sample(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, internalSchema string, interval time.Duration, logger *slog.Logger) {
	// The binary runs River in the internal schema.
	m.SampleEvery(ctx, db, store.New(store.Schemas{Internal: internalSchema, River: internalSchema}), interval, logger)
}

// SampleEvery is Sample for the tables of st, whose River schema may
// differ from its internal one.
func (m *Metrics) SampleEvery(ctx context.Context, db store.Querier, st *store.Store, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := m.SampleStore(ctx, db, st); err != nil && ctx.Err() == nil {
			logger.Debug("metrics sample failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SampleOnce refreshes the sampled gauges once.
func (m *Metrics) SampleOnce(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, internalSchema string) error {
	return m.sampleOnce(ctx, db, internalSchema)
}

func (m *Metrics) sampleOnce(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, internalSchema string) error {
	// The binary runs River in the internal schema.
	return m.SampleStore(ctx, db, store.New(store.Schemas{Internal: internalSchema, River: internalSchema}))
}

// SampleStore refreshes the sampled gauges once from the tables of st,
// whose River schema may differ from its internal one.
func (m *Metrics) SampleStore(ctx context.Context, db store.Querier, st *store.Store) error {
	counts, err := st.Jobs.CountByQueue(ctx, db)
	if err != nil {
		return err
	}
	m.jobs.Reset()
	for _, p := range m.providerNames() {
		m.zeroJobs(p)
	}
	for _, c := range counts {
		m.jobs.WithLabelValues(c.Queue, c.State).Set(float64(c.Count))
	}
	ages, err := st.Runs.LastCompleteAges(ctx, db)
	if err != nil {
		return err
	}
	for p, age := range ages {
		m.lastBackfill.WithLabelValues(p).Set(age)
	}
	return m.guard.sample(ctx, st, db)
}
