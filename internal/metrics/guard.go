package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/usersync/usersync/internal/store"
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
func (g *guardMetrics) sample(ctx context.Context, st *store.Store, db store.Querier) error {
	states, err := st.SampleGuard(ctx, db)
	if err != nil {
		return err
	}
	for _, gs := range states {
		if gs.HeldDeletions >= 0 {
			g.held.WithLabelValues(gs.Provider).Set(1)
			g.heldDeletions.WithLabelValues(gs.Provider).Set(float64(gs.HeldDeletions))
		} else {
			g.backfillCompleted(gs.Provider)
		}
		p := 0.0
		if gs.Paused {
			p = 1
		}
		g.paused.WithLabelValues(gs.Provider).Set(p)
	}
	return nil
}
