// Package jobs defines usersync's River job kinds (docs/jobs.md), their queues and
// how they are enqueued. Operators may insert the same jobs with SQL.
package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/store"
)

// Job kinds, as stored in river_job.kind.
const (
	KindSyncUser     = "sync_user"
	KindBackfillPage = "backfill_page"
)

// uniqueStates are the states in which a job blocks another with the same
// unique key: every state but the finalized ones, so that a completed job
// never stops a new event from being synced.
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// uniqueInQueue is the insert options of a job kind in queue of which at
// most one job per unique args waits or runs: later inserts coalesce into
// it.
func uniqueInQueue(queue string) river.InsertOpts {
	return river.InsertOpts{
		Queue:       queue,
		MaxAttempts: MaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	}
}

// SyncQueue is the queue of a provider's sync_user jobs. Each provider has
// its own queues so that one provider's outage never stalls another.
func SyncQueue(provider string) string { return "sync_" + provider }

// BackfillQueue is the queue of a provider's backfill_page jobs.
func BackfillQueue(provider string) string { return "backfill_" + provider }

// SyncUserArgs asks a worker to fetch one user's current profile and write it
// to users_sync (or mark it deleted). While one is waiting or running for a
// user, more events for that user coalesce into it.
type SyncUserArgs struct {
	Provider string `json:"provider" river:"unique"`
	UserID   string `json:"user_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (SyncUserArgs) Kind() string { return KindSyncUser }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a SyncUserArgs) InsertOpts() river.InsertOpts {
	return uniqueInQueue(SyncQueue(a.Provider))
}

// BackfillPageArgs asks a worker to fetch one page of a provider's user list,
// write it, and enqueue the next page. RunID "" starts a new run; Cursor ""
// is the first page. At most one backfill_page job per provider is waiting
// or running at any time.
type BackfillPageArgs struct {
	Provider string `json:"provider" river:"unique"`
	RunID    string `json:"run_id"`
	Cursor   string `json:"cursor"`
	// Force starts a run even if a recent complete one exists.
	Force bool `json:"force,omitempty"`
}

// Kind implements river.JobArgs.
func (BackfillPageArgs) Kind() string { return KindBackfillPage }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a BackfillPageArgs) InsertOpts() river.InsertOpts {
	return uniqueInQueue(BackfillQueue(a.Provider))
}

// MaxAttempts is how many times a failing job is tried before it is
// discarded. With the retry policy of package worker (exponential, capped at
// five minutes) that is about two hours of provider outage; a later backfill
// repairs anything discarded.
const MaxAttempts = 30

// Inserter is the part of a River client that enqueues jobs in a transaction.
type Inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// UserRef names one user at one provider.
type UserRef struct {
	Provider string
	UserID   string
	// Deleted says the event was the user's deletion (user.deleted): the
	// job's metadata records it (LastEventKey), so that its sync expects the
	// provider to answer not-found.
	Deleted bool
	// OrganizationID, when set, makes the ref an organization's: it asks
	// for a sync_organization job (EnqueueRefs), UserID is not used, and
	// Deleted says the event was the organization's deletion.
	OrganizationID string
}

// EnqueueRefs enqueues, in tx, the sync_user jobs of the refs that name
// users (EnqueueSyncs), then the sync_organization jobs of those that name
// organizations (EnqueueOrganizationSyncs). It returns how many running
// jobs it marked dirty.
func EnqueueRefs(ctx context.Context, tx pgx.Tx, ins Inserter, riverSchema string, refs []UserRef) (int, error) {
	var users []UserRef
	var orgs []OrgRef
	for _, r := range refs {
		if r.OrganizationID != "" {
			orgs = append(orgs, OrgRef{Provider: r.Provider, OrganizationID: r.OrganizationID, Deleted: r.Deleted})
		} else {
			users = append(users, r)
		}
	}
	var marked int
	if len(users) > 0 {
		n, err := EnqueueSyncs(ctx, tx, ins, riverSchema, users)
		if err != nil {
			return 0, err
		}
		marked += n
	}
	if len(orgs) > 0 {
		n, err := EnqueueOrganizationSyncs(ctx, tx, ins, riverSchema, orgs)
		if err != nil {
			return 0, err
		}
		marked += n
	}
	return marked, nil
}

// DirtyKey is the metadata key of a running sync_user job that an event for
// its user arrived while it ran (the value is that transaction's time): the
// job's fetch may predate the event, so it enqueues another sync when it
// completes. Marking the job row itself, which the webhook's insert has
// already locked, takes no other lock.
const DirtyKey = store.DirtyKey

// EnqueueSyncs enqueues a sync_user job for each user in tx, de-duplicated
// and in a stable order (so concurrent batches lock jobs in the same order).
// A user whose job is already running gets that job marked dirty (DirtyKey)
// instead. It returns how many jobs it marked. Each user's job records
// whether the last of its events here was a deletion (LastEventKey), also
// when the events coalesce into a job already there. riverSchema is the
// schema of River's tables.
func EnqueueSyncs(ctx context.Context, tx pgx.Tx, ins Inserter, riverSchema string, refs []UserRef) (marked int, err error) {
	refs = lastEventPerUser(refs)
	slices.SortFunc(refs, func(a, b UserRef) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		return strings.Compare(a.UserID, b.UserID)
	})
	params := make([]river.InsertManyParams, len(refs))
	for i, r := range refs {
		params[i] = river.InsertManyParams{Args: SyncUserArgs{Provider: r.Provider, UserID: r.UserID}}
		if r.Deleted {
			params[i].InsertOpts = &river.InsertOpts{Metadata: deletedMetadata}
		}
	}
	res, err := ins.InsertManyTx(ctx, tx, params)
	if err != nil {
		return 0, fmt.Errorf("enqueue %d sync_user jobs: %w", len(params), err)
	}
	if err := markLastEvent(ctx, tx, riverSchema, refs, res); err != nil {
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

// DirtySince reports whether a job's metadata says an event arrived, while
// it ran, after the time since.
func DirtySince(metadata []byte, since time.Time) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return false
	}
	var at time.Time
	raw, ok := m[DirtyKey]
	return ok && json.Unmarshal(raw, &at) == nil && at.After(since)
}

// resyncUserArgs is a sync_user job without uniqueness. A backfill page
// enqueues these for users whose stored data it cannot order against its own
// (see worker.Result.Resync): a unique insert would have to wait for a
// running sync of the same user while the page holds that user's state row,
// which that sync waits for in turn.
type resyncUserArgs SyncUserArgs

func (resyncUserArgs) Kind() string { return KindSyncUser }

func (a resyncUserArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: SyncQueue(a.Provider), MaxAttempts: MaxAttempts}
}

// EnqueueResyncs enqueues, in tx, one more sync of each user, without
// coalescing into (or waiting for) jobs already there.
func EnqueueResyncs(ctx context.Context, tx pgx.Tx, ins Inserter, provider string, userIDs []string) error {
	if len(userIDs) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(userIDs))
	for i, id := range userIDs {
		params[i] = river.InsertManyParams{Args: resyncUserArgs{Provider: provider, UserID: id}}
	}
	if _, err := ins.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("enqueue %d resyncs: %w", len(userIDs), err)
	}
	return nil
}

// KindPruneUserState is the kind of the periodic job that removes per-user
// state left by deletions of users without a users_sync row.
const KindPruneUserState = "prune_user_state"

// PruneUserStateArgs asks a worker to remove, for one provider, the state
// rows of deletions recorded long enough ago that no fetch begun before them
// can still be running (ids the provider never had, hard-deleted users), so
// that per-user state is kept only for users the provider has or had a row
// for. Enqueued periodically; at most one per provider waits or runs.
type PruneUserStateArgs struct {
	Provider string `json:"provider" river:"unique"`
}

// Kind implements river.JobArgs.
func (PruneUserStateArgs) Kind() string { return KindPruneUserState }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a PruneUserStateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       SyncQueue(a.Provider),
		MaxAttempts: 3,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	}
}

// LastEventKey is the metadata key of a sync_user job that records the kind
// of the latest event that asked for it: "deleted" (user.deleted) or
// "changed". It is absent on jobs created by a change event, by a backfill
// or by SQL, which count as "changed". A sync that finds its user missing
// at the provider expects it only after a deletion event; an unexpected
// not-found counts toward the sync path's deletion breaker.
const LastEventKey = store.LastEventKey

// Values of LastEventKey.
const (
	LastEventDeleted = store.LastEventDeleted
	LastEventChanged = store.LastEventChanged
)

var deletedMetadata = []byte(`{"` + LastEventKey + `":"` + LastEventDeleted + `"}`)

// LastEventWasDeletion reports whether a sync_user job's metadata says the
// latest event for its user was a deletion.
func LastEventWasDeletion(metadata []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return false
	}
	var v string
	return json.Unmarshal(m[LastEventKey], &v) == nil && v == LastEventDeleted
}

// lastEventPerUser de-duplicates refs by user, keeping, for each, whether
// the last of its events (in the order given: arrival) was a deletion.
func lastEventPerUser(refs []UserRef) []UserRef {
	type key struct{ p, u string }
	idx := make(map[key]int, len(refs))
	out := make([]UserRef, 0, len(refs))
	for _, r := range refs {
		k := key{r.Provider, r.UserID}
		if i, ok := idx[k]; ok {
			out[i].Deleted = r.Deleted
			continue
		}
		idx[k] = len(out)
		out = append(out, r)
	}
	return out
}

// markLastEvent records, on jobs that the events coalesced into, the kind
// of the latest event and when it arrived (EventAtKey): a sync whose user's
// stored data was fetched after that time needs no fetch of its own
// (LatestEvent), so every coalesced event must move it. The rows were
// locked by the insert, so this takes no other lock.
func markLastEvent(ctx context.Context, tx pgx.Tx, riverSchema string, refs []UserRef, res []*rivertype.JobInsertResult) error {
	var ids []int64
	var kinds []string
	for i, r := range res {
		if i >= len(refs) || !r.UniqueSkippedAsDuplicate || r.Job == nil {
			continue
		}
		kind := LastEventChanged
		if refs[i].Deleted {
			kind = LastEventDeleted
		}
		ids = append(ids, r.Job.ID)
		kinds = append(kinds, kind)
	}
	if len(ids) == 0 {
		return nil
	}
	return store.RiverJobs(riverSchema).MarkLastEvent(ctx, tx, ids, kinds)
}

// EventAtKey is the metadata key of a sync_user job that records when the
// latest event that coalesced into it arrived (see LatestEvent).
const EventAtKey = store.EventAtKey

// unknownEvent is LatestEvent's answer for a job with an unreadable event
// mark: no stored data is newer.
var unknownEvent = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// LatestEvent is when the latest event that asked for a sync_user job
// arrived, on the database clock: the job's creation (createdAt), or a later
// event that coalesced into it while it waited (EventAtKey) or while it ran
// (DirtyKey). Data fetched strictly after it is at least as new as the
// provider's state at every one of the job's events.
func LatestEvent(createdAt time.Time, metadata []byte) time.Time {
	at := createdAt
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return at
	}
	for _, k := range []string{EventAtKey, DirtyKey} {
		raw, ok := m[k]
		if !ok {
			continue
		}
		var t time.Time
		if json.Unmarshal(raw, &t) != nil {
			// A mark that cannot be read (written by hand): an event
			// whose time is unknown, later than any fetch.
			return unknownEvent
		}
		if t.After(at) {
			at = t
		}
	}
	return at
}

// EnqueueResyncsAfterDeletion is EnqueueResyncs for a sync whose latest
// event was a deletion: the new jobs carry that in their metadata.
func EnqueueResyncsAfterDeletion(ctx context.Context, tx pgx.Tx, ins Inserter, provider string, userIDs []string) error {
	if len(userIDs) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(userIDs))
	for i, id := range userIDs {
		params[i] = river.InsertManyParams{Args: resyncUserArgs{Provider: provider, UserID: id}, InsertOpts: &river.InsertOpts{Metadata: deletedMetadata}}
	}
	if _, err := ins.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("enqueue %d resyncs: %w", len(userIDs), err)
	}
	return nil
}

// ForceBackfill enqueues a backfill of prov that runs even if a recent run
// completed, or joins the backfill job already waiting or running
// (joined = true). A waiting job that has not started a run is scheduled
// and would skip its run after a recent complete one: the request is
// recorded (store.Runs.RequestBackfill) so that it runs regardless. It
// returns the job to follow (store.Runs.ForJob).
func ForceBackfill(ctx context.Context, client interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}, db store.DB, runs store.Runs, prov string) (jobID int64, joined bool, err error) {
	res, err := client.Insert(ctx, BackfillPageArgs{Provider: prov, Force: true}, nil)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue backfill of %s: %w", prov, err)
	}
	if res.UniqueSkippedAsDuplicate && res.Job.State != rivertype.JobStateRunning {
		var a BackfillPageArgs
		if err := json.Unmarshal(res.Job.EncodedArgs, &a); err == nil && a.RunID == "" && !a.Force {
			if err := runs.RequestBackfill(ctx, db, prov); err != nil {
				return 0, false, err
			}
		}
	}
	return res.Job.ID, res.UniqueSkippedAsDuplicate, nil
}
