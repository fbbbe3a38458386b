package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Jobs holds the statements on River's river_job table, in the River
// schema. River has no API that adds metadata to a job already inserted or
// running: MarkDirty, MarkLastEvent and MarkPaused are the only statements
// in usersync that write River's table, and WakePaused the only one that
// changes a job's state (River's JobRetry would also wake jobs that wait
// for other reasons).
type Jobs struct{ s Schemas }

// MarkDirty sets DirtyKey (to the transaction's time) on the running jobs
// ids, in tx. The rows were locked by tx's unique insert that found them,
// so this takes no other lock.
func (q Jobs) MarkDirty(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if _, err := tx.Exec(ctx, `UPDATE `+q.s.riverJob()+`
		SET metadata = metadata || jsonb_build_object('`+DirtyKey+`', now())
		WHERE id = ANY($1) AND state = 'running'`, ids); err != nil {
		return fmt.Errorf("mark %d running sync_user jobs dirty: %w", len(ids), err)
	}
	return nil
}

// MarkLastEvent records, in tx whose unique insert locked the rows, that an
// event coalesced into each of jobs ids now: LastEventKey is set to kinds
// (LastEventDeleted or LastEventChanged), pairwise, and EventAtKey to the
// transaction's time.
func (q Jobs) MarkLastEvent(ctx context.Context, tx pgx.Tx, ids []int64, kinds []string) error {
	if _, err := tx.Exec(ctx, `UPDATE `+q.s.riverJob()+` j
		SET metadata = j.metadata || jsonb_build_object('`+LastEventKey+`', m.kind, '`+EventAtKey+`', now())
		FROM unnest($1::bigint[], $2::text[]) AS m(id, kind) WHERE j.id = m.id`, ids, kinds); err != nil {
		return fmt.Errorf("record the latest event on %d sync_user jobs: %w", len(ids), err)
	}
	return nil
}

// LockInUserOrder locks the river_job rows ids of sync_user jobs in tx in
// the order of their user ids (byte order), the order in which a webhook
// batch's unique insert locks them (jobs.EnqueueSyncs), so that completing
// several jobs in one transaction never waits for a webhook batch that
// waits for it in turn.
func (q Jobs) LockInUserOrder(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+q.s.riverJob()+` WHERE id = ANY($1)
		ORDER BY args->>'provider' COLLATE "C", args->>'user_id' COLLATE "C", id FOR UPDATE`, ids); err != nil {
		return fmt.Errorf("lock %d sync_user jobs: %w", len(ids), err)
	}
	return nil
}

// MarkPaused sets PausedKey on running job jobID: it is about to snooze
// until deletions by sync resume.
func (q Jobs) MarkPaused(ctx context.Context, db DB, jobID int64) error {
	if _, err := db.Exec(ctx, `UPDATE `+q.s.riverJob()+` SET metadata = metadata || jsonb_build_object('`+PausedKey+`', now())
WHERE id = $1 AND state = 'running'`, jobID); err != nil {
		return fmt.Errorf("mark job %d waiting for deletions to resume: %w", jobID, err)
	}
	return nil
}

// WakePaused makes the snoozed jobs of kind in queue that wait for
// deletions to resume (PausedKey) available now, and returns how many.
func (q Jobs) WakePaused(ctx context.Context, db DB, kind, queue string) (int64, error) {
	tag, err := db.Exec(ctx, `UPDATE `+q.s.riverJob()+` SET state = 'available', scheduled_at = now()
		WHERE kind = $1 AND queue = $2 AND state = 'scheduled' AND metadata ? '`+PausedKey+`'`, kind, queue)
	if err != nil {
		return 0, fmt.Errorf("wake syncs waiting in %s: %w", queue, err)
	}
	return tag.RowsAffected(), nil
}

// CountPaused counts the jobs WakePaused would wake.
func (q Jobs) CountPaused(ctx context.Context, db DB, kind, queue string) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM `+q.s.riverJob()+`
		WHERE kind = $1 AND queue = $2 AND state = 'scheduled' AND metadata ? '`+PausedKey+`'`, kind, queue).Scan(&n); err != nil {
		return 0, fmt.Errorf("count syncs waiting in %s: %w", queue, err)
	}
	return n, nil
}

// JobState is a job's state and its last error.
type JobState struct {
	State     string
	LastError *string
}

// State returns job jobID's state, or nil if the job is gone.
func (q Jobs) State(ctx context.Context, db DB, jobID int64) (*JobState, error) {
	var s JobState
	err := db.QueryRow(ctx, `SELECT state::text, errors[array_upper(errors, 1)]->>'error' FROM `+q.s.riverJob()+` WHERE id = $1`, jobID).
		Scan(&s.State, &s.LastError)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job %d: %w", jobID, err)
	}
	return &s, nil
}

// OrganizationsChainState returns the state of the newest
// backfill_organizations job of prov that users run usersRun enqueued, or
// nil if there is none.
func (q Jobs) OrganizationsChainState(ctx context.Context, db DB, prov string, usersRun int64) (*JobState, error) {
	var s JobState
	err := db.QueryRow(ctx, `SELECT state::text, errors[array_upper(errors, 1)]->>'error' FROM `+q.s.riverJob()+`
		WHERE kind = 'backfill_organizations' AND args->>'provider' = $1 AND args->>'users_run_id' = $2::bigint::text
		ORDER BY id DESC LIMIT 1`, prov, usersRun).Scan(&s.State, &s.LastError)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the organizations backfill of run %d: %w", usersRun, err)
	}
	return &s, nil
}

// OrganizationsRunAlive reports whether organizations run runID of prov
// still has a backfill_organizations job waiting or running (its chain
// goes on), other than job except.
func (q Jobs) OrganizationsRunAlive(ctx context.Context, db DB, prov string, runID, except int64) (bool, error) {
	var alive bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+q.s.riverJob()+`
		WHERE kind = 'backfill_organizations' AND args->>'provider' = $1 AND args->>'run_id' = $2::bigint::text
		  AND id <> $3 AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled'))`, prov, runID, except).Scan(&alive)
	if err != nil {
		return false, fmt.Errorf("read the jobs of organizations run %d: %w", runID, err)
	}
	return alive, nil
}

// QueueCount is how many jobs of a queue are in a state.
type QueueCount struct {
	Queue, State string
	Count        int64
}

// CountByQueue counts every job by queue and state.
func (q Jobs) CountByQueue(ctx context.Context, db Querier) ([]QueueCount, error) {
	rows, err := db.Query(ctx, `SELECT queue, state::text, count(*) FROM `+q.s.riverJob()+` GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	var out []QueueCount
	for rows.Next() {
		var c QueueCount
		if err := rows.Scan(&c.Queue, &c.State, &c.Count); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CountByState counts the jobs of queues by state.
func (q Jobs) CountByState(ctx context.Context, db DB, queues []string) (map[string]int64, error) {
	rows, err := db.Query(ctx, `SELECT state::text, count(*) FROM `+q.s.riverJob()+` WHERE queue = ANY($1) GROUP BY 1`, queues)
	if err != nil {
		return nil, fmt.Errorf("jobs by state: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("jobs by state: %w", err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("jobs by state: %w", err)
	}
	return out, nil
}

// OldestWaiting returns since when the oldest available job of queues has
// waited, or nil.
func (q Jobs) OldestWaiting(ctx context.Context, db DB, queues []string) (*time.Time, error) {
	var at *time.Time
	if err := db.QueryRow(ctx, `SELECT min(scheduled_at) FROM `+q.s.riverJob()+` WHERE queue = ANY($1) AND state = 'available' AND scheduled_at <= now()`, queues).
		Scan(&at); err != nil {
		return nil, fmt.Errorf("oldest job: %w", err)
	}
	return at, nil
}

// DiscardedSince counts the jobs of queues discarded in the last d.
func (q Jobs) DiscardedSince(ctx context.Context, db DB, queues []string, d time.Duration) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM `+q.s.riverJob()+` WHERE queue = ANY($1) AND state = 'discarded' AND finalized_at > now() - $2::interval`, queues, d).
		Scan(&n); err != nil {
		return 0, fmt.Errorf("discarded jobs: %w", err)
	}
	return n, nil
}

// ErrorCount is one distinct recent job error and how often it occurred.
type ErrorCount struct {
	Error string    `json:"error"`
	Count int64     `json:"count"`
	Last  time.Time `json:"last_at"`
}

// RecentErrors returns the limit most recent distinct errors of the jobs of
// queues in the last d, newest first.
func (q Jobs) RecentErrors(ctx context.Context, db DB, queues []string, d time.Duration, limit int) ([]ErrorCount, error) {
	rows, err := db.Query(ctx, `SELECT e->>'error', count(*), max((e->>'at')::timestamptz)
		FROM `+q.s.riverJob()+` j, unnest(j.errors) AS e
		WHERE j.queue = ANY($1) AND (e->>'at')::timestamptz > now() - $2::interval
		GROUP BY 1 ORDER BY 3 DESC LIMIT $3`, queues, d, limit)
	if err != nil {
		return nil, fmt.Errorf("recent errors: %w", err)
	}
	defer rows.Close()
	out := []ErrorCount{}
	for rows.Next() {
		var ec ErrorCount
		if err := rows.Scan(&ec.Error, &ec.Count, &ec.Last); err != nil {
			return nil, fmt.Errorf("recent errors: %w", err)
		}
		out = append(out, ec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent errors: %w", err)
	}
	return out, nil
}

// RiverJobs returns the statements on the river_job table of riverSchema.
func RiverJobs(riverSchema string) Jobs {
	return Jobs{Schemas{Internal: riverSchema, River: riverSchema}}
}

// CountWaiting counts the sync_user jobs of queue created after since that
// wait to run (available, or scheduled: snoozed or not yet due), up to
// limit: the count stops there, so it stays cheap however long the queue
// is.
func (q Jobs) CountWaiting(ctx context.Context, db DB, queue string, since time.Time, limit int) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+q.s.riverJob()+`
		WHERE state IN ('available', 'scheduled') AND queue = $1 AND kind = 'sync_user' AND created_at > $2
		LIMIT $3) w`, queue, since, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count waiting syncs of %s: %w", queue, err)
	}
	return n, nil
}

// QueueBusy reports whether queue holds a job that is running or waits to
// run (available, scheduled, retryable).
func (q Jobs) QueueBusy(ctx context.Context, db DB, queue string) (bool, error) {
	var busy bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+q.s.riverJob()+`
		WHERE state IN ('available', 'running', 'scheduled', 'retryable') AND queue = $1)`, queue).Scan(&busy)
	if err != nil {
		return false, fmt.Errorf("look at queue %s: %w", queue, err)
	}
	return busy, nil
}
