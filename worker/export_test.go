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
	return &SyncUserWorker{deps: d}, &BackfillPageWorker{deps: d}, &PruneUserStateWorker{deps: d}
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
