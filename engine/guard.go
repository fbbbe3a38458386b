package engine

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/jackc/pgx/v5"

	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/worker"
)

// The deletion guard's operator side: a backfill run that would delete too
// many users is held (Engine.ConfirmHeld applies it), and deletions by sync
// jobs pause after too many users in a row are not found at the provider
// although their latest event was not a deletion (Engine.ResumeDeletions).

// Confirmed is what Engine.ConfirmHeld did.
type Confirmed struct {
	// RunID is the confirmed run.
	RunID int64
	// Deleted is how many users (organizations) it marked deleted now;
	// Held is how many the run would have deleted when it was held.
	Deleted, Held int64
	// Kind is the run's kind: RunUsers, or RunOrganizations (with
	// Config.Organizations, a held organizations run is confirmed like a
	// users run).
	Kind RunKind
}

// ConfirmHeld applies the deletions of prov's current held backfill run
// (the newest held run with no complete run after it; runID, if not 0, must
// name it). They are recomputed now under the rules of a normal completion
// (users the run never listed and that were not written since it started),
// so a user written since is kept; if more users would be deleted now than
// the run held (rows that appeared since without a fetch), it refuses and
// changes nothing. With Config.Organizations, the provider's held
// organizations run is confirmed the same way when runID names it, or when
// runID is 0 and no users run is held. The database must be migrated and
// the users_sync tables inspected (New on a migrated database, or Migrate).
func (e *Engine) ConfirmHeld(ctx context.Context, prov string, runID int64) (Confirmed, error) {
	e.mu.Lock()
	b := e.bindings[prov]
	e.mu.Unlock()
	if !e.hasProvider(prov) {
		return Confirmed{}, fmt.Errorf("usersync: ConfirmHeld: provider %q is not configured", prov)
	}
	if b == nil {
		return Confirmed{}, fmt.Errorf("usersync: ConfirmHeld: users_sync tables not inspected; call Engine.Migrate first")
	}
	users := b.Store
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return Confirmed{}, fmt.Errorf("confirm deletions of %s: %w", prov, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	hr, err := e.store.Runs.Held(ctx, tx, prov, true)
	if err != nil {
		return Confirmed{}, fmt.Errorf("confirm deletions of %s: find the held run: %w", prov, err)
	}
	if b.Orgs != nil {
		or, err := e.store.Runs.Kind(RunOrganizations).Held(ctx, tx, prov, true)
		if err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s: find the held organizations run: %w", prov, err)
		}
		if or != nil && (runID == or.ID || (runID == 0 && hr == nil)) {
			return e.confirmHeldOrganizations(ctx, tx, b, prov, or)
		}
	}
	if hr == nil {
		return Confirmed{}, fmt.Errorf("%s has no held backfill run to confirm (a complete run may have replaced it; see 'usersync status')", prov)
	}
	c := Confirmed{RunID: hr.ID, Kind: RunUsers}
	if hr.HeldDeletions != nil {
		c.Held = *hr.HeldDeletions
	}
	if runID != 0 && runID != hr.ID {
		return Confirmed{}, fmt.Errorf("run %d is not %s's current held run (run %d is); see 'usersync status'", runID, prov, hr.ID)
	}
	would, _, err := users.Inferable(ctx, tx, hr.ID, hr.StartedAt)
	if err != nil {
		return Confirmed{}, err
	}
	if would > c.Held {
		return Confirmed{}, fmt.Errorf("run %d of %s would now mark %d users deleted, more than the %d it held: nothing done; run a new backfill", hr.ID, prov, would, c.Held)
	}
	res, err := users.InferDeletions(ctx, tx, hr.ID, hr.StartedAt)
	if err != nil {
		return Confirmed{}, err
	}
	// The users marked deleted leave their organizations too; a fresh sync
	// of each organization follows (as a resync, below).
	var orgResyncs []string
	if b.Orgs != nil {
		if orgResyncs, _, err = b.Orgs.DeleteUserMemberships(ctx, tx, res.DeletedIDs, hr.StartedAt); err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: %w", prov, hr.ID, err)
		}
	}
	// Users written while the run listed cannot be ordered against it: a
	// fresh sync decides whether they still exist (as at a run's end).
	if len(res.Resync) > 0 || len(orgResyncs) > 0 {
		client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{Schema: e.cfg.RiverSchema, SkipUnknownJobCheck: true})
		if err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: river client: %w", prov, hr.ID, err)
		}
		if err := jobs.EnqueueResyncs(ctx, tx, client, prov, res.Resync); err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: %w", prov, hr.ID, err)
		}
		if err := jobs.EnqueueOrganizationResyncs(ctx, tx, client, prov, orgResyncs); err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: %w", prov, hr.ID, err)
		}
	}
	if err := e.store.Runs.ConfirmHeld(ctx, tx, hr.ID, res.Deleted); err != nil {
		return Confirmed{}, fmt.Errorf("confirm deletions of %s: %w", prov, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: commit: %w", prov, hr.ID, err)
	}
	c.Deleted = int64(res.Deleted)
	e.logger.Warn("held backfill run confirmed by an operator: its deletions are applied", "provider", prov, "run_id", hr.ID,
		"deleted", res.Deleted, "held", c.Held)
	return c, nil
}

// confirmHeldOrganizations is ConfirmHeld for held organizations run hr,
// locked in tx.
func (e *Engine) confirmHeldOrganizations(ctx context.Context, tx pgx.Tx, b *worker.Binding, prov string, hr *Run) (Confirmed, error) {
	c := Confirmed{RunID: hr.ID, Kind: RunOrganizations}
	if hr.HeldDeletions != nil {
		c.Held = *hr.HeldDeletions
	}
	would, _, err := b.Orgs.Inferable(ctx, tx, hr.ID, hr.StartedAt)
	if err != nil {
		return Confirmed{}, err
	}
	if would > c.Held {
		return Confirmed{}, fmt.Errorf("organizations run %d of %s would now mark %d organizations deleted, more than the %d it held: nothing done; run a new backfill", hr.ID, prov, would, c.Held)
	}
	res, n, err := b.Orgs.InferDeletions(ctx, tx, hr.ID, hr.StartedAt)
	if err != nil {
		return Confirmed{}, err
	}
	if len(res.Resync) > 0 {
		client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{Schema: e.cfg.RiverSchema, SkipUnknownJobCheck: true})
		if err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: river client: %w", prov, hr.ID, err)
		}
		if err := jobs.EnqueueOrganizationResyncs(ctx, tx, client, prov, res.Resync); err != nil {
			return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: %w", prov, hr.ID, err)
		}
	}
	if err := e.store.Runs.ConfirmHeld(ctx, tx, hr.ID, n); err != nil {
		return Confirmed{}, fmt.Errorf("confirm deletions of %s: %w", prov, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Confirmed{}, fmt.Errorf("confirm deletions of %s run %d: commit: %w", prov, hr.ID, err)
	}
	c.Deleted = int64(n)
	e.logger.Warn("held organizations backfill run confirmed by an operator: its deletions are applied", "provider", prov, "run_id", hr.ID,
		"deleted", n, "held", c.Held)
	return c, nil
}

// ResumeDeletions clears prov's deletion breaker and wakes the sync jobs
// that wait because of it: they fetch their user again at once. It reports
// whether deletions were paused, and how many jobs it woke. If the provider
// still answers not-found for users whose latest event was not a deletion,
// a few more are deleted before the breaker pauses deletions again.
func (e *Engine) ResumeDeletions(ctx context.Context, prov string) (resumed bool, woken int64, err error) {
	if !e.hasProvider(prov) {
		return false, 0, fmt.Errorf("usersync: ResumeDeletions: provider %q is not configured", prov)
	}
	resumed, err = e.store.Breakers.Resume(ctx, e.pool, prov)
	if err != nil || !resumed {
		return false, 0, err
	}
	woken, err = e.store.Jobs.WakePaused(ctx, e.pool, jobs.KindSyncUser, jobs.SyncQueue(prov))
	if err != nil {
		return true, 0, fmt.Errorf("resume deletions of %s: %w", prov, err)
	}
	if e.cfg.Organizations {
		n, err := e.store.Jobs.WakePaused(ctx, e.pool, jobs.KindSyncOrganization, jobs.SyncQueue(prov))
		if err != nil {
			return true, woken, fmt.Errorf("resume deletions of %s: %w", prov, err)
		}
		woken += n
	}
	e.logger.Warn("deletions by sync jobs resumed by an operator", "provider", prov, "woken_jobs", woken)
	return true, woken, nil
}
