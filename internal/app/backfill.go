package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/worker"
)

func runBackfill(ctx context.Context, st IO, args []string) error {
	fs := newFlags(st, "backfill", `Enqueues a full backfill for each configured provider (or the one named by --provider). If
a run is already going, says so and follows that one. With --wait it shows progress and
returns once the run's last page and the deletions it inferred have committed; it exits
non-zero if a run failed or was held.

A run that would mark more than USERSYNC_DELETE_GUARD of the provider's live users deleted
(and more than 10), or that listed nobody while live users exist, deletes nothing and ends
held. --confirm-deletions applies the held run's deletions (recomputed: users written since
are kept). --resume-deletions resumes deletions by sync jobs after usersync paused them
(too many users not found at the provider although their latest event was not a deletion).`)
	wait := fs.Bool("wait", false, "follow the run with a progress bar until it ends")
	only := fs.String("provider", "", "backfill only this provider (stackauth, clerk, workos)")
	gf := guardFlags(fs)
	if err := parse(fs, args, st); err != nil {
		return err
	}
	env, err := loadEnv(st, true)
	if err != nil {
		return err
	}
	if gf.set() {
		return runGuardCommand(ctx, st, env, gf, *only, *wait)
	}
	pool, err := OpenPool(ctx, env.Config.DatabaseURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate.Check(ctx, pool, env.Plan()); err != nil {
		return fmt.Errorf("%w\n%s", err, migrateHint)
	}
	ps, _, err := env.Providers(nil)
	if err != nil {
		return err
	}
	var names []string
	for _, p := range ps {
		if *only == "" || p.Name() == *only {
			names = append(names, p.Name())
		}
	}
	if len(names) == 0 {
		if *only != "" {
			return &exitError{2, fmt.Errorf("--provider %q is not configured", *only)}
		}
		return errors.New("no provider is configured")
	}
	followed := map[string]int64{}
	for _, name := range names {
		id, already, err := enqueueBackfill(ctx, pool, env.Config.InternalSchema, name)
		if err != nil {
			return err
		}
		if already {
			fmt.Fprintf(st.Stdout, "%s: a backfill is already going (job %d); following it\n", name, id)
		} else {
			fmt.Fprintf(st.Stdout, "%s: backfill enqueued (job %d)\n", name, id)
		}
		followed[name] = id
	}
	if !*wait {
		return nil
	}
	failed := false
	for _, name := range names {
		ok, err := follow(ctx, st.Stdout, pool, env.Config.InternalSchema, name, followed[name])
		if err != nil {
			return err
		}
		failed = failed || !ok
	}
	if failed {
		return &exitError{1, errors.New("a backfill run failed or was held (see above)")}
	}
	return nil
}

// enqueueBackfill enqueues a forced backfill of prov, or finds the job of the
// run already going (already = true). It returns the job to follow.
func enqueueBackfill(ctx context.Context, pool *pgxpool.Pool, internalSchema, prov string) (jobID int64, already bool, err error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: internalSchema, SkipUnknownJobCheck: true})
	if err != nil {
		return 0, false, fmt.Errorf("river client: %w", err)
	}
	res, err := client.Insert(ctx, jobs.BackfillPageArgs{Provider: prov, Force: true}, nil)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue backfill of %s: %w", prov, err)
	}
	if res.UniqueSkippedAsDuplicate {
		// The job already waiting may be a scheduled one that has not started
		// a run, and would skip it if a complete run started recently: the
		// operator asked for a backfill, so make it run regardless.
		if _, err := pool.Exec(ctx, `UPDATE `+pgx.Identifier{internalSchema}.Sanitize()+`.river_job
			SET args = jsonb_set(args, '{force}', 'true') WHERE id = $1 AND coalesce(args->>'run_id', '') = ''
			AND state IN ('available', 'scheduled', 'retryable', 'pending')`, res.Job.ID); err != nil {
			return 0, false, fmt.Errorf("enqueue backfill of %s: %w", prov, err)
		}
	}
	return res.Job.ID, res.UniqueSkippedAsDuplicate, nil
}

// runProgress is one row of backfill_run.
type runProgress struct {
	ID                       int64
	Status                   string
	StartedAt                time.Time
	FinishedAt               *time.Time
	Pages                    int
	Listed, Written, Deleted int64
	LastError                *string
	// HeldDeletions and HeldLive are set on a held run: how many live users
	// it would mark deleted, of how many.
	HeldDeletions *int64 `json:",omitempty"`
	HeldLive      *int64 `json:",omitempty"`
}

const runCols = `id, status, started_at, finished_at, pages, users_listed, users_written, users_deleted, last_error, held_deletions, held_live`

func scanRun(row pgx.Row) (*runProgress, error) {
	var r runProgress
	err := row.Scan(&r.ID, &r.Status, &r.StartedAt, &r.FinishedAt, &r.Pages, &r.Listed, &r.Written, &r.Deleted, &r.LastError, &r.HeldDeletions, &r.HeldLive)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return &r, err
}

// follow shows the progress of the run started by (or containing) job jobID
// until it ends; it reports whether the run completed.
func follow(ctx context.Context, w io.Writer, pool *pgxpool.Pool, internalSchema, prov string, jobID int64) (bool, error) {
	is := pgx.Identifier{internalSchema}.Sanitize()
	tty := isTerminal(w)
	var runID int64
	lastLine := ""
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		var r *runProgress
		var err error
		if runID == 0 {
			// The run is created by its first page; a job that continues a
			// run names it in its args.
			r, err = scanRun(pool.QueryRow(ctx, `SELECT `+runCols+` FROM `+is+`.backfill_run
				WHERE started_by_job = $1 OR id::text = (SELECT args->>'run_id' FROM `+is+`.river_job WHERE id = $1)
				ORDER BY id DESC LIMIT 1`, jobID))
		} else {
			r, err = scanRun(pool.QueryRow(ctx, `SELECT `+runCols+` FROM `+is+`.backfill_run WHERE id = $1`, runID))
		}
		if err != nil {
			return false, fmt.Errorf("read backfill progress: %w", err)
		}
		var line string
		if r == nil {
			var state string
			var lastErr *string
			err := pool.QueryRow(ctx, `SELECT state::text, errors[array_upper(errors, 1)]->>'error' FROM `+is+`.river_job WHERE id = $1`, jobID).Scan(&state, &lastErr)
			if errors.Is(err, pgx.ErrNoRows) || state == "discarded" || state == "cancelled" {
				msg := "the backfill job ended without starting a run"
				if lastErr != nil {
					msg += ": " + *lastErr
				}
				fmt.Fprintf(w, "\n%s: %s\n", prov, msg)
				return false, nil
			} else if err != nil {
				return false, fmt.Errorf("read backfill job: %w", err)
			}
			var started bool
			if state == "completed" {
				// The job may have completed (and started its run) since the
				// run was looked up above.
				if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+is+`.backfill_run WHERE started_by_job = $1)`, jobID).Scan(&started); err != nil {
					return false, fmt.Errorf("read backfill progress: %w", err)
				}
			}
			if state == "completed" && !started {
				// A job completes in the transaction that starts its run: this
				// one started none (a scheduled job that found a recent complete
				// run, and was already running when joined). Enqueue a backfill
				// that runs regardless, and follow that.
				id, already, err := enqueueBackfill(ctx, pool, internalSchema, prov)
				if err != nil {
					return false, err
				}
				fmt.Fprintf(w, "%s: job %d skipped its run; following job %d (already waiting: %v)\n", prov, jobID, id, already)
				jobID, state, lastErr = id, "enqueued", nil
			}
			line = fmt.Sprintf("%s: waiting for the first page (job %s)", prov, state)
			if lastErr != nil {
				line += " — last error: " + oneLine(*lastErr, 100)
			}
		} else {
			runID = r.ID
			line = progressLine(prov, r)
			if r.Status != "running" {
				if tty {
					fmt.Fprintf(w, "\r\033[K%s\n", line)
				} else {
					fmt.Fprintln(w, line)
				}
				if r.Status == "failed" && r.LastError != nil {
					fmt.Fprintf(w, "%s: run %d failed: %s\n", prov, r.ID, *r.LastError)
				}
				if r.Status == worker.RunHeld {
					fmt.Fprintf(w, "%s: %s\n", prov, heldMessage(prov, r))
				}
				return r.Status == "completed", nil
			}
		}
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else if line != lastLine {
			fmt.Fprintln(w, line)
		}
		lastLine = line
		select {
		case <-ctx.Done():
			fmt.Fprintln(w)
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

func progressLine(prov string, r *runProgress) string {
	end := time.Now()
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	el := end.Sub(r.StartedAt).Round(100 * time.Millisecond)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(r.Listed) / s
	}
	spin := []string{"▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"}[r.Pages%8]
	line := fmt.Sprintf("%s: run %d %s %s pages %d | users %d listed, %d written | %.0f users/s | %s",
		prov, r.ID, r.Status, spin, r.Pages, r.Listed, r.Written, rate, el)
	if r.Status == "completed" {
		line += fmt.Sprintf(" | %d marked deleted", r.Deleted)
	}
	if r.LastError != nil && r.Status == "running" {
		line += " | retrying after: " + oneLine(*r.LastError, 80)
	}
	return line
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
