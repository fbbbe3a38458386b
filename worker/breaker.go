package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"
	"github.com/usersync/usersync/jobs"
)

// The sync path's deletion breaker. A sync_user job that finds its user
// missing at the provider although the user's latest event was not a
// deletion (jobs.LastEventKey) is an "unexpected not-found": a provider
// that lost users without telling, or, far more likely, an API URL or
// credentials that reach the wrong server. usersync.deletion_breaker counts
// those that would delete a live row per provider, in the database so that every process shares one
// count. A successful fetch of an existing user resets the count. The first
// DeleteGuardMinRows in a row delete as usual; the next pauses deletions by
// such jobs (paused_at) until an operator resumes them (`usersync backfill
// --resume-deletions`): they then wait (snooze) instead, without losing
// their event. Expected not-founds (after a user.deleted event) never count
// and still delete while paused: the provider itself said the user is gone.
//
// Lock order: the breaker row is locked after the job's row and before the
// user's state row, like every other lock of a sync transaction.

// pausedSnooze is how long a job waits for deletions to resume before it
// fetches its user again: one minute, doubling with each snooze up to half
// an hour. Resuming wakes it at once.
func pausedSnooze(snoozes int) time.Duration {
	return min(time.Minute<<min(max(snoozes, 0), 5), 30*time.Minute)
}

// holdDeletion is the path of a sync whose unexpected not-found may not
// delete: the caller has rolled back its transaction; this pauses
// deletions, says so, and snoozes the job.
func (w *SyncUserWorker) holdDeletion(ctx context.Context, b *Binding, job *river.Job[jobs.SyncUserArgs]) error {
	a := job.Args
	paused, err := b.Store.PauseDeletions(ctx, w.deps.DB, a.UserID, job.ID)
	if err != nil {
		return err
	}
	if paused {
		w.deps.Logger.Error("deletions by sync paused: too many users in a row were not found at the provider although their latest event was not a deletion; "+
			"check the provider's API URL and credentials, then resume deletions",
			"provider", a.Provider, "user_id", a.UserID, "limit", DeleteGuardMinRows,
			"resume", "usersync backfill --resume-deletions --provider "+a.Provider)
	} else {
		w.deps.Logger.Warn("user not found at the provider, but deletions by sync are paused: the sync waits",
			"provider", a.Provider, "user_id", a.UserID)
	}
	if g, ok := w.deps.Observer.(GuardObserver); ok {
		g.DeletionsPaused(a.Provider)
	}
	return river.JobSnooze(pausedSnooze(snoozes(job.Metadata)))
}

// snoozes is how many times River snoozed the job (its metadata's
// "snoozes"), 0 if unknown.
func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	if json.Unmarshal(metadata, &m) != nil {
		return 0
	}
	return m.Snoozes
}
