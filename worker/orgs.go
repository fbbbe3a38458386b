package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// OrganizationObserver is told what sync_organization jobs did, for
// metrics and status. An Observer may implement it; the workers call it
// when it does.
type OrganizationObserver interface {
	// OrganizationSynced is called after a sync_organization job
	// committed; outcome is one of "changed", "unchanged", "deleted",
	// "stale".
	OrganizationSynced(provider, outcome string, lag time.Duration)
	// OrganizationBackfillPage is called after a backfill_organizations
	// page committed.
	OrganizationBackfillPage(provider string, listed, written int, last bool)
}

// maxMembershipPages bounds the membership pages read for one
// organization: a provider whose cursor never ends must not keep a job
// running forever.
const maxMembershipPages = 10000

// orgReader returns b's organization reader, or an error saying why the
// binding syncs no organizations.
func orgReader(b *Binding) (provider.Organizations, error) {
	if b.Orgs == nil {
		return nil, fmt.Errorf("organizations are not synced for provider %s in this process (USERSYNC_ORGANIZATIONS is off)", b.Provider.Name())
	}
	r, ok := b.Provider.(provider.Organizations)
	if !ok {
		return nil, fmt.Errorf("provider %s does not read organizations", b.Provider.Name())
	}
	return r, nil
}

// fetchOrgSet reads organization id and all its memberships from the
// provider (outside any transaction). The provider's not-found, for the
// organization or its membership list, gives a set with Org nil.
func fetchOrgSet(ctx context.Context, r provider.Organizations, id string) (store.OrgSet, error) {
	set := store.OrgSet{ID: id}
	org, err := r.FetchOrganization(ctx, id)
	if errors.Is(err, provider.ErrOrganizationNotFound) {
		return set, nil
	}
	if err != nil {
		return set, fmt.Errorf("fetch organization %s: %w", id, err)
	}
	if org.ID != id {
		return set, fmt.Errorf("the provider answered the lookup of organization %q with organization %q: not writing another organization's rows",
			provider.Snippet([]byte(id), 64), provider.Snippet([]byte(org.ID), 64))
	}
	ms, err := listMemberships(ctx, r, id)
	if errors.Is(err, provider.ErrOrganizationNotFound) {
		return set, nil
	}
	if err != nil {
		return set, err
	}
	set.Org, set.Memberships = &org, ms
	return set, nil
}

// listMemberships reads every page of organization id's memberships.
func listMemberships(ctx context.Context, r provider.Organizations, id string) ([]provider.Membership, error) {
	var out []provider.Membership
	cursor := ""
	for range maxMembershipPages {
		page, err := r.ListMemberships(ctx, id, cursor)
		if err != nil {
			return nil, fmt.Errorf("list memberships of organization %s: %w", id, err)
		}
		for i, m := range page.Memberships {
			switch m.OrganizationID {
			case id:
			case "":
				page.Memberships[i].OrganizationID = id
			default:
				return nil, fmt.Errorf("list memberships of organization %s: the provider listed a membership of organization %q",
					id, provider.Snippet([]byte(m.OrganizationID), 64))
			}
		}
		out = append(out, page.Memberships...)
		if page.Next == "" {
			return out, nil
		}
		if page.Next == cursor {
			return nil, fmt.Errorf("list memberships of organization %s: the provider's cursor does not advance", id)
		}
		cursor = page.Next
	}
	return nil, fmt.Errorf("list memberships of organization %s: more than %d pages", id, maxMembershipPages)
}

// SyncOrganizationWorker works sync_organization jobs.
type SyncOrganizationWorker struct {
	river.WorkerDefaults[jobs.SyncOrganizationArgs]
	deps Deps
}

// NextRetry implements river.Worker.
func (w *SyncOrganizationWorker) NextRetry(job *river.Job[jobs.SyncOrganizationArgs]) time.Time {
	return retryAt(job.Attempt)
}

// Work fetches the organization and all its memberships outside any
// transaction, then in one transaction completes the job, writes
// organizations_sync and the organization's membership set in
// memberships_sync (unless newer data is already there), and, if an event
// arrived while it ran, enqueues another sync. An organization the
// provider says does not exist is marked deleted with all its memberships.
func (w *SyncOrganizationWorker) Work(ctx context.Context, job *river.Job[jobs.SyncOrganizationArgs]) error {
	a := job.Args
	b, ok := w.deps.Bindings[a.Provider]
	if !ok {
		return river.JobCancel(fmt.Errorf("sync_organization: provider %q is not enabled in this process", a.Provider))
	}
	reader, err := orgReader(b)
	if err != nil {
		return river.JobCancel(fmt.Errorf("sync_organization: %w", err))
	}
	if err := provider.ValidateUserID(a.OrganizationID); err != nil {
		return river.JobCancel(fmt.Errorf("sync_organization: organization id: %w", err))
	}
	token := *job.AttemptedAt
	set, err := fetchOrgSet(ctx, reader, a.OrganizationID)
	if err != nil {
		return w.failed(job, err)
	}

	tx, err := w.deps.DB.Begin(ctx)
	if err != nil {
		w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
		return fmt.Errorf("sync organization %s: begin: %w", a.OrganizationID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := store.AsyncCommit(ctx, tx); err != nil {
		return fmt.Errorf("sync organization %s: %w", a.OrganizationID, err)
	}
	done, err := completeTx(ctx, tx, job)
	if err != nil {
		return err
	}
	// An event arrived while this job ran: enqueue another sync, before
	// the write locks the organization's state row (see SyncUserWorker).
	deletedEvent := jobs.LastEventWasDeletion(done.Metadata)
	if jobs.DirtySince(done.Metadata, token) {
		client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
		if err == nil {
			_, err = jobs.EnqueueOrganizationSyncs(ctx, tx, client, b.Orgs.Schemas().River,
				[]jobs.OrgRef{{Provider: a.Provider, OrganizationID: a.OrganizationID, Deleted: deletedEvent}})
		}
		if err != nil {
			return fmt.Errorf("sync organization %s: re-enqueue: %w", a.OrganizationID, err)
		}
	}
	// The sync path's deletion breaker, shared with sync_user: a not-found
	// that was not announced by the organization's deletion event, and
	// that would delete a live row, counts; past the limit, deletions wait.
	switch {
	case set.Org == nil && !deletedEvent:
		ok, err := b.Orgs.HasLiveRow(ctx, tx, a.OrganizationID)
		if err == nil && ok {
			ok, err = b.Store.CountUnexpectedNotFound(ctx, tx, DeleteGuardMinRows)
		} else if err == nil {
			ok = true
		}
		if err != nil {
			w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
			return fmt.Errorf("sync organization %s: %w", a.OrganizationID, err)
		}
		if !ok {
			_ = tx.Rollback(ctx)
			return w.holdDeletion(ctx, b, job)
		}
	case set.Org != nil:
		if err := b.Store.ResetUnexpectedNotFound(ctx, tx); err != nil {
			w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
			return fmt.Errorf("sync organization %s: %w", a.OrganizationID, err)
		}
	}
	res, err := b.Orgs.Write(ctx, tx, []store.OrgSet{set}, token, nil)
	if err != nil {
		w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
		return fmt.Errorf("sync organization %s: %w", a.OrganizationID, err)
	}
	if err := enqueueOrgResyncs(ctx, tx, a.Provider, res.Resync); err != nil {
		return fmt.Errorf("sync organization %s: %w", a.OrganizationID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
		return fmt.Errorf("sync organization %s: commit: %w", a.OrganizationID, err)
	}
	if o, ok := w.deps.Observer.(OrganizationObserver); ok {
		outcome := "unchanged"
		switch {
		case res.Stale > 0:
			outcome = "stale"
		case set.Org == nil && res.Deleted > 0:
			outcome = "deleted"
		case res.Changed() > 0:
			outcome = "changed"
		}
		o.OrganizationSynced(a.Provider, outcome, time.Since(job.CreatedAt))
	}
	return nil
}

// holdDeletion is SyncUserWorker.holdDeletion for an organization.
func (w *SyncOrganizationWorker) holdDeletion(ctx context.Context, b *Binding, job *river.Job[jobs.SyncOrganizationArgs]) error {
	a := job.Args
	paused, err := b.Store.PauseDeletions(ctx, w.deps.DB, "organization "+a.OrganizationID, job.ID)
	if err != nil {
		return err
	}
	if paused {
		w.deps.Logger.Error("deletions by sync paused: too many users or organizations in a row were not found at the provider although their latest event was not a deletion; "+
			"check the provider's API URL and credentials, then resume deletions",
			"provider", a.Provider, "organization_id", a.OrganizationID, "limit", DeleteGuardMinRows,
			"resume", "usersync backfill --resume-deletions --provider "+a.Provider)
	} else {
		w.deps.Logger.Warn("organization not found at the provider, but deletions by sync are paused: the sync waits",
			"provider", a.Provider, "organization_id", a.OrganizationID)
	}
	if g, ok := w.deps.Observer.(GuardObserver); ok {
		g.DeletionsPaused(a.Provider)
	}
	return river.JobSnooze(pausedSnooze(snoozes(job.Metadata)))
}

func (w *SyncOrganizationWorker) failed(job *river.Job[jobs.SyncOrganizationArgs], err error) error {
	a := job.Args
	var rl *provider.RateLimitedError
	switch {
	case errors.As(err, &rl):
		w.deps.Observer.SyncFailed(a.Provider, "rate_limited", err)
		return river.JobSnooze(snoozeFor(rl))
	case errors.Is(err, provider.ErrBadCredentials):
		w.deps.Observer.SyncFailed(a.Provider, "bad_credentials", err)
		w.deps.Logger.Error("provider rejected usersync's credentials: check them", "provider", a.Provider, "err", err)
	default:
		w.deps.Observer.SyncFailed(a.Provider, "provider_error", err)
	}
	return fmt.Errorf("sync organization %s: %w", a.OrganizationID, err)
}

// enqueueOrgResyncs enqueues one more sync of each organization whose
// stored data this transaction could not order against its own, without
// waiting for jobs already there (it holds their state rows).
func enqueueOrgResyncs(ctx context.Context, tx pgx.Tx, prov string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	return jobs.EnqueueOrganizationResyncs(ctx, tx, client, prov, ids)
}

// deleteUserMemberships is the organizations' side of a user's deletion
// (in the deleting transaction): the user's memberships are marked deleted
// and each organization they belonged to is synced again.
func deleteUserMemberships(ctx context.Context, tx pgx.Tx, b *Binding, userIDs []string, token time.Time) error {
	if b.Orgs == nil || len(userIDs) == 0 {
		return nil
	}
	orgIDs, _, err := b.Orgs.DeleteUserMemberships(ctx, tx, userIDs, token)
	if err != nil {
		return err
	}
	return enqueueOrgResyncs(ctx, tx, b.Provider.Name(), orgIDs)
}

// refreshUserMemberships is the organizations' side of a user's changed
// profile (in the syncing transaction): where membership objects embed
// their user (Clerk's public_user_data, WorkOS's user, Stack Auth's member
// profile), each organization the user belongs to is synced again. The
// unique insert coalesces into syncs already waiting; it may wait for
// another transaction's insert, which never waits for the user's state
// row that this transaction holds.
func refreshUserMemberships(ctx context.Context, tx pgx.Tx, b *Binding, userID string) error {
	if b.Orgs == nil {
		return nil
	}
	orgIDs, err := b.Orgs.OrganizationsOf(ctx, tx, userID)
	if err != nil || len(orgIDs) == 0 {
		return err
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	refs := make([]jobs.OrgRef, len(orgIDs))
	for i, id := range orgIDs {
		refs[i] = jobs.OrgRef{Provider: b.Provider.Name(), OrganizationID: id}
	}
	_, err = jobs.EnqueueOrganizationSyncs(ctx, tx, client, b.Orgs.Schemas().River, refs)
	return err
}
