package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
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
	st := store.New(store.Schemas{Internal: internalSchema, River: internalSchema})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: st.Schemas.River, SkipUnknownJobCheck: true})
	if err != nil {
		return 0, false, fmt.Errorf("river client: %w", err)
	}
	return jobs.ForceBackfill(ctx, client, pool, st.Runs, prov)
}

// runProgress is one row of backfill_run.
type runProgress = store.Run

// follow shows the progress of the run started by (or containing) job jobID
// until it ends; it reports whether the run completed.
func follow(ctx context.Context, w io.Writer, pool *pgxpool.Pool, internalSchema, prov string, jobID int64) (bool, error) {
	st := store.New(store.Schemas{Internal: internalSchema, River: internalSchema})
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
			r, err = st.Runs.ForJob(ctx, pool, jobID)
		} else {
			r, err = st.Runs.Get(ctx, pool, runID)
		}
		if err != nil {
			return false, fmt.Errorf("read backfill progress: %w", err)
		}
		var line string
		if r == nil {
			js, err := st.Jobs.State(ctx, pool, jobID)
			if err != nil {
				return false, fmt.Errorf("read backfill job: %w", err)
			}
			var state string
			var lastErr *string
			if js != nil {
				state, lastErr = js.State, js.LastError
			}
			if js == nil || state == "discarded" || state == "cancelled" {
				msg := "the backfill job ended without starting a run"
				if lastErr != nil {
					msg += ": " + *lastErr
				}
				fmt.Fprintf(w, "\n%s: %s\n", prov, msg)
				return false, nil
			}
			var started bool
			if state == "completed" {
				// The job may have completed (and started its run) since the
				// run was looked up above.
				if started, err = st.Runs.StartedByJob(ctx, pool, jobID); err != nil {
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
			if r.Status != store.RunRunning {
				if tty {
					fmt.Fprintf(w, "\r\033[K%s\n", line)
				} else {
					fmt.Fprintln(w, line)
				}
				if r.Status == store.RunFailed && r.LastError != nil {
					fmt.Fprintf(w, "%s: run %d failed: %s\n", prov, r.ID, *r.LastError)
				}
				if r.Status == store.RunHeld {
					fmt.Fprintf(w, "%s: %s\n", prov, heldMessage(prov, r))
				}
				return r.Status == store.RunCompleted, nil
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
	if r.Status == store.RunCompleted {
		line += fmt.Sprintf(" | %d marked deleted", r.Deleted)
	}
	if r.LastError != nil && r.Status == store.RunRunning {
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
