package jobs

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/store"
)

// Job kinds of organizations (USERSYNC_ORGANIZATIONS=on; docs/jobs.md).
const (
	KindSyncOrganization      = "sync_organization"
	KindBackfillOrganizations = "backfill_organizations"
)

// SyncOrganizationArgs asks a worker to fetch one organization and all its
// memberships and write them to organizations_sync and memberships_sync
// (or mark them deleted). Every organization and membership event enqueues
// one for its organization; while one is waiting or running, more events
// coalesce into it, and an event arriving while it runs makes it enqueue
// another when it completes (DirtyKey).
type SyncOrganizationArgs struct {
	Provider       string `json:"provider" river:"unique"`
	OrganizationID string `json:"organization_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (SyncOrganizationArgs) Kind() string { return KindSyncOrganization }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a SyncOrganizationArgs) InsertOpts() river.InsertOpts {
	return uniqueInQueue(SyncQueue(a.Provider))
}

// BackfillOrganizationsArgs asks a worker to list one page of a provider's
// organizations with all their memberships, write them, and enqueue the
// next page. RunID "" starts a new organizations run; Cursor "" is the
// first page. UsersRunID names the users backfill run that started the
// chain (each users run starts one when organizations are on); at most one
// job of a chain waits or runs at a time.
type BackfillOrganizationsArgs struct {
	Provider   string `json:"provider" river:"unique"`
	RunID      string `json:"run_id"`
	Cursor     string `json:"cursor"`
	UsersRunID int64  `json:"users_run_id,omitempty" river:"unique"`
	// After, when set, is the last organization of the page at Cursor
	// that the chain has written: the job writes the page's organizations
	// after it (a page whose memberships take too long to read is written
	// in parts).
	After string `json:"after,omitempty"`
	// Redo lists organizations that the run listed but could not write:
	// their stored data came from a fetch overlapping the run's, which
	// cannot be ordered against it. The job fetches each again (its fetch
	// begins after that data was stored) and writes it with its page, so
	// that a complete run has written every organization it listed.
	Redo []string `json:"redo,omitempty"`
	// Finish says the run's list has ended: the job lists no page, only
	// fetches Redo again, then finishes the run (deletion inference). The
	// organizations that inference cannot order against the run (never
	// listed, but stored meanwhile by an overlapping fetch) are read again
	// by one more such job.
	Finish bool `json:"finish,omitempty"`
	// Inferred counts the organizations that earlier finishing jobs of
	// the run inferred deleted (a run that finds organizations to read
	// again after inferring finishes in more than one job).
	Inferred int `json:"inferred,omitempty"`
}

// Kind implements river.JobArgs.
func (BackfillOrganizationsArgs) Kind() string { return KindBackfillOrganizations }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a BackfillOrganizationsArgs) InsertOpts() river.InsertOpts {
	return uniqueInQueue(BackfillQueue(a.Provider))
}

// OrgRef names one organization at one provider.
type OrgRef struct {
	Provider       string
	OrganizationID string
	// Deleted says the event was the organization's deletion: the job's
	// metadata records it (LastEventKey), so that its sync expects the
	// provider to answer not-found.
	Deleted bool
}

// EnqueueOrganizationSyncs enqueues a sync_organization job for each
// organization in tx, de-duplicated and in a stable order. An
// organization whose job is already running gets that job marked dirty
// (DirtyKey) instead. It returns how many jobs it marked.
func EnqueueOrganizationSyncs(ctx context.Context, tx pgx.Tx, ins Inserter, riverSchema string, refs []OrgRef) (marked int, err error) {
	// A deletion event among an organization's events makes its job
	// expect a deletion, whatever follows: an organization's id is never
	// reused, and membership events often trail its deletion.
	last := map[OrgRef]bool{}
	var uniq []OrgRef
	for _, r := range refs {
		k := OrgRef{Provider: r.Provider, OrganizationID: r.OrganizationID}
		if _, ok := last[k]; !ok {
			uniq = append(uniq, k)
		}
		last[k] = last[k] || r.Deleted
	}
	slices.SortFunc(uniq, func(a, b OrgRef) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.OrganizationID, b.OrganizationID))
	})
	if len(uniq) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, len(uniq))
	asUsers := make([]UserRef, len(uniq))
	for i, r := range uniq {
		params[i] = river.InsertManyParams{Args: SyncOrganizationArgs{Provider: r.Provider, OrganizationID: r.OrganizationID}}
		if last[r] {
			params[i].InsertOpts = &river.InsertOpts{Metadata: deletedMetadata}
		}
		asUsers[i] = UserRef{Provider: r.Provider, UserID: r.OrganizationID, Deleted: last[r]}
	}
	res, err := ins.InsertManyTx(ctx, tx, params)
	if err != nil {
		return 0, fmt.Errorf("enqueue %d sync_organization jobs: %w", len(params), err)
	}
	// Jobs that events coalesced into are marked only to expect a
	// deletion, never back.
	var delRefs []UserRef
	var delRes []*rivertype.JobInsertResult
	for i, r := range res {
		if i < len(asUsers) && asUsers[i].Deleted {
			delRefs, delRes = append(delRefs, asUsers[i]), append(delRes, r)
		}
	}
	if err := markLastEvent(ctx, tx, riverSchema, delRefs, delRes); err != nil {
		return 0, err
	}
	var running []int64
	for _, r := range res {
		if r.UniqueSkippedAsDuplicate && r.Job != nil && r.Job.State == rivertype.JobStateRunning {
			running = append(running, r.Job.ID)
		}
	}
	if len(running) == 0 {
		return 0, nil
	}
	if err := store.RiverJobs(riverSchema).MarkDirty(ctx, tx, running); err != nil {
		return 0, err
	}
	return len(running), nil
}

// resyncOrganizationArgs is a sync_organization job without uniqueness,
// for writers that hold organization state rows (see resyncUserArgs).
type resyncOrganizationArgs SyncOrganizationArgs

func (resyncOrganizationArgs) Kind() string { return KindSyncOrganization }

func (a resyncOrganizationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: SyncQueue(a.Provider), MaxAttempts: MaxAttempts}
}

// EnqueueOrganizationResyncs enqueues, in tx, one more sync of each
// organization, without coalescing into (or waiting for) jobs already
// there.
func EnqueueOrganizationResyncs(ctx context.Context, tx pgx.Tx, ins Inserter, provider string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: resyncOrganizationArgs{Provider: provider, OrganizationID: id}}
	}
	if _, err := ins.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("enqueue %d organization resyncs: %w", len(ids), err)
	}
	return nil
}
