package worker

import "log/slog"

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
