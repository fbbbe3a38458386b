// Package jobs defines usersync's River job kinds (SPEC §5), their queues and
// how they are enqueued. Operators may insert the same jobs with SQL.
package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Job kinds, as stored in river_job.kind.
const (
	KindSyncUser     = "sync_user"
	KindBackfillPage = "backfill_page"
)

// uniqueStates are the states in which a job blocks another with the same
// unique key: every state but the finalized ones, so that a completed job
// never stops a new event from being synced.
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// SyncQueue is the queue of a provider's sync_user jobs. Each provider has
// its own queues so that one provider's outage never stalls another.
func SyncQueue(provider string) string { return "sync_" + provider }

// BackfillQueue is the queue of a provider's backfill_page jobs.
func BackfillQueue(provider string) string { return "backfill_" + provider }

// SyncUserArgs asks a worker to fetch one user's current profile and write it
// to users_sync (or mark it deleted). While one is waiting or running for a
// user, more events for that user coalesce into it.
type SyncUserArgs struct {
	Provider string `json:"provider" river:"unique"`
	UserID   string `json:"user_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (SyncUserArgs) Kind() string { return KindSyncUser }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a SyncUserArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       SyncQueue(a.Provider),
		MaxAttempts: MaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	}
}

// BackfillPageArgs asks a worker to fetch one page of a provider's user list,
// write it, and enqueue the next page. RunID "" starts a new run; Cursor ""
// is the first page. At most one backfill_page job per provider is waiting
// or running at any time.
type BackfillPageArgs struct {
	Provider string `json:"provider" river:"unique"`
	RunID    string `json:"run_id"`
	Cursor   string `json:"cursor"`
	// Force starts a run even if a recent complete one exists.
	Force bool `json:"force,omitempty"`
}

// Kind implements river.JobArgs.
func (BackfillPageArgs) Kind() string { return KindBackfillPage }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a BackfillPageArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       BackfillQueue(a.Provider),
		MaxAttempts: MaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	}
}

// MaxAttempts is how many times a failing job is tried before it is
// discarded. With the retry policy of package worker (exponential, capped at
// five minutes) that is about two hours of provider outage; a later backfill
// repairs anything discarded.
const MaxAttempts = 30

// Inserter is the part of a River client that enqueues jobs in a transaction.
type Inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// UserRef names one user at one provider.
type UserRef struct {
	Provider string
	UserID   string
}

// EnqueueSyncs enqueues a sync_user job for each user in tx, de-duplicated
// and in a stable order (so concurrent batches lock jobs in the same order).
// It returns the users whose job was already running: an event for them may
// have arrived after the running sync fetched the profile, so the caller
// must mark them dirty (see worker.MarkDirty).
func EnqueueSyncs(ctx context.Context, tx pgx.Tx, ins Inserter, refs []UserRef) (running []UserRef, err error) {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, func(a, b UserRef) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		return strings.Compare(a.UserID, b.UserID)
	})
	refs = slices.Compact(refs)
	params := make([]river.InsertManyParams, len(refs))
	for i, r := range refs {
		params[i] = river.InsertManyParams{Args: SyncUserArgs(r)}
	}
	res, err := ins.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("enqueue %d sync_user jobs: %w", len(params), err)
	}
	for i, r := range res {
		if r.UniqueSkippedAsDuplicate && r.Job != nil && r.Job.State == rivertype.JobStateRunning {
			running = append(running, refs[i])
		}
	}
	return running, nil
}
