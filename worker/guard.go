package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run states of usersync.backfill_run.status.
const (
	RunRunning   = "running"
	RunCompleted = "completed"
	RunFailed    = "failed"
	// RunHeld is a run that listed the provider to the end but inferred no
	// deletion, because it would have marked too many users deleted (see
	// HoldDeletions); it waits for an operator to confirm it.
	RunHeld = "held"
)

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

// Inferable counts, without changing anything, the live users_sync rows that
// InferDeletions(runID, startedAt) would mark deleted now (would), and the
// table's live rows (live: not marked deleted). Its conditions are
// InferDeletions': users the run never listed whose stored data was fetched
// and stored before the run started (data stored while the run listed is
// resynced, not deleted), not already recorded as deleted.
func (s *Store) Inferable(ctx context.Context, tx pgx.Tx, runID int64, startedAt time.Time) (would, live int64, err error) {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	tbl := pgx.Identifier{s.Target.Schema, "users_sync"}.Sanitize()
	liveCond := "true"
	if s.Target.writable["deleted_at"] {
		liveCond = "u.deleted_at IS NULL"
	}
	err = tx.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM `+tbl+` u WHERE `+liveCond+`),
  (SELECT count(*) FROM `+is+`.user_state s JOIN `+tbl+` u ON u.id = s.user_id
   WHERE s.provider = $1 AND s.seen_run IS DISTINCT FROM $2 AND s.fetched_at < $3
     AND s.fetched_until <= $3 AND NOT s.deleted AND `+liveCond+`)`,
		s.Provider, runID, startedAt).Scan(&live, &would)
	if err != nil {
		return 0, 0, fmt.Errorf("count deletions run %d would infer: %w", runID, err)
	}
	return would, live, nil
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
