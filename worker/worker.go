// Package worker holds usersync's River workers and the transactional writes
// they make: a job's row changes and its completion commit together.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// DB is the database handle the workers use: a *pgxpool.Pool in production.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Binding is one enabled provider and the table it syncs into.
type Binding struct {
	Provider provider.Provider
	Store    *Store
	// ExcludeAnonymous leaves anonymous users (provider.User.Anonymous) out
	// of users_sync on the sync path as the provider's list leaves them out
	// of backfills (USERSYNC_ANONYMOUS=exclude): see syncExcludedAnonymous.
	ExcludeAnonymous bool
	// Orgs, when set (USERSYNC_ORGANIZATIONS=on), writes the provider's
	// organizations and memberships; Provider then implements
	// provider.Organizations.
	Orgs *store.Orgs
}

// Observer receives what workers did, for metrics and status. Every method
// must be cheap and safe for concurrent use.
type Observer interface {
	// Synced is called after a sync_user job committed; outcome is one of
	// "changed", "unchanged", "deleted", "stale".
	Synced(provider, outcome string, lag time.Duration)
	// SyncFailed is called when a sync_user job failed; kind is one of
	// "rate_limited", "bad_credentials", "provider_error", "database_error".
	SyncFailed(provider, kind string, err error)
	// BackfillPage is called after a backfill page committed.
	BackfillPage(provider string, listed, written int, last bool)
}

type nopObserver struct{}

func (nopObserver) Synced(string, string, time.Duration) {}
func (nopObserver) SyncFailed(string, string, error)     {}
func (nopObserver) BackfillPage(string, int, int, bool)  {}

// Deps is what the workers need.
type Deps struct {
	DB       DB
	Bindings map[string]*Binding
	Logger   *slog.Logger
	Observer Observer
	// BackfillInterval is the period of scheduled backfills; a run that is
	// not forced is skipped when a complete one started less than half of it
	// ago. 0 means no scheduled runs.
	BackfillInterval time.Duration
	// TombstoneHorizon is how long prune_user_state keeps the recorded
	// deletion of a user without a users_sync row; 0 means
	// DefaultTombstoneHorizon.
	TombstoneHorizon time.Duration
	// DeleteGuard is the largest share (0..1) of a provider's live users one
	// backfill run may infer deleted, when that is also more than
	// DeleteGuardMinRows, before the run is held (USERSYNC_DELETE_GUARD;
	// the zero value holds every run that would delete more than
	// DeleteGuardMinRows users).
	DeleteGuard float64
	// OrganizationPageBudget is how long one backfill_organizations job
	// reads memberships before it leaves the rest of its page to the next
	// job; 0 means DefaultOrganizationPageBudget.
	OrganizationPageBudget time.Duration
}

// Register adds usersync's workers to a River worker set.
func Register(workers *river.Workers, d Deps) {
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	river.AddWorker(workers, &SyncUserWorker{deps: d})
	river.AddWorker(workers, &BackfillPageWorker{deps: d})
	river.AddWorker(workers, &PruneUserStateWorker{deps: d})
	river.AddWorker(workers, &SyncOrganizationWorker{deps: d})
	river.AddWorker(workers, &BackfillOrganizationsWorker{deps: d})
}

// MaxRetryDelay caps the exponential retry backoff of failing jobs.
const MaxRetryDelay = 5 * time.Minute

// retryAt is the retry policy of both job kinds: 1 s, 2 s, 4 s, ... capped at
// MaxRetryDelay, with ±10% jitter, so that a provider outage is followed by
// convergence within minutes rather than River's default days.
func retryAt(attempt int) time.Time {
	d := time.Second << min(max(attempt-1, 0), 20)
	d = min(d, MaxRetryDelay)
	d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return time.Now().Add(d)
}

// snoozeFor is how long to wait after a 429.
func snoozeFor(e *provider.RateLimitedError) time.Duration {
	d := e.RetryAfter
	if d <= 0 {
		d = 5 * time.Second
	}
	return min(d, time.Hour)
}

// SyncUserWorker works sync_user jobs.
type SyncUserWorker struct {
	river.WorkerDefaults[jobs.SyncUserArgs]
	deps Deps
}

// NextRetry implements river.Worker.
func (w *SyncUserWorker) NextRetry(job *river.Job[jobs.SyncUserArgs]) time.Time {
	return retryAt(job.Attempt)
}

// Work fetches the user's profile outside any transaction, then in one
// transaction completes the job, writes users_sync (unless newer data is
// already there) and, if an event arrived while it ran, enqueues another sync.
func (w *SyncUserWorker) Work(ctx context.Context, job *river.Job[jobs.SyncUserArgs]) error {
	a := job.Args
	b, ok := w.deps.Bindings[a.Provider]
	if !ok {
		return river.JobCancel(fmt.Errorf("sync_user: provider %q is not enabled in this process", a.Provider))
	}
	if err := provider.ValidateUserID(a.UserID); err != nil {
		return river.JobCancel(fmt.Errorf("sync_user: %w", err))
	}
	// The fetch token: when this attempt began, on the database's clock. Data
	// fetched now is at least as new as any event received before it.
	token := *job.AttemptedAt
	user, err := b.Provider.FetchUser(ctx, a.UserID)
	gone := errors.Is(err, provider.ErrUserNotFound)
	excluded := err == nil && user.Anonymous && b.ExcludeAnonymous
	if err != nil && !gone {
		return w.failed(job, err)
	}
	if !gone && user.ID != a.UserID {
		// The row is stored under the id the event named: an answer for
		// the same id in another case is stored under the event's spelling,
		// an answer about another user is refused.
		if user, err = sameUser(user, a.UserID); err != nil {
			return w.failed(job, err)
		}
	}

	tx, err := w.deps.DB.Begin(ctx)
	if err != nil {
		w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
		return fmt.Errorf("sync user %s: begin: %w", a.UserID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// A lost commit is harmless: the job stays running and is rescued and
	// re-run, so this transaction need not wait for its WAL flush.
	if err := store.AsyncCommit(ctx, tx); err != nil {
		return fmt.Errorf("sync user %s: %w", a.UserID, err)
	}
	done, err := completeTx(ctx, tx, job)
	if err != nil {
		return err
	}
	// An event arrived while this job ran, perhaps after its fetch: enqueue
	// another sync. This comes before the users_sync write, which locks the
	// user's state row: a unique insert may wait for another job's row, and
	// must not do so while holding a lock that job's worker needs.
	// The follow-up carries the kind of the latest event (a deletion may be
	// what made this job dirty).
	deletedEvent := jobs.LastEventWasDeletion(done.Metadata)
	if jobs.DirtySince(done.Metadata, token) {
		if err := enqueueSync(ctx, tx, b.Store.Schemas().River, jobs.UserRef{Provider: a.Provider, UserID: a.UserID, Deleted: deletedEvent}); err != nil {
			return fmt.Errorf("sync user %s: re-enqueue: %w", a.UserID, err)
		}
	}
	// The deletion breaker: an unexpected not-found counts, and may not
	// delete once too many came in a row; a found user resets the count.
	switch {
	case gone && !deletedEvent:
		ok, err := b.Store.HasLiveRow(ctx, tx, a.UserID)
		if err == nil && ok {
			ok, err = b.Store.CountUnexpectedNotFound(ctx, tx, DeleteGuardMinRows)
		} else if err == nil {
			ok = true // nothing to delete: nothing to count
		}
		if err != nil {
			w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
			return fmt.Errorf("sync user %s: %w", a.UserID, err)
		}
		if !ok {
			_ = tx.Rollback(ctx)
			return w.holdDeletion(ctx, b, job)
		}
	case !gone:
		if err := b.Store.ResetUnexpectedNotFound(ctx, tx); err != nil {
			w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
			return fmt.Errorf("sync user %s: %w", a.UserID, err)
		}
	}
	var res Result
	if excluded {
		res, err = syncExcludedAnonymous(ctx, tx, b.Store, user.ID, token)
	} else if gone {
		res, err = b.Store.MarkDeleted(ctx, tx, a.UserID, token)
	} else {
		res, err = b.Store.Upsert(ctx, tx, []provider.User{user}, token, nil)
	}
	switch {
	case err != nil:
	case (gone || excluded) && res.Stale == 0:
		// The user is gone (or left out): so are their memberships.
		err = deleteUserMemberships(ctx, tx, b, []string{a.UserID}, token)
	case !gone && !excluded && res.Changed() > 0:
		// Membership objects that embed the user changed with it.
		err = refreshUserMemberships(ctx, tx, b, a.UserID)
	}
	if err != nil {
		w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
		return fmt.Errorf("sync user %s: %w", a.UserID, err)
	}
	if len(res.Resync) > 0 {
		if deletedEvent {
			err = enqueueResyncsAfterDeletion(ctx, tx, a.Provider, res.Resync)
		} else {
			err = enqueueResyncs(ctx, tx, a.Provider, res.Resync)
		}
		if err != nil {
			return fmt.Errorf("sync user %s: %w", a.UserID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		w.deps.Observer.SyncFailed(a.Provider, "database_error", err)
		return fmt.Errorf("sync user %s: commit: %w", a.UserID, err)
	}
	outcome := "unchanged"
	switch {
	case res.Stale > 0:
		outcome = "stale"
	case res.Deleted > 0:
		outcome = "deleted"
	case res.Changed() > 0:
		outcome = "changed"
	}
	w.deps.Observer.Synced(a.Provider, outcome, time.Since(job.CreatedAt))
	return nil
}

func (w *SyncUserWorker) failed(job *river.Job[jobs.SyncUserArgs], err error) error {
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
	return fmt.Errorf("sync user %s: %w", a.UserID, err)
}

// completeTx completes job in tx and checks that it really completed: if the
// job left the running state (rescued as stuck, cancelled), nothing it wrote
// may commit.
func completeTx[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T]) (*river.Job[T], error) {
	done, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
	if err != nil {
		return nil, fmt.Errorf("complete job %d: %w", job.ID, err)
	}
	if done.State != rivertype.JobStateCompleted {
		return nil, fmt.Errorf("job %d is no longer running (state %s): not committing", job.ID, done.State)
	}
	return done, nil
}

// enqueueResyncs enqueues one more sync of each user whose stored data this
// transaction could not order against its own (Result.Resync). The insert is
// not unique, so it never waits for another job while this transaction holds
// the users' state rows.
func enqueueResyncs(ctx context.Context, tx pgx.Tx, prov string, ids []string) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	return jobs.EnqueueResyncs(ctx, tx, client, prov, ids)
}

func insertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	_, err = client.InsertTx(ctx, tx, args, nil)
	return err
}

// sameUser returns u stored under id (also in its raw profile, from which a
// Neon table derives its id column) if u.ID differs from id only by case,
// and an error if u is another user.
func sameUser(u provider.User, id string) (provider.User, error) {
	if !strings.EqualFold(u.ID, id) {
		return u, fmt.Errorf("the provider answered the lookup of user %q with user %q: not writing another user's row",
			provider.Snippet([]byte(id), 64), provider.Snippet([]byte(u.ID), 64))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(u.Raw, &obj); err != nil {
		return u, fmt.Errorf("user %q: profile is not a JSON object: %w", provider.Snippet([]byte(id), 64), err)
	}
	obj["id"], _ = json.Marshal(id)
	raw, err := json.Marshal(obj)
	if err != nil {
		return u, fmt.Errorf("user %q: re-encode profile: %w", provider.Snippet([]byte(id), 64), err)
	}
	u.ID, u.Raw = id, raw
	return u, nil
}

// enqueueResyncsAfterDeletion is enqueueResyncs for a sync whose latest
// event was a deletion.
func enqueueResyncsAfterDeletion(ctx context.Context, tx pgx.Tx, prov string, ids []string) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	return jobs.EnqueueResyncsAfterDeletion(ctx, tx, client, prov, ids)
}

// enqueueSync enqueues one more sync of a user as a webhook would, with the
// kind of its latest event.
func enqueueSync(ctx context.Context, tx pgx.Tx, riverSchema string, ref jobs.UserRef) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	_, err = jobs.EnqueueSyncs(ctx, tx, client, riverSchema, []jobs.UserRef{ref})
	return err
}
