package metrics_test

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/usersync/usersync/internal/metrics"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/worker"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

// series returns the gauge or counter values of family name, keyed by the
// values of the given labels joined with "/".
func series(t *testing.T, m *metrics.Metrics, name string, labels ...string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			key := ""
			for i, l := range labels {
				for _, lp := range mt.GetLabel() {
					if lp.GetName() == l {
						if i > 0 {
							key += "/"
						}
						key += lp.GetValue()
					}
				}
			}
			out[key] = value(mt)
		}
	}
	return out
}

func value(mt *dto.Metric) float64 {
	switch {
	case mt.Gauge != nil:
		return mt.Gauge.GetValue()
	case mt.Counter != nil:
		return mt.Counter.GetValue()
	case mt.Histogram != nil:
		return float64(mt.Histogram.GetSampleCount())
	}
	return math.NaN()
}

// Every per-provider series exists before any traffic, so dashboards and
// alerts (the backfill age above all) work on a fresh deployment.
func TestSeriesPresentFromStart(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.NewStatusRecorder())
	m.AddProviders("clerk")
	for _, c := range []struct {
		family string
		labels []string
		key    string
		want   float64
	}{
		{"usersync_syncs_total", []string{"provider", "outcome"}, "clerk/changed", 0},
		{"usersync_syncs_total", []string{"provider", "outcome"}, "clerk/bad_credentials", 0},
		{"usersync_webhooks_total", []string{"provider", "event_type", "outcome"}, "clerk/user.deleted/enqueued", 0},
		{"usersync_provider_requests_total", []string{"provider", "status_class"}, "clerk/429", 0},
		{"usersync_provider_bad_credentials", []string{"provider"}, "clerk", 0},
		{"usersync_backfill_pages_total", []string{"provider"}, "clerk", 0},
		{"usersync_webhook_to_row_seconds", []string{"provider"}, "clerk", 0},
		{"usersync_river_jobs", []string{"queue", "state"}, "sync_clerk/available", 0},
		{"usersync_river_jobs", []string{"queue", "state"}, "backfill_clerk/running", 0},
		{"usersync_backfill_last_complete_age_seconds", []string{"provider"}, "clerk", math.Inf(1)},
	} {
		got, ok := series(t, m, c.family, c.labels...)[c.key]
		if !ok {
			t.Errorf("%s{%s} absent before any traffic", c.family, c.key)
		} else if got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.family, c.key, got, c.want)
		}
	}
}

func migrated(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	plan := migrate.Plan{InternalSchema: "usersync"}
	if err := migrate.Run(t.Context(), pool, plan, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

// A sample keeps the zero series of queues without jobs, counts the jobs
// there are, and replaces the +Inf backfill age once a run completed.
func TestSampleOnce(t *testing.T) {
	t.Parallel()
	pool := migrated(t)
	ctx := t.Context()
	m := metrics.New(metrics.NewStatusRecorder())
	m.AddProviders("stackauth", "workos")
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.river_job (kind, queue, args, max_attempts, state)
		VALUES ('sync_user', 'sync_stackauth', '{}', 5, 'available'), ('sync_user', 'sync_stackauth', '{}', 5, 'available')`); err != nil {
		t.Fatalf("insert jobs: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.backfill_run (provider, status, started_at, finished_at)
		VALUES ('stackauth', 'completed', now() - interval '1 hour', now() - interval '30 minutes')`); err != nil {
		t.Fatalf("insert run: %v", err)
	}
	if err := m.SampleOnce(ctx, pool, "usersync"); err != nil {
		t.Fatalf("sample: %v", err)
	}
	jobs := series(t, m, "usersync_river_jobs", "queue", "state")
	if got := jobs["sync_stackauth/available"]; got != 2 {
		t.Errorf("sync_stackauth/available = %v, want 2", got)
	}
	if got, ok := jobs["sync_workos/available"]; !ok || got != 0 {
		t.Errorf("sync_workos/available = %v (present %v), want a zero series", got, ok)
	}
	age := series(t, m, "usersync_backfill_last_complete_age_seconds", "provider")
	if a := age["stackauth"]; a < 1790 || a > 3600 {
		t.Errorf("stackauth backfill age = %v, want about 1800 s", a)
	}
	if a := age["workos"]; !math.IsInf(a, 1) {
		t.Errorf("workos backfill age = %v, want +Inf (never completed)", a)
	}
}

// A flush that fails keeps what it held for the next one.
func TestFlushFailureKeepsStatus(t *testing.T) {
	t.Parallel()
	pool := migrated(t)
	ctx := t.Context()
	s := metrics.NewStatusRecorder()
	s.Synced("clerk")
	s.Failed("clerk", "provider_error", errors.New("provider answered HTTP 503"))
	if err := s.Flush(ctx, pool, "no_such_schema"); err == nil {
		t.Fatal("flush into a missing schema succeeded")
	}
	if err := s.Flush(ctx, pool, "usersync"); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	var lastSync, lastErrAt *time.Time
	var msg *string
	if err := pool.QueryRow(ctx, `SELECT last_sync_at, last_error_at, last_error FROM usersync.provider_status WHERE provider = 'clerk'`).
		Scan(&lastSync, &lastErrAt, &msg); err != nil {
		t.Fatalf("read status: %v", err)
	}
	if lastSync == nil || lastErrAt == nil || msg == nil || *msg != "provider_error: provider answered HTTP 503" {
		t.Errorf("status after a failed then a good flush: sync %v, error at %v, msg %v; want all kept", lastSync, lastErrAt, msg)
	}
}

// A credential rejection is in provider_status when Failed returns, before
// River records the job's error, so `usersync status` never shows the error
// and "healthy" together.
func TestBadCredentialsWrittenAtOnce(t *testing.T) {
	t.Parallel()
	pool := migrated(t)
	ctx := t.Context()
	s := metrics.NewStatusRecorder()
	s.Attach(pool, "usersync")
	s.Failed("workos", "bad_credentials", errors.New("provider rejected the credentials"))
	var at *time.Time
	err := pool.QueryRow(ctx, `SELECT bad_credentials_at FROM usersync.provider_status WHERE provider = 'workos'`).Scan(&at)
	if err != nil || at == nil {
		t.Fatalf("bad_credentials_at right after Failed: %v (err %v), want set", at, err)
	}
}

// The organizations' workers are counted in their own series.
func TestOrganizationMetrics(t *testing.T) {
	m := metrics.New(nil)
	var _ worker.OrganizationObserver = m
	m.OrganizationSynced("clerk", "changed", 0)
	m.OrganizationBackfillPage("clerk", 7, 3, true)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`usersync_organization_syncs_total{outcome="changed",provider="clerk"} 1`,
		`usersync_backfill_organization_pages_total{provider="clerk"} 1`,
		`usersync_backfill_organizations_total{provider="clerk"} 7`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
