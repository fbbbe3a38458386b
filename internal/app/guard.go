package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/migrate"
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
	is := pgx.Identifier{cfg.InternalSchema}.Sanitize()
	t, err := worker.LoadTarget(ctx, pool, schema, cfg.NotifyChannelFor(schema))
	if err != nil {
		return err
	}
	store := worker.NewStore(worker.StoreConfig{Provider: prov, InternalSchema: cfg.InternalSchema, Target: t,
		HardDelete: cfg.DeleteMode == config.DeleteHard, Redact: cfg.Redact})
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("confirm deletions of %s: %w", prov, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var id int64
	var startedAt time.Time
	var held int64
	err = tx.QueryRow(ctx, `SELECT r.id, r.started_at, coalesce(r.held_deletions, 0) FROM `+is+`.backfill_run r
		WHERE r.provider = $1 AND r.status = '`+worker.RunHeld+`'
		  AND NOT EXISTS (SELECT 1 FROM `+is+`.backfill_run c WHERE c.provider = r.provider AND c.status = '`+worker.RunCompleted+`' AND c.id > r.id)
		ORDER BY r.id DESC LIMIT 1 FOR UPDATE`, prov).Scan(&id, &startedAt, &held)
	if errors.Is(err, pgx.ErrNoRows) {
		return &exitError{1, fmt.Errorf("%s has no held backfill run to confirm (a complete run may have replaced it; see 'usersync status')", prov)}
	}
	if err != nil {
		return fmt.Errorf("confirm deletions of %s: find the held run: %w", prov, err)
	}
	if runID != 0 && runID != id {
		return &exitError{1, fmt.Errorf("run %d is not %s's current held run (run %d is); see 'usersync status'", runID, prov, id)}
	}
	would, _, err := store.Inferable(ctx, tx, id, startedAt)
	if err != nil {
		return err
	}
	if would > held {
		return &exitError{1, fmt.Errorf("run %d of %s would now mark %d users deleted, more than the %d it held: nothing done; run a new backfill", id, prov, would, held)}
	}
	res, err := store.InferDeletions(ctx, tx, id, startedAt)
	if err != nil {
		return err
	}
	// Users written while the run listed cannot be ordered against it: a
	// fresh sync decides whether they still exist (as at a run's end).
	if len(res.Resync) > 0 {
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: cfg.InternalSchema, SkipUnknownJobCheck: true})
		if err != nil {
			return fmt.Errorf("confirm deletions of %s run %d: river client: %w", prov, id, err)
		}
		if err := jobs.EnqueueResyncs(ctx, tx, client, prov, res.Resync); err != nil {
			return fmt.Errorf("confirm deletions of %s run %d: %w", prov, id, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE `+is+`.backfill_run SET status = '`+worker.RunCompleted+`', users_deleted = $2,
		confirmed_at = now(), updated_at = now() WHERE id = $1`, id, res.Deleted); err != nil {
		return fmt.Errorf("confirm deletions of %s run %d: %w", prov, id, err)
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
	is := pgx.Identifier{env.Config.InternalSchema}.Sanitize()
	tag, err := pool.Exec(ctx, `UPDATE `+is+`.deletion_breaker SET paused_at = NULL, paused_user_id = NULL,
		unexpected_not_found = 0, resumed_at = now(), updated_at = now() WHERE provider = $1 AND paused_at IS NOT NULL`, prov)
	if err != nil {
		return fmt.Errorf("resume deletions of %s: %w", prov, err)
	}
	if tag.RowsAffected() == 0 {
		fmt.Fprintf(w, "%s: deletions by sync jobs are not paused; nothing to resume\n", prov)
		return nil
	}
	woken, err := pool.Exec(ctx, `UPDATE `+is+`.river_job SET state = 'available', scheduled_at = now()
		WHERE kind = $1 AND queue = $2 AND state = 'scheduled' AND metadata ? '`+worker.PausedKey+`'`, jobs.KindSyncUser, jobs.SyncQueue(prov))
	if err != nil {
		return fmt.Errorf("resume deletions of %s: wake waiting syncs: %w", prov, err)
	}
	env.Logger.Warn("deletions by sync jobs resumed by an operator", "provider", prov, "woken_jobs", woken.RowsAffected())
	fmt.Fprintf(w, "%s: deletions by sync jobs resumed; %d waiting syncs run again now\n", prov, woken.RowsAffected())
	return nil
}

// PauseReport describes paused deletions by sync jobs.
type PauseReport struct {
	PausedAt time.Time `json:"paused_at"`
	// UnexpectedNotFound is how many users in a row were not found although
	// their latest event was not a deletion.
	UnexpectedNotFound int64 `json:"unexpected_not_found"`
	// UserID is the user whose sync found the breaker's limit reached.
	UserID string `json:"user_id,omitempty"`
	// WaitingSyncs is how many sync jobs wait for deletions to resume.
	WaitingSyncs int64 `json:"waiting_syncs"`
}

// guardReport adds the held run and paused sync deletions to pr.
func guardReport(ctx context.Context, pool *pgxpool.Pool, is string, pr *ProviderReport) error {
	r, err := scanRun(pool.QueryRow(ctx, `SELECT `+runCols+` FROM `+is+`.backfill_run r
		WHERE provider = $1 AND status = '`+worker.RunHeld+`'
		  AND NOT EXISTS (SELECT 1 FROM `+is+`.backfill_run c WHERE c.provider = r.provider AND c.status = '`+worker.RunCompleted+`' AND c.id > r.id)
		ORDER BY id DESC LIMIT 1`, pr.Provider))
	if err != nil {
		return fmt.Errorf("status of %s: held backfill: %w", pr.Provider, err)
	}
	pr.HeldRun = r
	var p PauseReport
	var at *time.Time
	var user *string
	err = pool.QueryRow(ctx, `SELECT paused_at, unexpected_not_found, paused_user_id,
		(SELECT count(*) FROM `+is+`.river_job WHERE kind = $2 AND queue = $3 AND state = 'scheduled' AND metadata ? '`+worker.PausedKey+`')
		FROM `+is+`.deletion_breaker WHERE provider = $1`, pr.Provider, jobs.KindSyncUser, jobs.SyncQueue(pr.Provider)).
		Scan(&at, &p.UnexpectedNotFound, &user, &p.WaitingSyncs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("status of %s: deletion breaker: %w", pr.Provider, err)
	}
	if at != nil {
		p.PausedAt = *at
		if user != nil {
			p.UserID = *user
		}
		pr.DeletionsPaused = &p
	}
	return nil
}

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
