package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/worker"
)

// The deletion guard's operator side: `usersync backfill --confirm-deletions`
// applies a held run's deletions, `usersync backfill --resume-deletions`
// resumes deletions by sync jobs after the breaker paused them, and `usersync
// status` reports both.

type guardOpts struct {
	confirm, resume *bool
	run             *int64
}

func guardFlags(fs *flag.FlagSet) *guardOpts {
	return &guardOpts{
		confirm: fs.Bool("confirm-deletions", false, "apply the deletions of the provider's held backfill run (recomputed now: users written since the run started are kept); needs --provider when several providers are configured"),
		resume:  fs.Bool("resume-deletions", false, "resume deletions by sync jobs that usersync paused after too many users in a row were not found at the provider"),
		run:     fs.Int64("run", 0, "with --confirm-deletions: the held run to confirm (as named by 'usersync status'); it must be the provider's current held run"),
	}
}

func (g *guardOpts) set() bool { return *g.confirm || *g.resume || *g.run != 0 }

func runGuardCommand(ctx context.Context, st IO, env *Env, g *guardOpts, only string, wait bool) error {
	switch {
	case *g.confirm && *g.resume:
		return &exitError{2, errors.New("--confirm-deletions and --resume-deletions are separate decisions: give one")}
	case *g.run != 0 && !*g.confirm:
		return &exitError{2, errors.New("--run goes with --confirm-deletions")}
	case wait:
		return &exitError{2, errors.New("--wait does not apply to --confirm-deletions or --resume-deletions (they finish at once)")}
	}
	pool, err := OpenPool(ctx, env.Config.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate.Check(ctx, pool, env.Plan()); err != nil {
		return fmt.Errorf("%w\n%s", err, migrateHint)
	}
	ps, schemas, err := env.Providers(nil)
	if err != nil {
		return err
	}
	var name string
	for _, p := range ps {
		if p.Name() == only || (only == "" && len(ps) == 1) {
			name = p.Name()
		}
	}
	switch {
	case name == "" && only != "":
		return &exitError{2, fmt.Errorf("--provider %q is not configured", only)}
	case name == "" && len(ps) == 0:
		return errors.New("no provider is configured")
	case name == "":
		return &exitError{2, errors.New("several providers are configured: name one with --provider")}
	}
	if *g.resume {
		return resumeDeletions(ctx, st.Stdout, env, pool, name)
	}
	return confirmHeld(ctx, st.Stdout, env, pool, name, schemas[name], *g.run)
}

// confirmHeld applies the deletions of prov's current held run (the newest
// held run with no complete run after it; runID, if not 0, must name it).
// They are recomputed now under the rules of a normal completion (users the
// run never listed and that were not written since it started), so a user
// written since is kept; if more users would be deleted now than the run
// held (rows that appeared since without a fetch), it refuses.
func confirmHeld(ctx context.Context, w io.Writer, env *Env, pool *pgxpool.Pool, prov, schema string, runID int64) error {
	cfg := env.Config
	st := storeOf(cfg)
	t, err := worker.LoadTarget(ctx, pool, schema, cfg.NotifyChannelFor(schema))
	if err != nil {
		return err
	}
	users := store.NewUsers(store.UsersConfig{Provider: prov, InternalSchema: st.Schemas.Internal, RiverSchema: st.Schemas.River, Target: t,
		HardDelete: cfg.DeleteMode == config.DeleteHard, Redact: cfg.Redact})
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("confirm deletions of %s: %w", prov, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	hr, err := st.Runs.Held(ctx, tx, prov, true)
	if err != nil {
		return fmt.Errorf("confirm deletions of %s: find the held run: %w", prov, err)
	}
	if hr == nil {
		return &exitError{1, fmt.Errorf("%s has no held backfill run to confirm (a complete run may have replaced it; see 'usersync status')", prov)}
	}
	id, startedAt, held := hr.ID, hr.StartedAt, int64(0)
	if hr.HeldDeletions != nil {
		held = *hr.HeldDeletions
	}
	if runID != 0 && runID != id {
		return &exitError{1, fmt.Errorf("run %d is not %s's current held run (run %d is); see 'usersync status'", runID, prov, id)}
	}
	would, _, err := users.Inferable(ctx, tx, id, startedAt)
	if err != nil {
		return err
	}
	if would > held {
		return &exitError{1, fmt.Errorf("run %d of %s would now mark %d users deleted, more than the %d it held: nothing done; run a new backfill", id, prov, would, held)}
	}
	res, err := users.InferDeletions(ctx, tx, id, startedAt)
	if err != nil {
		return err
	}
	// Users written while the run listed cannot be ordered against it: a
	// fresh sync decides whether they still exist (as at a run's end).
	if len(res.Resync) > 0 {
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: st.Schemas.River, SkipUnknownJobCheck: true})
		if err != nil {
			return fmt.Errorf("confirm deletions of %s run %d: river client: %w", prov, id, err)
		}
		if err := jobs.EnqueueResyncs(ctx, tx, client, prov, res.Resync); err != nil {
			return fmt.Errorf("confirm deletions of %s run %d: %w", prov, id, err)
		}
	}
	if err := st.Runs.ConfirmHeld(ctx, tx, id, res.Deleted); err != nil {
		return fmt.Errorf("confirm deletions of %s: %w", prov, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("confirm deletions of %s run %d: commit: %w", prov, id, err)
	}
	env.Logger.Warn("held backfill run confirmed by an operator: its deletions are applied", "provider", prov, "run_id", id,
		"deleted", res.Deleted, "held", held)
	fmt.Fprintf(w, "%s: run %d confirmed: %d users marked deleted (it held %d; users written since the run started were kept)\n",
		prov, id, res.Deleted, held)
	return nil
}

// resumeDeletions clears prov's deletion breaker and wakes the sync jobs
// that wait because of it: they fetch their user again at once. If the
// provider still answers not-found for users whose latest event was not a
// deletion, at most worker.DeleteGuardMinRows more are deleted before the
// breaker pauses deletions again.
func resumeDeletions(ctx context.Context, w io.Writer, env *Env, pool *pgxpool.Pool, prov string) error {
	st := storeOf(env.Config)
	resumed, err := st.Breakers.Resume(ctx, pool, prov)
	if err != nil {
		return err
	}
	if !resumed {
		fmt.Fprintf(w, "%s: deletions by sync jobs are not paused; nothing to resume\n", prov)
		return nil
	}
	woken, err := st.Jobs.WakePaused(ctx, pool, jobs.KindSyncUser, jobs.SyncQueue(prov))
	if err != nil {
		return fmt.Errorf("resume deletions of %s: %w", prov, err)
	}
	env.Logger.Warn("deletions by sync jobs resumed by an operator", "provider", prov, "woken_jobs", woken)
	fmt.Fprintf(w, "%s: deletions by sync jobs resumed; %d waiting syncs run again now\n", prov, woken)
	return nil
}

// PauseReport describes paused deletions by sync jobs.
type PauseReport = store.PauseReport

// apiURLVar names the variable of prov's API URL, the usual suspect when
// the provider says every user is missing.
func apiURLVar(prov string) string {
	switch prov {
	case "stackauth":
		return "STACK_API_URL"
	case "clerk":
		return "CLERK_API_URL"
	case "workos":
		return "WORKOS_API_URL"
	}
	return "the provider's API URL"
}

// heldMessage explains a held run and names the command that confirms it.
func heldMessage(prov string, r *runProgress) string {
	var would, live int64
	if r.HeldDeletions != nil {
		would = *r.HeldDeletions
	}
	if r.HeldLive != nil {
		live = *r.HeldLive
	}
	return fmt.Sprintf("backfill run %d is held: it listed %d users and would mark %d of %d live users deleted, "+
		"more than USERSYNC_DELETE_GUARD allows; nothing was deleted. If %s is wrong, fix it and run 'usersync backfill'; "+
		"if the provider really lost these users, confirm with: %s",
		r.ID, r.Listed, would, live, apiURLVar(prov), worker.ConfirmCommand(prov, r.ID))
}

func guardAttention(pr *ProviderReport) []string {
	var out []string
	if pr.HeldRun != nil {
		out = append(out, pr.Provider+": "+heldMessage(pr.Provider, pr.HeldRun))
	}
	if p := pr.DeletionsPaused; p != nil {
		out = append(out, fmt.Sprintf("%s: deletions by sync jobs are paused (%s): %d users in a row were not found at the provider "+
			"although their latest event was not a deletion, and were marked deleted before the pause; %d more syncs wait. "+
			"Check %s and the credentials, then resume with: "+
			"usersync backfill --resume-deletions --provider %s",
			pr.Provider, ago(&p.PausedAt), p.UnexpectedNotFound, p.WaitingSyncs, apiURLVar(pr.Provider), pr.Provider))
	}
	return out
}

func printGuard(w io.Writer, pr *ProviderReport) {
	if r := pr.HeldRun; r != nil && r.HeldDeletions != nil && r.HeldLive != nil {
		fmt.Fprintf(w, "  held backfill:            run %d, %s, would mark %d of %d live users deleted\n",
			r.ID, ago(r.FinishedAt), *r.HeldDeletions, *r.HeldLive)
	}
	if p := pr.DeletionsPaused; p != nil {
		fmt.Fprintf(w, "  sync deletions:           PAUSED %s, %d syncs waiting\n", ago(&p.PausedAt), p.WaitingSyncs)
	}
}
