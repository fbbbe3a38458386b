package worker

// DeleteGuardMinRows is the number of deletions a backfill run, or the sync
// path, may make however small a share of the users it is: the guard holds
// a run only when it would infer more than this many users deleted, and the
// sync path pauses deletions after this many unexpected not-found answers in
// a row.
const DeleteGuardMinRows = 10

// HoldDeletions decides whether a complete backfill run that would infer
// would of live users deleted, having listed listed users, must be held
// instead: when would is more than guard × live and more than
// DeleteGuardMinRows, or when the run listed nobody while live users would
// be deleted (an empty list from a misconfigured or wrong API).
func HoldDeletions(would, live, listed int64, guard float64) bool {
	if would <= 0 {
		return false
	}
	if listed == 0 && live > 0 {
		return true
	}
	return would > DeleteGuardMinRows && float64(would) > guard*float64(live)
}

// GuardObserver is told when deletions are held back, for metrics. An
// Observer may implement it; the workers call it when it does.
type GuardObserver interface {
	// BackfillHeld is called after a backfill run of provider ended held,
	// holding back would deletions.
	BackfillHeld(provider string, would int64)
	// DeletionsPaused is called when the sync path's breaker paused
	// deletions of provider.
	DeletionsPaused(provider string)
}
