package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// BackfillPageWorker works backfill_page jobs: one page of a provider's user
// list per job, the chain's progress committed with each page.
type BackfillPageWorker struct {
	river.WorkerDefaults[jobs.BackfillPageArgs]
	deps Deps
}

// NextRetry implements river.Worker.
func (w *BackfillPageWorker) NextRetry(job *river.Job[jobs.BackfillPageArgs]) time.Time {
	return retryAt(job.Attempt)
}

type run struct {
	id        int64
	status    string
	startedAt time.Time
	// recent are the last users of the last committed page, newest last.
	recent   []string
	restarts int
}

// resumeDepth is how many of a page's last users a run remembers to resume
// from when the next cursor no longer resolves: a cursor names a user (the
// next page's first for Stack Auth, the page's last for WorkOS), who may
// have been deleted since, and so may the users just before.
const resumeDepth = 16

// Work fetches one page (outside any transaction), then in one transaction
// writes it, records the run's progress, completes the job and enqueues the
// next page; on the last page of the run it infers deletions and marks the
// run complete.
func (w *BackfillPageWorker) Work(ctx context.Context, job *river.Job[jobs.BackfillPageArgs]) error {
	a := job.Args
	b, ok := w.deps.Bindings[a.Provider]
	if !ok {
		return river.JobCancel(fmt.Errorf("backfill_page: provider %q is not enabled in this process", a.Provider))
	}
	is := pgx.Identifier{b.Store.InternalSchema}.Sanitize()
	log := w.deps.Logger.With("provider", a.Provider, "job_id", job.ID)
	token := *job.AttemptedAt

	var r *run
	if a.RunID == "" {
		skip, err := w.skipNewRun(ctx, is, a)
		if err != nil {
			return err
		}
		if skip {
			log.Info("backfill not started: a complete run started recently", "interval", w.deps.BackfillInterval)
			return nil
		}
	} else {
		id, err := strconv.ParseInt(a.RunID, 10, 64)
		if err != nil {
			return river.JobCancel(fmt.Errorf("backfill_page: run_id %q is not a run id", a.RunID))
		}
		r, err = w.loadRun(ctx, is, id)
		if err != nil {
			return err
		}
		if r == nil || r.status != RunRunning {
			return river.JobCancel(fmt.Errorf("backfill_page: run %s is not running", a.RunID))
		}
	}

	page, restarted, err := w.list(ctx, b, r, a.Cursor)
	if err != nil {
		return w.failed(ctx, is, job, r, err)
	}

	tx, err := w.deps.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("backfill %s: begin: %w", a.Provider, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := completeTx(ctx, tx, job); err != nil {
		return err
	}
	if r == nil {
		r, err = w.startRun(ctx, tx, is, a.Provider, token, job.ID)
		if err != nil {
			return err
		}
		if err := b.Store.Adopt(ctx, tx); err != nil {
			return err
		}
		log.Info("backfill run started", "run_id", r.id)
	}
	res, err := b.Store.Upsert(ctx, tx, page.Users, token, &r.id)
	if err != nil {
		return fmt.Errorf("backfill %s run %d: %w", a.Provider, r.id, err)
	}
	if len(res.Resync) > 0 {
		if err := enqueueResyncs(ctx, tx, a.Provider, res.Resync); err != nil {
			return fmt.Errorf("backfill %s run %d: %w", a.Provider, r.id, err)
		}
	}
	recent := make([]string, 0, resumeDepth)
	for _, u := range page.Users[max(len(page.Users)-resumeDepth, 0):] {
		recent = append(recent, u.ID)
	}
	restarts := 0
	if restarted {
		restarts = 1
	}
	var listed int64
	if err := tx.QueryRow(ctx, `UPDATE `+is+`.backfill_run SET pages = pages + 1,
		users_listed = users_listed + $2, users_written = users_written + $3,
		next_cursor = $4,
		last_user_id = coalesce(($5::text[])[array_upper($5::text[], 1)], last_user_id),
		recent_user_ids = CASE WHEN cardinality($5::text[]) > 0 THEN $5::text[] ELSE recent_user_ids END,
		restarts = restarts + $6, last_error = NULL, updated_at = now()
		WHERE id = $1 RETURNING users_listed`, r.id, len(page.Users), res.Changed(), page.Next, recent, restarts).Scan(&listed); err != nil {
		return fmt.Errorf("backfill %s run %d: record progress: %w", a.Provider, r.id, err)
	}
	if page.Next != "" {
		if err := insertTx(ctx, tx, jobs.BackfillPageArgs{Provider: a.Provider, RunID: strconv.FormatInt(r.id, 10), Cursor: page.Next}); err != nil {
			return fmt.Errorf("backfill %s run %d: enqueue next page: %w", a.Provider, r.id, err)
		}
	} else {
		// The list reported its end on a page that continues from where the
		// previous one stopped: the run is complete, deletions can be
		// inferred, unless the deletion guard holds them.
		held, deleted, err := w.finish(ctx, tx, is, b, r, listed)
		if err != nil {
			return err
		}
		if held != nil {
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("backfill %s run %d: commit: %w", a.Provider, r.id, err)
			}
			w.deps.Observer.BackfillPage(a.Provider, len(page.Users), res.Changed(), false)
			w.reportHeld(a.Provider, r.id, held)
			return nil
		}
		defer log.Info("backfill run complete", "run_id", r.id, "deleted", deleted)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("backfill %s run %d: commit: %w", a.Provider, r.id, err)
	}
	w.deps.Observer.BackfillPage(a.Provider, len(page.Users), res.Changed(), page.Next == "")
	return nil
}

// list fetches the page at cursor. If the cursor no longer resolves (it
// names a user deleted since the previous page), the run carries on from the
// newest of the previous page's last users that still resolves, and if none
// does, lists again from the start (restarted): it never ends early. A
// re-listed user is rewritten only if it changed.
func (w *BackfillPageWorker) list(ctx context.Context, b *Binding, r *run, cursor string) (provider.Page, bool, error) {
	page, err := b.Provider.ListUsers(ctx, cursor)
	if !errors.Is(err, provider.ErrCursorNotFound) || r == nil {
		return page, false, err
	}
	log := w.deps.Logger.With("provider", b.Provider.Name(), "run_id", r.id)
	for i := len(r.recent) - 1; i >= 0; i-- {
		resume := b.Provider.ResumeCursor(r.recent[i])
		if resume == "" || resume == cursor {
			continue
		}
		page, err = b.Provider.ListUsers(ctx, resume)
		if !errors.Is(err, provider.ErrCursorNotFound) {
			log.Warn("backfill cursor no longer resolves; resumed from a user listed before it", "resumed_from", r.recent[i])
			return page, false, err
		}
	}
	log.Warn("backfill cursor no longer resolves and neither do the users listed before it: listing again from the start")
	page, err = b.Provider.ListUsers(ctx, "")
	return page, true, err
}

// skipNewRun reports whether a scheduled (not forced) run should not start
// because a complete run started less than half an interval ago.
func (w *BackfillPageWorker) skipNewRun(ctx context.Context, is string, a jobs.BackfillPageArgs) (bool, error) {
	if a.Force {
		return false, nil
	}
	if w.deps.BackfillInterval <= 0 {
		return false, nil
	}
	var recent bool
	err := w.deps.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+is+`.backfill_run
		WHERE provider = $1 AND status = 'completed' AND started_at > now() - $2::interval)`,
		a.Provider, w.deps.BackfillInterval/2).Scan(&recent)
	if err != nil {
		return false, fmt.Errorf("backfill %s: look up recent runs: %w", a.Provider, err)
	}
	return recent, nil
}

func (w *BackfillPageWorker) loadRun(ctx context.Context, is string, id int64) (*run, error) {
	r := &run{id: id}
	err := w.deps.DB.QueryRow(ctx, `SELECT status, started_at, recent_user_ids, restarts FROM `+is+`.backfill_run WHERE id = $1`, id).
		Scan(&r.status, &r.startedAt, &r.recent, &r.restarts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load backfill run %d: %w", id, err)
	}
	return r, nil
}

func (w *BackfillPageWorker) startRun(ctx context.Context, tx pgx.Tx, is, prov string, startedAt time.Time, jobID int64) (*run, error) {
	// A run still marked running has lost its chain (its last job was
	// discarded or cancelled): it can never complete.
	if _, err := tx.Exec(ctx, `UPDATE `+is+`.backfill_run SET status = 'failed', finished_at = now(), updated_at = now(),
		last_error = coalesce(last_error, 'abandoned: superseded by a new run') WHERE provider = $1 AND status = 'running'`, prov); err != nil {
		return nil, fmt.Errorf("backfill %s: close abandoned runs: %w", prov, err)
	}
	r := &run{status: "running", startedAt: startedAt}
	if err := tx.QueryRow(ctx, `INSERT INTO `+is+`.backfill_run (provider, status, started_at, started_by_job) VALUES ($1, 'running', $2, $3) RETURNING id`,
		prov, startedAt, jobID).Scan(&r.id); err != nil {
		return nil, fmt.Errorf("backfill %s: start run: %w", prov, err)
	}
	return r, nil
}

// failed records a failed page fetch on the run (visible in status), and
// decides between snoozing (429), retrying and giving up. Rejected
// credentials end the run at once: no retry can succeed until an operator
// fixes them, and `usersync backfill --wait` should say so rather than wait
// hours of backoff (the next scheduled or manual run starts afresh).
func (w *BackfillPageWorker) failed(ctx context.Context, is string, job *river.Job[jobs.BackfillPageArgs], r *run, err error) error {
	a := job.Args
	var rl *provider.RateLimitedError
	rateLimited := errors.As(err, &rl)
	badCredentials := errors.Is(err, provider.ErrBadCredentials)
	if badCredentials {
		w.deps.Logger.Error("provider rejected usersync's credentials: check them; backfill run failed", "provider", a.Provider, "err", err)
		w.deps.Observer.SyncFailed(a.Provider, "bad_credentials", err)
	}
	if r != nil {
		final := badCredentials || (!rateLimited && job.Attempt >= job.MaxAttempts)
		status := "running"
		if final {
			status = "failed"
		}
		if _, dbErr := w.deps.DB.Exec(ctx, `UPDATE `+is+`.backfill_run SET last_error = $2, status = $3,
			finished_at = CASE WHEN $3 = 'failed' THEN now() END, updated_at = now() WHERE id = $1 AND status = 'running'`,
			r.id, err.Error(), status); dbErr != nil {
			w.deps.Logger.Warn("could not record backfill error", "run_id", r.id, "err", dbErr)
		}
	}
	if rateLimited {
		w.deps.Logger.Warn("backfill rate limited by provider; waiting", "provider", a.Provider, "retry_after", snoozeFor(rl))
		return river.JobSnooze(snoozeFor(rl))
	}
	if badCredentials {
		return river.JobCancel(fmt.Errorf("backfill %s: list users: %w", a.Provider, err))
	}
	return fmt.Errorf("backfill %s: list users: %w", a.Provider, err)
}

// heldRun is what a held run would have deleted.
type heldRun struct {
	would, live, listed int64
}

// finish ends a run whose list reported its end: it infers deletions and
// marks the run completed, or, when the deletion guard says so
// (HoldDeletions), infers nothing and marks the run held (returned).
func (w *BackfillPageWorker) finish(ctx context.Context, tx pgx.Tx, is string, b *Binding, r *run, listed int64) (*heldRun, int, error) {
	prov := b.Provider.Name()
	would, live, err := b.Store.Inferable(ctx, tx, r.id, r.startedAt)
	if err != nil {
		return nil, 0, fmt.Errorf("backfill %s run %d: %w", prov, r.id, err)
	}
	if HoldDeletions(would, live, listed, w.deps.DeleteGuard) {
		if _, err := tx.Exec(ctx, `UPDATE `+is+`.backfill_run SET status = '`+RunHeld+`', finished_at = now(),
			held_deletions = $2, held_live = $3, updated_at = now() WHERE id = $1`, r.id, would, live); err != nil {
			return nil, 0, fmt.Errorf("backfill %s run %d: hold: %w", prov, r.id, err)
		}
		return &heldRun{would: would, live: live, listed: listed}, 0, nil
	}
	del, err := b.Store.InferDeletions(ctx, tx, r.id, r.startedAt)
	if err != nil {
		return nil, 0, err
	}
	// Users written while the run listed cannot be ordered against it: a
	// fresh sync decides whether they still exist.
	if len(del.Resync) > 0 {
		if err := enqueueResyncs(ctx, tx, prov, del.Resync); err != nil {
			return nil, 0, fmt.Errorf("backfill %s run %d: %w", prov, r.id, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE `+is+`.backfill_run SET status = '`+RunCompleted+`', finished_at = now(),
		users_deleted = $2, updated_at = now() WHERE id = $1`, r.id, del.Deleted); err != nil {
		return nil, 0, fmt.Errorf("backfill %s run %d: complete: %w", prov, r.id, err)
	}
	return nil, del.Deleted, nil
}

// reportHeld says loudly that a run was held: an ERROR line naming the
// command that confirms it, and the held metrics.
func (w *BackfillPageWorker) reportHeld(prov string, runID int64, h *heldRun) {
	w.deps.Logger.Error("backfill run held: it would mark too many users deleted, so it deleted nothing; "+
		"check the provider's API URL and credentials, then run a new backfill, or confirm the deletions if they are real",
		"provider", prov, "run_id", runID, "would_delete", h.would, "live_users", h.live, "users_listed", h.listed,
		"delete_guard", w.deps.DeleteGuard, "confirm", ConfirmCommand(prov, runID))
	if g, ok := w.deps.Observer.(GuardObserver); ok {
		g.BackfillHeld(prov, h.would)
	}
}

// ConfirmCommand is the command that confirms held run runID of prov.
func ConfirmCommand(prov string, runID int64) string {
	return fmt.Sprintf("usersync backfill --confirm-deletions --provider %s --run %d", prov, runID)
}
