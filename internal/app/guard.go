package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/usersync/usersync/engine"
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
	eng, ps, err := openEngine(ctx, env, pool)
	if err != nil {
		return err
	}
	if eng == nil {
		return errors.New("no provider is configured")
	}
	defer eng.Close()
	var name string
	for _, p := range ps {
		if p.Name() == only || (only == "" && len(ps) == 1) {
			name = p.Name()
		}
	}
	switch {
	case name == "" && only != "":
		return &exitError{2, fmt.Errorf("--provider %q is not configured", only)}
	case name == "":
		return &exitError{2, errors.New("several providers are configured: name one with --provider")}
	}
	if *g.resume {
		resumed, woken, err := eng.ResumeDeletions(ctx, name)
		if err != nil {
			return err
		}
		if !resumed {
			fmt.Fprintf(st.Stdout, "%s: deletions by sync jobs are not paused; nothing to resume\n", name)
			return nil
		}
		fmt.Fprintf(st.Stdout, "%s: deletions by sync jobs resumed; %d waiting syncs run again now\n", name, woken)
		return nil
	}
	c, err := eng.ConfirmHeld(ctx, name, *g.run)
	if err != nil {
		return err
	}
	what := "users"
	if c.Kind == engine.RunOrganizations {
		what = "organizations"
	}
	fmt.Fprintf(st.Stdout, "%s: run %d confirmed: %d %s marked deleted (it held %d; %s written since the run started were kept)\n",
		name, c.RunID, c.Deleted, what, c.Held, what)
	return nil
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
