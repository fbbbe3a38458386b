package worker

import (
	"log/slog"

	"github.com/riverqueue/river"
)

// NewTestWorkers returns the workers Register adds, with the same defaults,
// for tests that work one job at a time with rivertest.
func NewTestWorkers(d Deps) (*SyncUserWorker, *BackfillPageWorker, *PruneUserStateWorker) {
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return newSyncUserWorker(d), &BackfillPageWorker{deps: d}, &PruneUserStateWorker{deps: d}
}

// RegisterBatched is Register with each provider's group commit holding
// batches until n syncs have queued, so that a test knows they commit
// together.
func RegisterBatched(workers *river.Workers, d Deps, n int) {
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	w := newSyncUserWorker(d)
	for _, c := range w.commit {
		c.minBatch = n
	}
	river.AddWorker(workers, w)
}

// NewTestOrgWorkers returns the organizations' workers Register adds, with
// the same defaults.
func NewTestOrgWorkers(d Deps) (*SyncOrganizationWorker, *BackfillOrganizationsWorker) {
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &SyncOrganizationWorker{deps: d}, &BackfillOrganizationsWorker{deps: d}
}
