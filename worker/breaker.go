package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// PausedKey is the metadata key set on a sync_user job that waits because
// deletions by sync are paused (the value is when it was set); resuming
// wakes exactly these jobs.
const PausedKey = "usersync_deletion_paused_at"

// pausedSnooze is how long a job waits for deletions to resume before it
// fetches its user again: one minute, doubling with each snooze up to half
// an hour. Resuming wakes it at once.
func pausedSnooze(snoozes int) time.Duration {
	return min(time.Minute<<min(max(snoozes, 0), 5), 30*time.Minute)
}

// hasLiveRow reports whether users_sync has a live (not deleted) row for
// userID: only then can a not-found delete anything, and count toward the
// breaker.
func (s *Store) hasLiveRow(ctx context.Context, tx pgx.Tx, userID string) (bool, error) {
	cond := ""
	if s.Target.writable["deleted_at"] {
		cond = " AND deleted_at IS NULL"
	}
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{s.Target.Schema, "users_sync"}.Sanitize()+
		` WHERE id = $1`+cond+`)`, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("deletion breaker of %s: look up user %s: %w", s.Provider, userID, err)
	}
	return ok, nil
}

// countUnexpectedNotFound counts one unexpected not-found in tx. It reports
// false when deletions are paused or this one would pass the limit: the
// caller must then not delete.
func (s *Store) countUnexpectedNotFound(ctx context.Context, tx pgx.Tx) (bool, error) {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	rows, err := tx.Query(ctx, `INSERT INTO `+is+`.deletion_breaker AS b (provider, unexpected_not_found) VALUES ($1, 1)
ON CONFLICT (provider) DO UPDATE SET unexpected_not_found = b.unexpected_not_found + 1, updated_at = now()
WHERE b.paused_at IS NULL AND b.unexpected_not_found < $2
RETURNING b.unexpected_not_found`, s.Provider, DeleteGuardMinRows)
	if err != nil {
		return false, fmt.Errorf("deletion breaker of %s: %w", s.Provider, err)
	}
	defer rows.Close()
	ok := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("deletion breaker of %s: %w", s.Provider, err)
	}
	return ok, nil
}

// resetUnexpectedNotFound records, in tx, a successful fetch of an existing
// user: the count of unexpected not-founds starts again. It takes the
// breaker row's lock only when there is a count to reset.
func (s *Store) resetUnexpectedNotFound(ctx context.Context, tx pgx.Tx) error {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	if _, err := tx.Exec(ctx, `UPDATE `+is+`.deletion_breaker SET unexpected_not_found = 0, updated_at = now()
WHERE provider = $1 AND unexpected_not_found > 0 AND paused_at IS NULL`, s.Provider); err != nil {
		return fmt.Errorf("deletion breaker of %s: reset: %w", s.Provider, err)
	}
	return nil
}

// pauseDeletions pauses deletions by sync (if they are not already) and
// marks job jobID as waiting for them (PausedKey). Each statement commits on
// its own, outside the job's transaction. It reports whether this call
// paused them.
func (s *Store) pauseDeletions(ctx context.Context, db DB, userID string, jobID int64) (bool, error) {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	tag, err := db.Exec(ctx, `UPDATE `+is+`.deletion_breaker SET paused_at = now(), paused_user_id = $2, updated_at = now()
WHERE provider = $1 AND paused_at IS NULL`, s.Provider, userID)
	if err != nil {
		return false, fmt.Errorf("pause deletions of %s: %w", s.Provider, err)
	}
	if _, err := db.Exec(ctx, `UPDATE `+is+`.river_job SET metadata = metadata || jsonb_build_object('`+PausedKey+`', now())
WHERE id = $1 AND state = 'running'`, jobID); err != nil {
		return false, fmt.Errorf("mark job %d waiting for deletions to resume: %w", jobID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// holdDeletion is the path of a sync whose unexpected not-found may not
// delete: the caller has rolled back its transaction; this pauses
// deletions, says so, and snoozes the job.
func (w *SyncUserWorker) holdDeletion(ctx context.Context, b *Binding, job *river.Job[jobs.SyncUserArgs]) error {
	a := job.Args
	paused, err := b.Store.pauseDeletions(ctx, w.deps.DB, a.UserID, job.ID)
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
