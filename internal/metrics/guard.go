package metrics

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// guardMetrics report deletions held back by the deletion guard (a held
// backfill run) and by the sync path's breaker.
type guardMetrics struct {
	held          *prometheus.GaugeVec
	heldDeletions *prometheus.GaugeVec
	paused        *prometheus.GaugeVec
}

func newGuardMetrics(r *prometheus.Registry) *guardMetrics {
	g := &guardMetrics{
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_backfill_held", Help: "1 while the provider's latest backfill run is held: it would infer too many users deleted and waits for confirmation.",
		}, []string{"provider"}),
		heldDeletions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_backfill_held_deletions", Help: "Users the held backfill run would mark deleted once confirmed (0 when none is held).",
		}, []string{"provider"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersync_sync_deletions_paused", Help: "1 while deletions by sync_user jobs are paused after too many unexpected not-found answers in a row.",
		}, []string{"provider"}),
	}
	r.MustRegister(g.held, g.heldDeletions, g.paused)
	return g
}

// BackfillHeld implements worker.GuardObserver.
func (m *Metrics) BackfillHeld(provider string, would int64) {
	m.guard.held.WithLabelValues(provider).Set(1)
	m.guard.heldDeletions.WithLabelValues(provider).Set(float64(would))
}

// DeletionsPaused implements worker.GuardObserver.
func (m *Metrics) DeletionsPaused(provider string) {
	m.guard.paused.WithLabelValues(provider).Set(1)
}

// backfillCompleted clears the held gauges: a complete run supersedes a held one.
func (g *guardMetrics) backfillCompleted(provider string) {
	g.held.WithLabelValues(provider).Set(0)
	g.heldDeletions.WithLabelValues(provider).Set(0)
}

// sample reads, from the database, which providers have a held run (the
// newest held run with no complete run after it) and paused sync deletions:
// another process may have held, confirmed, paused or resumed them.
func (g *guardMetrics) sample(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, is string) error {
	rows, err := db.Query(ctx, `SELECT p.provider, coalesce(h.held_deletions, -1), coalesce(b.paused_at IS NOT NULL, false)
FROM (SELECT provider FROM `+is+`.backfill_run UNION SELECT provider FROM `+is+`.deletion_breaker) p
LEFT JOIN LATERAL (
  SELECT r.held_deletions FROM `+is+`.backfill_run r
  WHERE r.provider = p.provider AND r.status = 'held'
    AND NOT EXISTS (SELECT 1 FROM `+is+`.backfill_run c WHERE c.provider = r.provider AND c.status = 'completed' AND c.id > r.id)
  ORDER BY r.id DESC LIMIT 1) h ON true
LEFT JOIN `+is+`.deletion_breaker b ON b.provider = p.provider`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var prov string
		var held int64
		var paused bool
		if err := rows.Scan(&prov, &held, &paused); err != nil {
			return err
		}
		if held >= 0 {
			g.held.WithLabelValues(prov).Set(1)
			g.heldDeletions.WithLabelValues(prov).Set(float64(held))
		} else {
			g.backfillCompleted(prov)
		}
		p := 0.0
		if paused {
			p = 1
		}
		g.paused.WithLabelValues(prov).Set(p)
	}
	return rows.Err()
}
