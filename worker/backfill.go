package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/usersync/usersync/internal/ratelimit"
	"github.com/usersync/usersync/internal/store"
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
	rs := runs(b)
	log := w.deps.Logger.With("provider", a.Provider, "job_id", job.ID)
	token := *job.AttemptedAt

	var r *store.Run
	if a.RunID == "" {
		skip, err := w.skipNewRun(ctx, rs, a)
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
		r, err = rs.Get(ctx, w.deps.DB, id)
		if err != nil {
			return err
		}
		if r == nil || r.Status != store.RunRunning {
			return river.JobCancel(fmt.Errorf("backfill_page: run %s is not running", a.RunID))
		}
	}

	// A page carries up to a page size of users: it goes before the
	// process's queued single-user lookups (a burst of syncs would hold it
	// back for seconds), within the same budget.
	page, restarted, err := w.list(ratelimit.WithUrgency(ctx), b, r, a.Cursor)
	if err != nil {
		return w.failed(ctx, rs, job, r, err)
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
		r, err = rs.Start(ctx, tx, a.Provider, token, job.ID)
		if err != nil {
			return err
		}
		if err := b.Store.Adopt(ctx, tx); err != nil {
			return err
		}
		if b.Orgs != nil {
			// Organizations are listed by a chain of their own, started with
			// every users run.
			if err := insertTx(ctx, tx, jobs.BackfillOrganizationsArgs{Provider: a.Provider, UsersRunID: r.ID}); err != nil {
				return fmt.Errorf("backfill %s run %d: enqueue the organizations run: %w", a.Provider, r.ID, err)
			}
		}
		log.Info("backfill run started", "run_id", r.ID)
	}
	res, err := b.Store.Upsert(ctx, tx, page.Users, token, &r.ID)
	if err != nil {
		return fmt.Errorf("backfill %s run %d: %w", a.Provider, r.ID, err)
	}
	if len(res.Resync) > 0 {
		if err := enqueueResyncs(ctx, tx, a.Provider, res.Resync); err != nil {
			return fmt.Errorf("backfill %s run %d: %w", a.Provider, r.ID, err)
		}
	}
	recent := make([]string, 0, resumeDepth)
	for _, u := range page.Users[max(len(page.Users)-resumeDepth, 0):] {
		recent = append(recent, u.ID)
	}
	listed, err := rs.RecordPage(ctx, tx, r.ID, store.Page{Listed: len(page.Users), Written: res.Changed(),
		Next: page.Next, Recent: recent, Restarted: restarted})
	if err != nil {
		return fmt.Errorf("backfill %s: %w", a.Provider, err)
	}
	if page.Next != "" {
		if err := insertTx(ctx, tx, jobs.BackfillPageArgs{Provider: a.Provider, RunID: strconv.FormatInt(r.ID, 10), Cursor: page.Next}); err != nil {
			return fmt.Errorf("backfill %s run %d: enqueue next page: %w", a.Provider, r.ID, err)
		}
	} else {
		// The list reported its end on a page that continues from where the
		// previous one stopped: the run is complete, deletions can be
		// inferred, unless the deletion guard holds them.
		held, deleted, err := w.finish(ctx, tx, rs, b, r, listed)
		if err != nil {
			return err
		}
		if held != nil {
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("backfill %s run %d: commit: %w", a.Provider, r.ID, err)
			}
			w.deps.Observer.BackfillPage(a.Provider, len(page.Users), res.Changed(), false)
			w.reportHeld(a.Provider, r.ID, held)
			return nil
		}
		defer log.Info("backfill run complete", "run_id", r.ID, "deleted", deleted)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("backfill %s run %d: commit: %w", a.Provider, r.ID, err)
	}
	w.deps.Observer.BackfillPage(a.Provider, len(page.Users), res.Changed(), page.Next == "")
	return nil
}

// list fetches the page at cursor. If the cursor no longer resolves (it
// names a user deleted since the previous page), the run carries on from the
// newest of the previous page's last users that still resolves, and if none
// does, lists again from the start (restarted): it never ends early. A
// re-listed user is rewritten only if it changed.
func (w *BackfillPageWorker) list(ctx context.Context, b *Binding, r *store.Run, cursor string) (provider.Page, bool, error) {
	page, err := b.Provider.ListUsers(ctx, cursor)
	if !errors.Is(err, provider.ErrCursorNotFound) || r == nil {
		return page, false, err
	}
	log := w.deps.Logger.With("provider", b.Provider.Name(), "run_id", r.ID)
	for i := len(r.RecentUserIDs) - 1; i >= 0; i-- {
		resume := b.Provider.ResumeCursor(r.RecentUserIDs[i])
		if resume == "" || resume == cursor {
			continue
		}
		page, err = b.Provider.ListUsers(ctx, resume)
		if !errors.Is(err, provider.ErrCursorNotFound) {
			log.Warn("backfill cursor no longer resolves; resumed from a user listed before it", "resumed_from", r.RecentUserIDs[i])
			return page, false, err
		}
	}
	log.Warn("backfill cursor no longer resolves and neither do the users listed before it: listing again from the start")
	page, err = b.Provider.ListUsers(ctx, "")
	return page, true, err
}

// skipNewRun reports whether a scheduled (not forced) run should not start
// because a complete run started less than half an interval ago (and no
// operator asked for a backfill since).
func (w *BackfillPageWorker) skipNewRun(ctx context.Context, rs store.Runs, a jobs.BackfillPageArgs) (bool, error) {
	if a.Force {
		return false, nil
	}
	if w.deps.BackfillInterval <= 0 {
		return false, nil
	}
	return rs.SkipScheduled(ctx, w.deps.DB, a.Provider, w.deps.BackfillInterval/2)
}

// failed records a failed page fetch on the run (visible in status), and
// decides between snoozing (429), retrying and giving up. Rejected
// credentials end the run at once: no retry can succeed until an operator
// fixes them, and `usersync backfill --wait` should say so rather than wait
// hours of backoff (the next scheduled or manual run starts afresh).
func (w *BackfillPageWorker) failed(ctx context.Context, rs store.Runs, job *river.Job[jobs.BackfillPageArgs], r *store.Run, err error) error {
	return runFailed(ctx, w.deps, rs, r, job.Args.Provider, "backfill", "list users", job.Attempt >= job.MaxAttempts, err)
}

// runFailed is the failure path of both backfill chains: what names the
// run in log lines ("backfill", "organizations backfill"), op the failed
// operation; last says the job has no attempt left.
func runFailed(ctx context.Context, d Deps, rs store.Runs, r *store.Run, prov, what, op string, last bool, err error) error {
	var rl *provider.RateLimitedError
	rateLimited := errors.As(err, &rl)
	badCredentials := errors.Is(err, provider.ErrBadCredentials)
	if badCredentials {
		d.Logger.Error("provider rejected usersync's credentials: check them; "+what+" run failed", "provider", prov, "err", err)
		d.Observer.SyncFailed(prov, "bad_credentials", err)
	}
	if r != nil {
		final := badCredentials || (!rateLimited && last)
		if dbErr := rs.RecordError(ctx, d.DB, r.ID, err.Error(), final); dbErr != nil {
			d.Logger.Warn("could not record backfill error", "run_id", r.ID, "err", dbErr)
		}
	}
	if rateLimited {
		d.Logger.Warn(what+" rate limited by provider; waiting", "provider", prov, "retry_after", snoozeFor(rl))
		return river.JobSnooze(snoozeFor(rl))
	}
	err = fmt.Errorf("%s %s: %s: %w", what, prov, op, err)
	if badCredentials {
		return river.JobCancel(err)
	}
	return err
}

// heldRun is what a held run would have deleted.
type heldRun struct {
	would, live, listed int64
}

// finish ends a run whose list reported its end: it infers deletions and
// marks the run completed, or, when the deletion guard says so
// (HoldDeletions), infers nothing and marks the run held (returned).
func (w *BackfillPageWorker) finish(ctx context.Context, tx pgx.Tx, rs store.Runs, b *Binding, r *store.Run, listed int64) (*heldRun, int, error) {
	prov := b.Provider.Name()
	would, live, err := b.Store.Inferable(ctx, tx, r.ID, r.StartedAt)
	if err != nil {
		return nil, 0, fmt.Errorf("backfill %s run %d: %w", prov, r.ID, err)
	}
	if HoldDeletions(would, live, listed, w.deps.DeleteGuard) {
		if err := rs.Hold(ctx, tx, r.ID, would, live); err != nil {
			return nil, 0, fmt.Errorf("backfill %s: %w", prov, err)
		}
		return &heldRun{would: would, live: live, listed: listed}, 0, nil
	}
	del, err := b.Store.InferDeletions(ctx, tx, r.ID, r.StartedAt)
	if err != nil {
		return nil, 0, err
	}
	// The users inferred deleted leave their organizations too.
	if err := deleteUserMemberships(ctx, tx, b, del.DeletedIDs, r.StartedAt); err != nil {
		return nil, 0, fmt.Errorf("backfill %s run %d: %w", prov, r.ID, err)
	}
	// Users written while the run listed cannot be ordered against it: a
	// fresh sync decides whether they still exist.
	if len(del.Resync) > 0 {
		if err := enqueueResyncs(ctx, tx, prov, del.Resync); err != nil {
			return nil, 0, fmt.Errorf("backfill %s run %d: %w", prov, r.ID, err)
		}
	}
	if err := rs.Complete(ctx, tx, r.ID, del.Deleted); err != nil {
		return nil, 0, fmt.Errorf("backfill %s: %w", prov, err)
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
