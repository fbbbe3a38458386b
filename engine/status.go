package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/worker"
)

// ProviderStatus is one provider's part of a Status: its users_sync table,
// the last webhook and sync, its backfill runs, its jobs by state and
// recent job errors, and the deletion guard's state. Its JSON form is what
// `usersync status --json` shows.
type ProviderStatus = store.ProviderReport

// ErrorCount is one distinct recent job error and how often it occurred.
type ErrorCount = store.ErrorCount

// PauseReport describes paused deletions by sync jobs.
type PauseReport = store.PauseReport

// OrganizationsStatus is the organizations' part of a ProviderStatus (with
// Config.Organizations).
type OrganizationsStatus = store.OrganizationsReport

// Status is what `usersync status` reports.
type Status struct {
	// Providers are the configured providers' reports, in Config order.
	Providers []ProviderStatus `json:"providers"`
	// Attention lists what needs an operator, one sentence each; empty
	// when all is well.
	Attention []string `json:"attention"`
}

// Healthy reports whether nothing needs an operator.
func (s *Status) Healthy() bool { return len(s.Attention) == 0 }

// Status reads each provider's status from the database (usersync's tables
// and River's jobs in Config.RiverSchema) and decides what needs an
// operator: credentials the provider rejected, jobs discarded in the last
// hour, a failed or failing backfill, no complete backfill yet, a backfill
// run held by the deletion guard, deletions by sync jobs paused. The status
// of other processes reaches the database within a second or so.
func (e *Engine) Status(ctx context.Context) (*Status, error) {
	st := &Status{Attention: []string{}}
	for _, p := range e.cfg.Providers {
		name := p.Client.Name()
		pr, err := e.store.Report(ctx, e.pool, store.ReportQuery{Provider: name, TargetSchema: p.Schema,
			Queues: []string{jobs.SyncQueue(name), jobs.BackfillQueue(name)}, SyncKind: jobs.KindSyncUser, SyncQueue: jobs.SyncQueue(name),
			Organizations: e.cfg.Organizations})
		if err != nil {
			return nil, err
		}
		st.Providers = append(st.Providers, *pr)
		st.Attention = append(st.Attention, attention(pr)...)
	}
	return st, nil
}

// attention lists what in pr needs an operator, one sentence each.
func attention(pr *ProviderStatus) []string {
	var out []string
	if pr.HeldRun != nil {
		out = append(out, pr.Provider+": "+HeldMessage(pr.Provider, pr.HeldRun))
	}
	if p := pr.DeletionsPaused; p != nil {
		out = append(out, fmt.Sprintf("%s: deletions by sync jobs are paused (%s): %d users in a row were not found at the provider "+
			"although their latest event was not a deletion, and were marked deleted before the pause; %d more syncs wait. "+
			"Check %s and the credentials, then resume with: "+
			"usersync backfill --resume-deletions --provider %s",
			pr.Provider, ago(&p.PausedAt), p.UnexpectedNotFound, p.WaitingSyncs, apiURLVar(pr.Provider), pr.Provider))
	}
	if pr.BadCredentialsAt != nil {
		out = append(out, fmt.Sprintf("%s: the provider rejected usersync's credentials (%s)", pr.Provider, ago(pr.BadCredentialsAt)))
	}
	if pr.DiscardedLastHour > 0 {
		out = append(out, fmt.Sprintf("%s: %d jobs discarded in the last hour", pr.Provider, pr.DiscardedLastHour))
	}
	if pr.LastFailedRun != nil {
		msg := ""
		if pr.LastFailedRun.LastError != nil {
			msg = ": " + oneLine(*pr.LastFailedRun.LastError, 120)
		}
		out = append(out, fmt.Sprintf("%s: backfill run %d failed%s", pr.Provider, pr.LastFailedRun.ID, msg))
	}
	if pr.LastCompleteRun == nil {
		out = append(out, fmt.Sprintf("%s: no backfill has completed yet (run 'usersync backfill --wait')", pr.Provider))
	}
	if pr.CurrentRun != nil && pr.CurrentRun.LastError != nil {
		out = append(out, fmt.Sprintf("%s: the running backfill is failing: %s", pr.Provider, oneLine(*pr.CurrentRun.LastError, 120)))
	}
	if o := pr.Organizations; o != nil {
		if o.HeldRun != nil {
			out = append(out, pr.Provider+": organizations "+HeldMessage(pr.Provider, o.HeldRun))
		}
		if o.LastFailedRun != nil {
			msg := ""
			if o.LastFailedRun.LastError != nil {
				msg = ": " + oneLine(*o.LastFailedRun.LastError, 120)
			}
			out = append(out, fmt.Sprintf("%s: organizations backfill run %d failed%s", pr.Provider, o.LastFailedRun.ID, msg))
		}
		if o.CurrentRun != nil && o.CurrentRun.LastError != nil {
			out = append(out, fmt.Sprintf("%s: the running organizations backfill is failing: %s", pr.Provider, oneLine(*o.CurrentRun.LastError, 120)))
		}
	}
	return out
}

// HeldMessage explains a held run r of provider prov and names the
// command that confirms it.
func HeldMessage(prov string, r *Run) string {
	var would, live int64
	if r.HeldDeletions != nil {
		would = *r.HeldDeletions
	}
	if r.HeldLive != nil {
		live = *r.HeldLive
	}
	what := "users"
	if r.Kind == RunOrganizations {
		what = "organizations"
	}
	return fmt.Sprintf("backfill run %d is held: it listed %d %s and would mark %d of %d live %s deleted, "+
		"more than USERSYNC_DELETE_GUARD allows; nothing was deleted. If %s is wrong, fix it and run 'usersync backfill'; "+
		"if the provider really lost these %s, confirm with: %s",
		r.ID, r.Listed, what, would, live, what, apiURLVar(prov), what, worker.ConfirmCommand(prov, r.ID))
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

// ago renders t as "how long ago, when" (UTC), or "never" when nil.
func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmt.Sprintf("%s ago, %s", time.Since(*t).Round(time.Second), t.UTC().Format(time.RFC3339))
}

// oneLine folds s's white space to single spaces and cuts it after n bytes
// with an ellipsis.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
