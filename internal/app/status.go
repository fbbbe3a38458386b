package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/usersync/usersync/engine"
)

// Report is what `usersync status` shows.
type Report = engine.Status

// ProviderReport is one provider's part of the report.
type ProviderReport = engine.ProviderStatus

func runStatus(ctx context.Context, st IO, args []string) error {
	fs := newFlags(st, "status", `Shows, per provider: last webhook, last successful sync, last complete backfill and the
progress of a running one, jobs by state, the oldest waiting job, recent errors, and the
provider API request budget (limit, current rate, requests in the last minute, 429s).
Exits 1 when something needs attention (bad credentials, discarded jobs in the last hour,
no complete backfill, a failed backfill, a backfill held by the deletion guard, deletions by
sync jobs paused).`)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args, st); err != nil {
		return err
	}
	env, err := loadEnv(st, true)
	if err != nil {
		return err
	}
	pool, err := OpenPool(ctx, env.Config.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	eng, _, err := openEngine(ctx, env, pool)
	if err != nil {
		return err
	}
	rep := &Report{Attention: []string{}}
	if eng != nil {
		defer eng.Close()
		if rep, err = eng.Status(ctx); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(st.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(st.Stdout, rep)
	}
	if len(rep.Attention) > 0 {
		return &exitError{1, nil}
	}
	return nil
}

func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmt.Sprintf("%s ago, %s", time.Since(*t).Round(time.Second), t.UTC().Format(time.RFC3339))
}

func printReport(w io.Writer, rep *Report) {
	for _, pr := range rep.Providers {
		fmt.Fprintf(w, "%s → %s.users_sync: %d users, %d deleted\n", pr.Provider, pr.Schema, pr.Users, pr.DeletedUsers)
		fmt.Fprintf(w, "  last webhook:             %s\n", ago(pr.LastWebhookAt))
		fmt.Fprintf(w, "  last successful sync:     %s\n", ago(pr.LastSyncAt))
		if pr.LastCompleteRun != nil {
			fmt.Fprintf(w, "  last complete backfill:   run %d, %s, %d users, %d marked deleted\n",
				pr.LastCompleteRun.ID, ago(pr.LastCompleteRun.FinishedAt), pr.LastCompleteRun.Listed, pr.LastCompleteRun.Deleted)
		} else {
			fmt.Fprintf(w, "  last complete backfill:   never\n")
		}
		if pr.CurrentRun != nil {
			fmt.Fprintf(w, "  running backfill:         %s\n", progressLine(pr.Provider, pr.CurrentRun))
		}
		if o := pr.Organizations; o != nil {
			fmt.Fprintf(w, "  organizations:            %d live, %d deleted, %d memberships\n", o.Organizations, o.DeletedOrganizations, o.Memberships)
			if o.LastCompleteRun != nil {
				fmt.Fprintf(w, "  last org backfill:        run %d, %s, %d organizations, %d marked deleted\n",
					o.LastCompleteRun.ID, ago(o.LastCompleteRun.FinishedAt), o.LastCompleteRun.Listed, o.LastCompleteRun.Deleted)
			} else {
				fmt.Fprintf(w, "  last org backfill:        never\n")
			}
			if o.CurrentRun != nil {
				fmt.Fprintf(w, "  running org backfill:     %s\n", progressLine(pr.Provider, o.CurrentRun))
			}
		}
		printGuard(w, &pr)
		printRateLimit(w, &pr)
		states := make([]string, 0, len(pr.Jobs))
		for s := range pr.Jobs {
			states = append(states, s)
		}
		sort.Strings(states)
		fmt.Fprintf(w, "  jobs:                    ")
		if len(states) == 0 {
			fmt.Fprintf(w, " none")
		}
		for _, s := range states {
			fmt.Fprintf(w, " %s=%d", s, pr.Jobs[s])
		}
		fmt.Fprintln(w)
		if pr.OldestWaitingJob != nil {
			fmt.Fprintf(w, "  oldest waiting job:       %s\n", ago(pr.OldestWaitingJob))
		}
		if len(pr.RecentErrors) > 0 {
			fmt.Fprintf(w, "  recent errors (24h):\n")
			for _, e := range pr.RecentErrors {
				fmt.Fprintf(w, "    %5d× %s (last %s)\n", e.Count, oneLine(e.Error, 140), ago(&e.Last))
			}
		}
	}
	if len(rep.Attention) > 0 {
		fmt.Fprintln(w, "\nNeeds attention:")
		for _, a := range rep.Attention {
			fmt.Fprintf(w, "  - %s\n", a)
		}
	} else {
		fmt.Fprintln(w, "\nAll providers healthy.")
	}
}

// printRateLimit shows the provider's request budget and its use.
func printRateLimit(w io.Writer, pr *ProviderReport) {
	rl := pr.RateLimit
	if rl == nil {
		fmt.Fprintf(w, "  request budget:           no request yet\n")
		return
	}
	fmt.Fprintf(w, "  request budget:           %s/s limit, %s/s now; requests granted: %d this minute, %d the minute before (%.1f/s)\n",
		trimFloat(rl.Limit), trimFloat(rl.Effective), rl.CurrentMinute, rl.LastMinute, float64(rl.LastMinute)/60)
	if rl.Backlog > 0 {
		fmt.Fprintf(w, "                            reserved %s ahead\n", rl.Backlog.Round(time.Millisecond))
	}
	if rl.Throttled > 0 {
		fmt.Fprintf(w, "                            %d answered 429 in all (%d slowed the budget), last %s\n", rl.Throttled, rl.Slowdowns, ago(rl.LastThrottledAt))
	}
}

// trimFloat renders f with at most two decimals and no trailing zeros.
func trimFloat(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
