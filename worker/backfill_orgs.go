package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// membershipFetchers is how many organizations of a backfill page have
// their memberships listed at once.
const membershipFetchers = 8

// DefaultOrganizationPageBudget is how long a backfill_organizations job
// reads memberships before it writes what it has and leaves the rest of the
// page to the next job (BackfillOrganizationsArgs.After): well within the
// job timeout even when the provider's rate limit slows the reads down.
const DefaultOrganizationPageBudget = 8 * time.Second

// BackfillOrganizationsWorker works backfill_organizations jobs: one page
// of a provider's organization list per job, each listed organization with
// all its memberships, the chain's progress committed with each page.
type BackfillOrganizationsWorker struct {
	river.WorkerDefaults[jobs.BackfillOrganizationsArgs]
	deps Deps
}

// NextRetry implements river.Worker.
func (w *BackfillOrganizationsWorker) NextRetry(job *river.Job[jobs.BackfillOrganizationsArgs]) time.Time {
	return retryAt(job.Attempt)
}

// Work lists one page of organizations and every listed organization's
// memberships (outside any transaction), then in one transaction writes
// them, records the run's progress, completes the job and enqueues the
// next page; on the last page of the run it infers deleted the
// organizations the run never listed (with their memberships), unless the
// deletion guard holds the run, and marks the run complete. Organizations
// that a job listed but could not write (an overlapping fetch stored them;
// see store.Orgs.Write) are read again and written by the run's next job
// (BackfillOrganizationsArgs.Redo), after the last page by a job of their
// own (Finish), before the run finishes.
func (w *BackfillOrganizationsWorker) Work(ctx context.Context, job *river.Job[jobs.BackfillOrganizationsArgs]) error {
	a := job.Args
	b, ok := w.deps.Bindings[a.Provider]
	if !ok {
		return river.JobCancel(fmt.Errorf("backfill_organizations: provider %q is not enabled in this process", a.Provider))
	}
	reader, err := orgReader(b)
	if err != nil {
		return river.JobCancel(fmt.Errorf("backfill_organizations: %w", err))
	}
	rs := runs(b).Kind(store.RunOrganizations)
	log := w.deps.Logger.With("provider", a.Provider, "job_id", job.ID)
	token := *job.AttemptedAt

	var r *store.Run
	if a.RunID != "" {
		id, err := strconv.ParseInt(a.RunID, 10, 64)
		if err != nil {
			return river.JobCancel(fmt.Errorf("backfill_organizations: run_id %q is not a run id", a.RunID))
		}
		if r, err = rs.Get(ctx, w.deps.DB, id); err != nil {
			return err
		}
		if r == nil || r.Status != store.RunRunning || r.Kind != store.RunOrganizations {
			return river.JobCancel(fmt.Errorf("backfill_organizations: run %s is not a running organizations run", a.RunID))
		}
	}

	if r == nil && (a.Finish || len(a.Redo) > 0) {
		return river.JobCancel(errors.New("backfill_organizations: a job that finishes a run or reads organizations again names no run"))
	}
	if r == nil {
		// One organizations chain at a time (overtaken).
		switch cw, err := w.overtaken(ctx, w.deps.DB, rs, b, job); {
		case err != nil:
			return err
		case cw == chainDone:
			return nil
		case cw == chainLater:
			return river.JobSnooze(chainLaterSnooze)
		}
	}

	// The organizations that an earlier job of the run could not write are
	// read again first: this fetch begins after the data that stopped them
	// was stored.
	redo, err := refetchOrgs(ctx, reader, a.Redo)
	if err != nil {
		return w.failed(ctx, rs, job, r, err)
	}
	var sets []store.OrgSet
	whole := true
	listed := a.Cursor
	var page provider.OrganizationPage
	restarted := false
	if !a.Finish {
		if sets, page, listed, restarted, whole, err = w.listPage(ctx, reader, a, log); err != nil {
			return w.failed(ctx, rs, job, r, err)
		}
	}

	tx, err := w.deps.DB.Begin(ctx)
	if err != nil {
		return fmt.Errorf("backfill organizations of %s: begin: %w", a.Provider, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := completeTx(ctx, tx, job); err != nil {
		return err
	}
	if r == nil {
		// Checked again where it counts: no run starts here while another
		// chain goes on.
		switch cw, err := w.overtaken(ctx, tx, rs, b, job); {
		case err != nil:
			return err
		case cw == chainDone:
			return tx.Commit(ctx)
		case cw == chainLater:
			_ = tx.Rollback(ctx)
			return river.JobSnooze(chainLaterSnooze)
		}
		var usersRun *int64
		if a.UsersRunID != 0 {
			usersRun = &a.UsersRunID
		}
		if r, err = rs.StartFor(ctx, tx, a.Provider, token, job.ID, usersRun); err != nil {
			return err
		}
		log.Info("organizations backfill run started", "run_id", r.ID)
	}
	res, err := b.Orgs.Write(ctx, tx, append(redo, sets...), token, &r.ID)
	if err != nil {
		return fmt.Errorf("backfill organizations of %s run %d: %w", a.Provider, r.ID, err)
	}
	if err := enqueueOrgResyncs(ctx, tx, a.Provider, res.Resync); err != nil {
		return fmt.Errorf("backfill organizations of %s run %d: %w", a.Provider, r.ID, err)
	}
	// The organizations whose write could not be ordered against data
	// stored by an overlapping fetch (Result.Resync: not applied) are read
	// again by the next job of the run, so that a run completes only once
	// every organization it listed is written from a fetch that is not
	// older than the stored one. (The fresh syncs enqueued above decide
	// too, should the run fail.)
	next := jobs.BackfillOrganizationsArgs{Provider: a.Provider, RunID: strconv.FormatInt(r.ID, 10), Cursor: page.Next,
		UsersRunID: a.UsersRunID, Redo: res.Resync}
	if !whole {
		// The rest of this page, after the last organization written.
		next.Cursor, next.After = listed, sets[len(sets)-1].ID
	}
	total, err := rs.RecordPage(ctx, tx, r.ID, store.Page{Listed: len(sets), Written: res.Changed(), Next: next.Cursor, Restarted: restarted})
	if err != nil {
		return fmt.Errorf("backfill organizations of %s: %w", a.Provider, err)
	}
	ended := whole && page.Next == ""
	last := ended && len(res.Resync) == 0
	if ended && !last {
		// The list has ended, but some organizations must be read again
		// before the run can finish.
		next = jobs.BackfillOrganizationsArgs{Provider: a.Provider, RunID: next.RunID, UsersRunID: a.UsersRunID, Redo: res.Resync,
			Finish: true, Inferred: a.Inferred}
	}
	var held *heldRun
	deleted := 0
	if last {
		var again []string
		if held, deleted, again, err = w.finish(ctx, tx, rs, b, r, total, a.Inferred); err != nil {
			return err
		}
		if len(again) > 0 {
			// Organizations the run never listed, stored meanwhile by an
			// overlapping fetch: read again before the run can finish.
			last = false
			next = jobs.BackfillOrganizationsArgs{Provider: a.Provider, RunID: next.RunID, UsersRunID: a.UsersRunID, Redo: again,
				Finish: true, Inferred: deleted}
		}
	}
	if !last && held == nil {
		if err := insertTx(ctx, tx, next); err != nil {
			return fmt.Errorf("backfill organizations of %s run %d: enqueue the next job: %w", a.Provider, r.ID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("backfill organizations of %s run %d: commit: %w", a.Provider, r.ID, err)
	}
	if o, ok := w.deps.Observer.(OrganizationObserver); ok {
		o.OrganizationBackfillPage(a.Provider, len(sets), res.Changed(), last && held == nil)
	}
	switch {
	case held != nil:
		w.deps.Logger.Error("organizations backfill run held: it would mark too many organizations deleted, so it deleted nothing; "+
			"check the provider's API URL and credentials, then run a new backfill, or confirm the deletions if they are real",
			"provider", a.Provider, "run_id", r.ID, "would_delete", held.would, "live_organizations", held.live,
			"organizations_listed", held.listed, "delete_guard", w.deps.DeleteGuard, "confirm", ConfirmCommand(a.Provider, r.ID))
		if g, ok := w.deps.Observer.(GuardObserver); ok {
			g.BackfillHeld(a.Provider, held.would)
		}
	case last:
		log.Info("organizations backfill run complete", "run_id", r.ID, "deleted", deleted)
	}
	return nil
}

// listPage lists the page of organizations at a.Cursor (from the start if
// that cursor no longer resolves: restarted), from after a.After, and
// reads their memberships (memberships). listed is the cursor actually
// listed.
func (w *BackfillOrganizationsWorker) listPage(ctx context.Context, reader provider.Organizations, a jobs.BackfillOrganizationsArgs, log *slog.Logger) (
	sets []store.OrgSet, page provider.OrganizationPage, listed string, restarted, whole bool, err error) {
	listed = a.Cursor
	page, err = reader.ListOrganizations(ctx, listed)
	if errors.Is(err, provider.ErrCursorNotFound) && a.Cursor != "" {
		// The cursor names an organization deleted since: list again from
		// the start (unchanged rows are not rewritten); never end early.
		log.Warn("organizations backfill cursor no longer resolves: listing again from the start")
		listed = ""
		page, err = reader.ListOrganizations(ctx, listed)
		restarted = true
	}
	if err != nil {
		return nil, page, listed, restarted, false, err
	}
	orgs := page.Organizations
	if a.After != "" && !restarted {
		// The part of the page after the organizations already written;
		// if that one is gone, the whole page again.
		for i, o := range orgs {
			if o.ID == a.After {
				orgs = orgs[i+1:]
				break
			}
		}
	}
	sets, whole, err = w.memberships(ctx, reader, orgs)
	return sets, page, listed, restarted, whole, err
}

// refetchOrgs reads each organization of ids again, with all its
// memberships (fetchOrgSet), in order.
func refetchOrgs(ctx context.Context, reader provider.Organizations, ids []string) ([]store.OrgSet, error) {
	sets := make([]store.OrgSet, 0, len(ids))
	for _, id := range ids {
		if err := provider.ValidateUserID(id); err != nil {
			return nil, fmt.Errorf("read organization %q again: %w", provider.Snippet([]byte(id), 64), err)
		}
		set, err := fetchOrgSet(ctx, reader, id)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// chainWait says what a first page does when another organizations run of
// its provider is running.
type chainWait int

const (
	chainStart chainWait = iota // no other chain goes on: start a run
	chainDone                   // a newer users run's chain goes on: nothing to do
	chainLater                  // an older run's chain goes on: start after it
)

// overtaken reports what a's first page does about another organizations
// run of its provider that is running with its chain still going (a job of
// it waiting or running): one chain at a time. A chain started by a newer
// users run covers this one (chainDone); an older one is let finish, and
// this page waits for it (chainLater), so that the organizations are
// listed again after this users run began. A running run whose chain ended
// (its last job discarded) is superseded (chainStart).
func (w *BackfillOrganizationsWorker) overtaken(ctx context.Context, db store.DB, rs store.Runs, b *Binding, job *river.Job[jobs.BackfillOrganizationsArgs]) (chainWait, error) {
	a := job.Args
	cur, err := rs.Latest(ctx, db, a.Provider, store.RunRunning)
	if err != nil || cur == nil {
		return chainStart, err
	}
	alive, err := store.RiverJobs(b.Store.Schemas().River).OrganizationsRunAlive(ctx, db, a.Provider, cur.ID, job.ID)
	if err != nil || !alive {
		return chainStart, err
	}
	if cur.UsersRun != nil && *cur.UsersRun > a.UsersRunID {
		w.deps.Logger.Info("organizations backfill: a newer run's chain is going; this first page has nothing to do",
			"provider", a.Provider, "running_run_id", cur.ID, "users_run_id", a.UsersRunID)
		return chainDone, nil
	}
	return chainLater, nil
}

// chainLaterSnooze is how long a first page waits for another chain to end.
const chainLaterSnooze = 5 * time.Second

// memberships lists every membership of each organization, a few
// organizations at a time, in order, until the page budget has passed (at
// least one batch; Deps.OrganizationPageBudget) or a read fails after some
// were read: it returns the sets of the organizations it read, a prefix of
// orgs, and whether that is all of them. A failure with nothing read is
// returned as the error.
func (w *BackfillOrganizationsWorker) memberships(ctx context.Context, reader provider.Organizations, orgs []provider.Organization) ([]store.OrgSet, bool, error) {
	start := time.Now()
	budget := w.deps.OrganizationPageBudget
	if budget <= 0 {
		budget = DefaultOrganizationPageBudget
	}
	sets := make([]store.OrgSet, 0, len(orgs))
	for len(sets) < len(orgs) {
		if len(sets) > 0 && time.Since(start) >= budget {
			return sets, false, nil
		}
		batch := orgs[len(sets):min(len(sets)+membershipFetchers, len(orgs))]
		got := make([]store.OrgSet, len(batch))
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i := range batch {
			o := batch[i]
			got[i] = store.OrgSet{ID: o.ID, Org: &o}
			wg.Go(func() {
				ms, err := listMemberships(ctx, reader, o.ID)
				switch {
				case errors.Is(err, provider.ErrOrganizationNotFound):
					// Deleted since it was listed: the provider's word.
					got[i].Org = nil
				case err != nil:
					errs[i] = err
				default:
					got[i].Memberships = ms
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil {
				continue
			}
			// The organizations read before the first failure are kept:
			// written now, the rest of the page left to the next job, so
			// that a rate-limited provider, whose 429s may hit any of a
			// page's many reads, still sees the run progress. With nothing
			// read, the error is the job's (a 429 snoozes it).
			sets = append(sets, got[:i]...)
			if len(sets) == 0 {
				return nil, false, err
			}
			return sets, false, nil
		}
		sets = append(sets, got...)
	}
	return sets, true, nil
}

// failed is BackfillPageWorker.failed for an organizations page.
func (w *BackfillOrganizationsWorker) failed(ctx context.Context, rs store.Runs, job *river.Job[jobs.BackfillOrganizationsArgs], r *store.Run, err error) error {
	return runFailed(ctx, w.deps, rs, r, job.Args.Provider, "organizations backfill", "list organizations", job.Attempt >= job.MaxAttempts, err)
}

// finish ends an organizations run whose list reported its end: it infers
// deleted the organizations the run never listed and marks the run
// completed, or, when the deletion guard says so, infers nothing and marks
// the run held (returned). inferred counts the deletions that earlier
// finishing jobs of the run inferred; deleted is the run's total. An
// organization that the run never listed but whose stored data was
// written while it listed cannot be ordered against the run (see
// store.Orgs.InferDeletions): those are returned (again) and the run is
// left running, for the next job to read them again and finish.
func (w *BackfillOrganizationsWorker) finish(ctx context.Context, tx pgx.Tx, rs store.Runs, b *Binding, r *store.Run, listed int64, inferred int) (
	held *heldRun, deleted int, again []string, err error) {
	prov := b.Provider.Name()
	would, live, err := b.Orgs.Inferable(ctx, tx, r.ID, r.StartedAt)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("backfill organizations of %s run %d: %w", prov, r.ID, err)
	}
	if HoldDeletions(would, live, listed, w.deps.DeleteGuard) {
		if err := rs.Hold(ctx, tx, r.ID, would, live); err != nil {
			return nil, 0, nil, fmt.Errorf("backfill organizations of %s: %w", prov, err)
		}
		return &heldRun{would: would, live: live, listed: listed}, 0, nil, nil
	}
	res, orgs, err := b.Orgs.InferDeletions(ctx, tx, r.ID, r.StartedAt)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := enqueueOrgResyncs(ctx, tx, prov, res.Resync); err != nil {
		return nil, 0, nil, fmt.Errorf("backfill organizations of %s run %d: %w", prov, r.ID, err)
	}
	deleted = inferred + orgs
	if len(res.Resync) > 0 {
		return nil, deleted, res.Resync, nil
	}
	if err := rs.Complete(ctx, tx, r.ID, deleted); err != nil {
		return nil, 0, nil, fmt.Errorf("backfill organizations of %s: %w", prov, err)
	}
	return nil, deleted, nil, nil
}
