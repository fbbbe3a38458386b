package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/store"
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
	eng, ps, err := openEngine(ctx, env, pool)
	if err != nil {
		return err
	}
	if eng == nil {
		return errors.New("no provider is configured")
	}
	defer eng.Close()
	var names []string
	for _, p := range ps {
		if *only == "" || p.Name() == *only {
			names = append(names, p.Name())
		}
	}
	if len(names) == 0 {
		return &exitError{2, fmt.Errorf("--provider %q is not configured", *only)}
	}
	var followed []*engine.Backfill
	for _, name := range names {
		b, err := startBackfill(ctx, st.Stdout, eng, name)
		if err != nil {
			return err
		}
		followed = append(followed, b)
	}
	if !*wait {
		return nil
	}
	failed := false
	for _, b := range followed {
		ok, err := follow(ctx, st.Stdout, b)
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

// startBackfill starts (or joins) a backfill of prov and says which.
func startBackfill(ctx context.Context, w io.Writer, eng *engine.Engine, prov string) (*engine.Backfill, error) {
	b, err := eng.StartBackfill(ctx, prov)
	if err != nil {
		return nil, err
	}
	if b.Joined() {
		fmt.Fprintf(w, "%s: a backfill is already going (job %d); following it\n", prov, b.JobID())
	} else {
		fmt.Fprintf(w, "%s: backfill enqueued (job %d)\n", prov, b.JobID())
	}
	return b, nil
}

// follow shows the progress of backfill b until it ends; it reports
// whether the run completed.
func follow(ctx context.Context, w io.Writer, b *engine.Backfill) (bool, error) {
	prov := b.Provider()
	tty := isTerminal(w)
	lastLine := ""
	for p, err := range b.Follow(ctx, engine.BackfillPollInterval) {
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(w)
			}
			return false, err
		}
		if p.SkippedJobID != 0 {
			fmt.Fprintf(w, "%s: job %d skipped its run; following job %d (already waiting: %v)\n", prov, p.SkippedJobID, p.JobID, p.Joined)
		}
		var line string
		switch r := p.Run; {
		case r == nil && p.Done:
			msg := "the backfill job ended without starting a run"
			if p.JobError != nil {
				msg += ": " + *p.JobError
			}
			fmt.Fprintf(w, "\n%s: %s\n", prov, msg)
			return false, nil
		case r == nil:
			line = fmt.Sprintf("%s: waiting for the first page (job %s)", prov, p.JobState)
			if p.JobError != nil {
				line += " — last error: " + oneLine(*p.JobError, 100)
			}
		case p.Done:
			line = progressLine(prov, r)
			if tty {
				fmt.Fprintf(w, "\r\033[K%s\n", line)
			} else {
				fmt.Fprintln(w, line)
			}
			if r.Status == store.RunFailed && r.LastError != nil {
				fmt.Fprintf(w, "%s: run %d failed: %s\n", prov, r.ID, *r.LastError)
			}
			if r.Status == store.RunHeld {
				fmt.Fprintf(w, "%s: %s\n", prov, engine.HeldMessage(prov, r))
			}
			if o := p.Organizations; o != nil {
				fmt.Fprintln(w, progressLine(prov, o))
				if o.Status == store.RunFailed && o.LastError != nil {
					fmt.Fprintf(w, "%s: organizations run %d failed: %s\n", prov, o.ID, *o.LastError)
				}
				if o.Status == store.RunHeld {
					fmt.Fprintf(w, "%s: %s\n", prov, engine.HeldMessage(prov, o))
				}
			} else if r.Status == store.RunCompleted && !p.Completed() {
				msg := "the organizations backfill job ended without starting a run"
				if p.OrganizationsError != nil {
					msg += ": " + *p.OrganizationsError
				}
				fmt.Fprintf(w, "%s: %s\n", prov, msg)
			}
			return p.Completed(), nil
		default:
			line = progressLine(prov, r)
			if o := p.Organizations; o != nil {
				line += " || " + progressLine("", o)
			}
		}
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else if line != lastLine {
			fmt.Fprintln(w, line)
		}
		lastLine = line
	}
	return false, errors.New("backfill progress ended early")
}

// runProgress is one row of backfill_run.
type runProgress = store.Run

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
	what := "users"
	if r.Kind == store.RunOrganizations {
		what = "organizations"
	}
	line := fmt.Sprintf("%s: run %d %s %s pages %d | %s %d listed, %d written | %.0f %s/s | %s",
		prov, r.ID, r.Status, spin, r.Pages, what, r.Listed, r.Written, rate, what, el)
	if prov == "" {
		line = strings.TrimPrefix(line, ": ")
	}
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
