package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
)

// Run is one backfill run of a provider: a chain of backfill_page jobs
// that lists every user, then infers deletions. Status is RunRunning until
// it ends RunCompleted (Deleted users marked deleted), RunFailed
// (LastError) or RunHeld (it would have marked HeldDeletions of HeldLive
// live users deleted, more than Config.DeleteGuard allows, and deleted
// nobody; see Engine.ConfirmHeld).
type Run = store.Run

// RunState is a backfill run's status.
type RunState = store.RunState

// RunKind is what a backfill run lists: RunUsers or RunOrganizations.
type RunKind = store.RunKind

// Backfill run kinds.
const (
	RunUsers         = store.RunUsers
	RunOrganizations = store.RunOrganizations
)

// Backfill run states.
const (
	RunRunning   = store.RunRunning
	RunCompleted = store.RunCompleted
	RunFailed    = store.RunFailed
	RunHeld      = store.RunHeld
)

// BackfillPollInterval is how often Backfill.Wait reads a run's progress.
const BackfillPollInterval = 300 * time.Millisecond

// Backfill follows one backfill of a provider, started (or joined) by
// Engine.StartBackfill. Its methods are not safe for concurrent use.
type Backfill struct {
	e        *Engine
	provider string
	jobID    int64
	joined   bool
	runID    int64
	orgRun   *Run
}

// BackfillProgress is a Backfill's state at one read.
type BackfillProgress struct {
	// Provider is the provider being backfilled.
	Provider string
	// JobID is the backfill_page job followed until the run appears.
	JobID int64
	// Run is the run's progress; nil until its first page has committed.
	Run *Run
	// JobState is River's state of job JobID while Run is nil.
	JobState string
	// JobError is that job's last error, if any, while Run is nil.
	JobError *string
	// SkippedJobID, when not 0, is a job followed until this read that
	// completed without starting a run (a scheduled job that found a recent
	// complete run): the backfill was enqueued again, as job JobID
	// (Joined: a backfill was already waiting).
	SkippedJobID int64
	// Joined goes with SkippedJobID.
	Joined bool
	// Organizations is, with Config.Organizations, the organizations run
	// (a chain of backfill_organizations jobs) that Run started; nil until
	// its first page has committed.
	Organizations *Run
	// OrganizationsError is the last error of the organizations run's first
	// job while Organizations is nil.
	OrganizationsError *string
	// Done says the backfill has ended: Run.Status is not RunRunning, or
	// (Run nil) the job ended without starting a run (JobError says why);
	// with Config.Organizations, the organizations run has ended too (or
	// its first job ended without starting one).
	Done bool

	organizations bool
}

// Completed reports whether the backfill ended with a complete run (and,
// with Config.Organizations, a complete organizations run).
func (p BackfillProgress) Completed() bool {
	return p.Done && p.Run != nil && p.Run.Status == RunCompleted &&
		(!p.organizations || (p.Organizations != nil && p.Organizations.Status == RunCompleted))
}

// StartBackfill enqueues a full backfill of provider prov that runs even if
// a recent run completed, or joins the backfill already waiting or running
// (Backfill.Joined), exactly as `usersync backfill` does. The returned
// Backfill follows the run. River must work usersync's backfill queue (in
// this process or another) for the run to make progress.
func (e *Engine) StartBackfill(ctx context.Context, prov string) (*Backfill, error) {
	if !e.hasProvider(prov) {
		return nil, fmt.Errorf("usersync: StartBackfill: provider %q is not configured", prov)
	}
	id, joined, err := e.forceBackfill(ctx, prov)
	if err != nil {
		return nil, err
	}
	return &Backfill{e: e, provider: prov, jobID: id, joined: joined}, nil
}

func (e *Engine) hasProvider(prov string) bool {
	for _, p := range e.providers {
		if p.Name() == prov {
			return true
		}
	}
	return false
}

// forceBackfill enqueues prov's forced backfill through an insert-only
// River client on Config.RiverSchema.
func (e *Engine) forceBackfill(ctx context.Context, prov string) (jobID int64, joined bool, err error) {
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{Schema: e.cfg.RiverSchema, SkipUnknownJobCheck: true})
	if err != nil {
		return 0, false, fmt.Errorf("usersync: river client: %w", err)
	}
	return jobs.ForceBackfill(ctx, client, e.pool, e.store.Runs, prov)
}

// Provider is the provider being backfilled.
func (b *Backfill) Provider() string { return b.provider }

// JobID is the backfill_page job that StartBackfill enqueued or joined.
func (b *Backfill) JobID() int64 { return b.jobID }

// Joined reports whether StartBackfill joined a backfill already waiting
// or running instead of enqueueing one.
func (b *Backfill) Joined() bool { return b.joined }

// Progress reads the backfill's state once. After a read with Done set,
// it returns the same final state again.
func (b *Backfill) Progress(ctx context.Context) (BackfillProgress, error) {
	e := b.e
	p := BackfillProgress{Provider: b.provider, JobID: b.jobID}
	var r *Run
	var err error
	if b.runID == 0 {
		// The run is created by its first page; a job that continues a run
		// names it in its args.
		r, err = e.store.Runs.ForJob(ctx, e.pool, b.jobID)
	} else {
		r, err = e.store.Runs.Get(ctx, e.pool, b.runID)
	}
	if err != nil {
		return p, fmt.Errorf("read backfill progress of %s: %w", b.provider, err)
	}
	if r != nil {
		b.runID = r.ID
		p.Run = r
		p.Done = r.Status != RunRunning
		if e.cfg.Organizations {
			p.organizations = true
			orgDone, err := b.organizationsProgress(ctx, r.ID, &p)
			if err != nil {
				return p, err
			}
			p.Done = p.Done && orgDone
		}
		return p, nil
	}
	js, err := e.store.Jobs.State(ctx, e.pool, b.jobID)
	if err != nil {
		return p, fmt.Errorf("read backfill job of %s: %w", b.provider, err)
	}
	if js == nil {
		p.Done = true
		return p, nil
	}
	p.JobState, p.JobError = js.State, js.LastError
	switch js.State {
	case "discarded", "cancelled":
		p.Done = true
		return p, nil
	case "completed":
		// The job may have completed (and started its run) since the run
		// was looked up above.
		started, err := e.store.Runs.StartedByJob(ctx, e.pool, b.jobID)
		if err != nil {
			return p, fmt.Errorf("read backfill progress of %s: %w", b.provider, err)
		}
		if started {
			return b.Progress(ctx)
		}
		// A job completes in the transaction that starts its run: this one
		// started none (a scheduled job that found a recent complete run,
		// and was already running when joined). Enqueue a backfill that
		// runs regardless, and follow that.
		id, joined, err := e.forceBackfill(ctx, b.provider)
		if err != nil {
			return p, err
		}
		p.SkippedJobID, p.Joined = b.jobID, joined
		b.jobID, p.JobID = id, id
		js, err := e.store.Jobs.State(ctx, e.pool, id)
		if err != nil {
			return p, fmt.Errorf("read backfill job of %s: %w", b.provider, err)
		}
		p.JobState, p.JobError = "", nil
		if js != nil {
			p.JobState, p.JobError = js.State, js.LastError
		}
	}
	return p, nil
}

// organizationsProgress reads the organizations run that users run
// usersRun started into p, and reports whether it has ended.
func (b *Backfill) organizationsProgress(ctx context.Context, usersRun int64, p *BackfillProgress) (bool, error) {
	e := b.e
	runs := e.store.Runs.Kind(store.RunOrganizations)
	for range 2 {
		r, err := runs.ForUsersRun(ctx, e.pool, usersRun)
		if err != nil {
			return false, err
		}
		if r != nil {
			p.Organizations = r
			return r.Status != RunRunning, nil
		}
		js, err := e.store.Jobs.OrganizationsChainState(ctx, e.pool, b.provider, usersRun)
		if err != nil {
			return false, err
		}
		if js == nil {
			// A users run started without organizations (before they were
			// turned on): there is nothing to follow.
			return true, nil
		}
		p.OrganizationsError = js.LastError
		switch js.State {
		case "discarded", "cancelled":
			return true, nil
		case "completed":
			// It started its run since the run was looked up: read again.
			continue
		}
		return false, nil
	}
	// Completed with no run of its own: it found another run's chain going
	// and left the organizations to it. Follow that run until it ends.
	r, err := runs.Latest(ctx, e.pool, b.provider, RunRunning)
	if err != nil {
		return false, err
	}
	if r != nil {
		p.Organizations = r
		return false, nil
	}
	return true, nil
}

// Follow reads the backfill's progress at once and then every interval
// (BackfillPollInterval when 0), yielding each read, until the backfill is
// done (the last value yielded has Done set), a read fails (the error is
// yielded) or ctx ends (ctx's error is yielded).
func (b *Backfill) Follow(ctx context.Context, interval time.Duration) iter.Seq2[BackfillProgress, error] {
	if interval <= 0 {
		interval = BackfillPollInterval
	}
	return func(yield func(BackfillProgress, error) bool) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			p, err := b.Progress(ctx)
			if err != nil {
				yield(p, err)
				return
			}
			if !yield(p, nil) || p.Done {
				return
			}
			select {
			case <-ctx.Done():
				yield(p, ctx.Err())
				return
			case <-t.C:
			}
		}
	}
}

// ErrNoRun is returned by Backfill.Wait when the backfill job ended
// without starting a run (it was discarded or cancelled).
var ErrNoRun = errors.New("the backfill job ended without starting a run")

// Wait follows the backfill until it ends and returns its run's final
// state: Status is RunCompleted, RunFailed or RunHeld. With
// Config.Organizations it also waits for the organizations run, whose
// final state OrganizationsRun then returns. It returns an error
// wrapping ErrNoRun when the job ended without starting a run, and ctx's
// error when ctx ends first.
func (b *Backfill) Wait(ctx context.Context) (*Run, error) {
	for p, err := range b.Follow(ctx, 0) {
		if err != nil {
			return nil, err
		}
		if !p.Done {
			continue
		}
		if p.Run == nil {
			if p.JobError != nil {
				return nil, fmt.Errorf("backfill of %s: %w: %s", b.provider, ErrNoRun, *p.JobError)
			}
			return nil, fmt.Errorf("backfill of %s: %w", b.provider, ErrNoRun)
		}
		b.orgRun = p.Organizations
		return p.Run, nil
	}
	return nil, fmt.Errorf("backfill of %s: follow ended early", b.provider)
}

// OrganizationsRun returns, after Wait, the organizations run's final state
// (nil when organizations are off, or when its first job ended without
// starting a run).
func (b *Backfill) OrganizationsRun() *Run { return b.orgRun }
