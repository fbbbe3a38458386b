package worker_test

// Unit tests of the workers: each job is inserted and worked by River's
// rivertest inside one transaction of the test, against a migrated
// database of its own. The worker's own transaction (Deps.DB.Begin) is a
// savepoint of the test's, so its writes and its JobCompleteTx are seen by
// the test's checks before anything commits.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/provider/workos/workosfake"
	"github.com/usersync/usersync/worker"
)

// recorder is an Observer (and GuardObserver) that remembers what the
// workers reported.
type recorder struct {
	mu     sync.Mutex
	synced []string // outcomes
	failed []string // kinds
	pages  []bool   // BackfillPage's last
	held   []int64
	paused int
}

func (r *recorder) Synced(_, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.synced = append(r.synced, outcome)
}

func (r *recorder) SyncFailed(_, kind string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, kind)
}

func (r *recorder) BackfillPage(_ string, _, _ int, last bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pages = append(r.pages, last)
}

func (r *recorder) BackfillHeld(_ string, would int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = append(r.held, would)
}

func (r *recorder) DeletionsPaused(string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused++
}

func (r *recorder) report() (synced, failed []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.synced...), append([]string(nil), r.failed...)
}

// offsetClock is River's clock moved by d: the attempt of a job worked with
// it begins d from now (rivertest stamps attempted_at from it).
type offsetClock struct{ d time.Duration }

func (c offsetClock) Now() time.Time       { return time.Now().Add(c.d) }
func (c offsetClock) NowOrNil() *time.Time { return nil }

// fetchHook is a provider that runs before ahead of each user fetch.
type fetchHook struct {
	provider.Provider
	before func(ctx context.Context)
}

func (h *fetchHook) FetchUser(ctx context.Context, id string) (provider.User, error) {
	if h.before != nil {
		h.before(ctx)
	}
	return h.Provider.FetchUser(ctx, id)
}

// unit is one provider's workers over a fresh migrated database.
type unit struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *worker.Store
	obs   *recorder
	deps  worker.Deps
	clock rivertype.TimeGenerator
	// inserter enqueues with unique enforcement, as the webhook path does
	// (rivertest's own client disables it).
	inserter *river.Client[pgx.Tx]
}

func newUnit(t *testing.T, p provider.Provider, hard bool) *unit {
	t.Helper()
	pool := setup(t, "")
	target, err := worker.LoadTarget(t.Context(), pool, "neon_identity", "neon_identity_users_sync")
	if err != nil {
		t.Fatal(err)
	}
	st := worker.NewStore(worker.StoreConfig{Provider: p.Name(), InternalSchema: "usersync", Target: target, HardDelete: hard})
	obs := &recorder{}
	ins, err := river.NewClient(riverpgxv5.New(nil), &river.Config{Schema: "usersync", Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	return &unit{t: t, pool: pool, store: st, obs: obs, inserter: ins,
		deps: worker.Deps{Logger: discard(), Observer: obs, DeleteGuard: 0.1,
			Bindings: map[string]*worker.Binding{p.Name(): {Provider: p, Store: st}}}}
}

func (u *unit) config() *river.Config {
	return &river.Config{Schema: "usersync", Logger: discard(), Test: river.TestConfig{Time: u.clock}}
}

// on returns the dependencies with the test's transaction as the database.
func (u *unit) on(tx pgx.Tx) worker.Deps {
	d := u.deps
	d.DB = tx
	return d
}

func (u *unit) syncWorker(tx pgx.Tx) *rivertest.Worker[jobs.SyncUserArgs, pgx.Tx] {
	w, _, _ := worker.NewTestWorkers(u.on(tx))
	return rivertest.NewWorker(u.t, riverpgxv5.New(nil), u.config(), w)
}

func (u *unit) backfillWorker(tx pgx.Tx) *rivertest.Worker[jobs.BackfillPageArgs, pgx.Tx] {
	_, w, _ := worker.NewTestWorkers(u.on(tx))
	return rivertest.NewWorker(u.t, riverpgxv5.New(nil), u.config(), w)
}

func (u *unit) pruneWorker(tx pgx.Tx) *rivertest.Worker[jobs.PruneUserStateArgs, pgx.Tx] {
	_, _, w := worker.NewTestWorkers(u.on(tx))
	return rivertest.NewWorker(u.t, riverpgxv5.New(nil), u.config(), w)
}

// begin opens the test's transaction, rolled back at the end unless
// committed.
func (u *unit) begin() pgx.Tx {
	u.t.Helper()
	tx, err := u.pool.Begin(u.t.Context())
	if err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// sync works one sync_user job for id in tx and returns its result; an
// error from the worker is returned too (rivertest reports it).
func (u *unit) sync(tx pgx.Tx, id string, opts *river.InsertOpts) (*rivertest.WorkResult, error) {
	u.t.Helper()
	res, err := u.syncWorker(tx).Work(u.t.Context(), u.t, tx, jobs.SyncUserArgs{Provider: u.name(), UserID: id}, opts)
	if res == nil {
		u.t.Fatalf("sync %s: no result: %v", id, err)
	}
	return res, err
}

func (u *unit) name() string {
	for n := range u.deps.Bindings {
		return n
	}
	return ""
}

func count(t *testing.T, db querier, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantKind(t *testing.T, res *rivertest.WorkResult, kind river.EventKind, state rivertype.JobState) {
	t.Helper()
	if res.EventKind != kind || res.Job.State != state {
		t.Fatalf("job worked: event %s, state %s (errors %v); want %s, %s", res.EventKind, res.Job.State, res.Job.Errors, kind, state)
	}
}

var deletedEvent = &river.InsertOpts{Metadata: []byte(`{"` + jobs.LastEventKey + `":"` + jobs.LastEventDeleted + `"}`)}

const (
	liveRows = `SELECT count(*) FROM neon_identity.users_sync WHERE deleted_at IS NULL`
	allRows  = `SELECT count(*) FROM neon_identity.users_sync`
)

// A user the provider has: its row is written as the provider returns it,
// the job completes in the same transaction, the observer hears "changed",
// and a change notification is delivered when the transaction commits.
func TestSyncUserWritesTheProfile(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	id := fake.CreateUser()
	u := newUnit(t, fake.Provider(), false)

	conn, err := u.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `LISTEN neon_identity_users_sync`); err != nil {
		t.Fatal(err)
	}

	tx := u.begin()
	res, err := u.sync(tx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	want := fake.Snapshot()[id]
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.users_sync WHERE id = $1 AND raw_json = $2::jsonb AND deleted_at IS NULL`, id, string(want)); n != 1 {
		t.Fatalf("no live row for %s holding the provider's profile", id)
	}
	if n := count(t, tx, `SELECT count(*) FROM usersync.user_state WHERE user_id = $1 AND NOT tombstone`, id); n != 1 {
		t.Fatalf("%d state rows for %s, want 1", n, id)
	}
	if synced, failed := u.obs.report(); len(synced) != 1 || synced[0] != "changed" || len(failed) != 0 {
		t.Fatalf("observer: synced %v, failed %v; want [changed], []", synced, failed)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no notification after the commit: %v", err)
	}
	var payload struct{ ID, Op string }
	if err := json.Unmarshal([]byte(n.Payload), &payload); err != nil || payload.ID != id || payload.Op == "" {
		t.Fatalf("notification %q on %s: want the id %s and an op", n.Payload, n.Channel, id)
	}
}

// The provider's own not-found after a deletion event: the row is marked
// deleted (soft) or removed (hard), and the job completes.
func TestSyncUserNotFoundDeletes(t *testing.T) {
	t.Parallel()
	for _, hard := range []bool{false, true} {
		t.Run(map[bool]string{false: "soft", true: "hard"}[hard], func(t *testing.T) {
			t.Parallel()
			fake := stackfake.New(stackfake.Options{})
			t.Cleanup(fake.Close)
			id := fake.CreateUser()
			u := newUnit(t, fake.Provider(), hard)
			tx := u.begin()
			if res, err := u.sync(tx, id, nil); err != nil || res.Job.State != rivertype.JobStateCompleted {
				t.Fatalf("first sync: %v %v", res.Job.State, err)
			}
			fake.DeleteUser(id)
			res, err := u.sync(tx, id, deletedEvent)
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			wantRows, wantLive := 1, 0
			if hard {
				wantRows = 0
			}
			if n := count(t, tx, allRows); n != wantRows {
				t.Errorf("%d rows after the deletion, want %d", n, wantRows)
			}
			if n := count(t, tx, liveRows); n != wantLive {
				t.Errorf("%d live rows after the deletion, want 0", n)
			}
			if synced, _ := u.obs.report(); len(synced) != 2 || synced[1] != "deleted" {
				t.Errorf("observer: synced %v, want [changed deleted]", synced)
			}
		})
	}
}

// A 429 with Retry-After snoozes the job for that long without spending an
// attempt, and writes nothing.
func TestSyncUserRateLimitedSnoozes(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	id := fake.CreateUser()
	u := newUnit(t, fake.Provider(), false)
	tx := u.begin()
	fake.FailNext(1, 429, 30*time.Second)
	before := time.Now()
	res, err := u.sync(tx, id, nil)
	after := time.Now()
	if err != nil {
		t.Fatalf("a snooze is not an error: %v", err)
	}
	wantKind(t, res, river.EventKindJobSnoozed, rivertype.JobStateScheduled)
	if res.Job.Attempt != 0 {
		t.Errorf("attempt %d after a snooze, want 0 (not spent)", res.Job.Attempt)
	}
	if at := res.Job.ScheduledAt; at.Before(before.Add(30*time.Second-time.Millisecond)) || at.After(after.Add(30*time.Second+time.Millisecond)) {
		t.Errorf("scheduled %s after the attempt, want Retry-After's 30 s", at.Sub(before))
	}
	if n := count(t, tx, allRows); n != 0 {
		t.Errorf("%d rows written by a rate-limited sync", n)
	}
	if _, failed := u.obs.report(); len(failed) != 1 || failed[0] != "rate_limited" {
		t.Errorf("observer: failed %v, want [rate_limited]", failed)
	}
}

// A 5xx fails the attempt: the error is returned and the job is retried
// with the package's backoff (1 s, then 2 s, ±10%), writing nothing.
func TestSyncUserProviderErrorRetries(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	id := fake.CreateUser()
	u := newUnit(t, fake.Provider(), false)
	tx := u.begin()
	w := u.syncWorker(tx)
	job, err := u.inserter.InsertTx(t.Context(), tx, jobs.SyncUserArgs{Provider: "stackauth", UserID: id}, nil)
	if err != nil {
		t.Fatal(err)
	}
	row := job.Job
	for attempt, delay := range []time.Duration{time.Second, 2 * time.Second} {
		fake.FailNext(1, 503, 0)
		before := time.Now()
		res, err := w.WorkJob(t.Context(), t, tx, row)
		after := time.Now()
		var se *provider.StatusError
		if !errors.As(err, &se) {
			t.Fatalf("attempt %d: error %v, want the provider's status error", attempt+1, err)
		}
		// A retry due sooner than River's scheduler interval is made
		// available at once, with its scheduled time in the future.
		if res.EventKind != river.EventKindJobFailed || res.Job.State != rivertype.JobStateAvailable || res.Job.Attempt != attempt+1 || len(res.Job.Errors) != attempt+1 {
			t.Fatalf("attempt %d: event %s, state %s, attempt %d, %d errors", attempt+1, res.EventKind, res.Job.State, res.Job.Attempt, len(res.Job.Errors))
		}
		lo, hi := before.Add(delay*9/10-time.Millisecond), after.Add(delay*11/10+time.Millisecond)
		if at := res.Job.ScheduledAt; at.Before(lo) || at.After(hi) {
			t.Errorf("attempt %d: retry in %s, want %s ±10%%", attempt+1, at.Sub(before), delay)
		}
		row = res.Job
	}
	if n := count(t, tx, allRows); n != 0 {
		t.Errorf("%d rows written by failed syncs", n)
	}
	if _, failed := u.obs.report(); len(failed) != 2 || failed[0] != "provider_error" || failed[1] != "provider_error" {
		t.Errorf("observer: failed %v, want [provider_error provider_error]", failed)
	}
}

// Rejected credentials: the error names the cause (without the key), the
// observer hears "bad_credentials", nothing is written.
func TestSyncUserBadCredentials(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	id := fake.CreateUser()
	u := newUnit(t, fake.ProviderWithBadCredentials(), false)
	tx := u.begin()
	res, err := u.sync(tx, id, nil)
	if !errors.Is(err, provider.ErrBadCredentials) {
		t.Fatalf("error %v, want ErrBadCredentials", err)
	}
	if res.Job.State != rivertype.JobStateAvailable || len(res.Job.Errors) != 1 {
		t.Fatalf("job %s with %d errors, want retried", res.Job.State, len(res.Job.Errors))
	}
	if strings.Contains(res.Job.Errors[0].Error, "ssk_") {
		t.Errorf("the job's error shows a secret key: %s", res.Job.Errors[0].Error)
	}
	if _, failed := u.obs.report(); len(failed) != 1 || failed[0] != "bad_credentials" {
		t.Errorf("observer: failed %v, want [bad_credentials]", failed)
	}
	if n := count(t, tx, allRows); n != 0 {
		t.Errorf("%d rows written", n)
	}
}

// A job dirtied while it ran (an event for its user coalesced into it, on
// the webhook path) enqueues one follow-up sync in its own transaction,
// carrying the kind of that event; a mark older than the attempt does not.
func TestSyncUserDirtyEnqueuesFollowUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		deleted bool
		early   bool // the mark predates the attempt
	}{{name: "change"}, {name: "deletion", deleted: true}, {name: "before the attempt", early: true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := stackfake.New(stackfake.Options{})
			t.Cleanup(fake.Close)
			id := fake.CreateUser()
			var tx pgx.Tx
			var marked int
			var markErr error
			hooked := &fetchHook{Provider: fake.Provider()}
			u := newUnit(t, hooked, false)
			hooked.before = func(ctx context.Context) {
				marked, markErr = jobs.EnqueueSyncs(ctx, tx, u.inserter, "usersync", []jobs.UserRef{{Provider: "stackauth", UserID: id, Deleted: tc.deleted}})
			}
			if !tc.early {
				// The mark is the webhook transaction's time, which is
				// the test's: the attempt began a minute before it.
				u.clock = offsetClock{-time.Minute}
			}
			tx = u.begin()
			job, err := u.inserter.InsertTx(t.Context(), tx, jobs.SyncUserArgs{Provider: "stackauth", UserID: id}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := u.syncWorker(tx).WorkJob(t.Context(), t, tx, job.Job)
			if err != nil || markErr != nil || marked != 1 {
				t.Fatalf("work: %v; the event during the fetch marked %d jobs (%v), want 1", err, marked, markErr)
			}
			wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			var meta [][]byte
			rows, err := tx.Query(t.Context(), `SELECT metadata FROM usersync.river_job WHERE kind = 'sync_user' AND state = 'available' AND args->>'user_id' = $1`, id)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var m []byte
				if err := rows.Scan(&m); err != nil {
					t.Fatal(err)
				}
				meta = append(meta, m)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			want := 1
			if tc.early {
				want = 0
			}
			if len(meta) != want {
				t.Fatalf("%d follow-up syncs, want %d", len(meta), want)
			}
			if want == 1 && jobs.LastEventWasDeletion(meta[0]) != tc.deleted {
				t.Errorf("follow-up metadata %s: deletion %v, want %v", meta[0], !tc.deleted, tc.deleted)
			}
			if n := count(t, tx, liveRows); n != 1 {
				t.Errorf("%d live rows, want the fetched user's", n)
			}
		})
	}
}

// With USERSYNC_ANONYMOUS=exclude, a sync of an anonymous Stack Auth user
// that usersync does not keep completes and writes nothing, not even state;
// with include, the same user is written.
func TestSyncUserExcludesAnonymous(t *testing.T) {
	t.Parallel()
	for _, exclude := range []bool{true, false} {
		t.Run(map[bool]string{true: "exclude", false: "include"}[exclude], func(t *testing.T) {
			t.Parallel()
			fake := stackfake.New(stackfake.Options{})
			t.Cleanup(fake.Close)
			id := fake.CreateAnonymousUser()
			u := newUnit(t, fake.Provider(), false)
			u.deps.Bindings["stackauth"].ExcludeAnonymous = exclude
			tx := u.begin()
			res, err := u.sync(tx, id, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			want := 1
			if exclude {
				want = 0
			}
			if n := count(t, tx, allRows); n != want {
				t.Errorf("%d rows, want %d", n, want)
			}
			if n := count(t, tx, `SELECT count(*) FROM usersync.user_state`); n != want {
				t.Errorf("%d state rows, want %d", n, want)
			}
		})
	}
}

// An answer about another user fails the job and writes nothing.
func TestSyncUserRefusesAnotherUser(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	real, other := fake.CreateUser(), fake.CreateUser()
	u := newUnit(t, idProxy(t, fake, real, real), false)
	tx := u.begin()
	res, err := u.sync(tx, other, nil)
	if err == nil || !strings.Contains(err.Error(), real) {
		t.Fatalf("error %v, want one naming the user answered", err)
	}
	if res.EventKind != river.EventKindJobFailed || res.Job.State == rivertype.JobStateCompleted {
		t.Fatalf("job: event %s, state %s; want failed", res.EventKind, res.Job.State)
	}
	if n := count(t, tx, allRows) + count(t, tx, `SELECT count(*) FROM usersync.user_state`); n != 0 {
		t.Fatalf("%d rows written for a mismatched answer, want 0", n)
	}
}

// A job for a provider this process does not run is cancelled, not retried.
func TestSyncUserUnknownProviderCancelled(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	u := newUnit(t, fake.Provider(), false)
	tx := u.begin()
	res, err := u.syncWorker(tx).Work(t.Context(), t, tx, jobs.SyncUserArgs{Provider: "clerk", UserID: "user_2abc"}, nil)
	if err != nil {
		t.Fatalf("a cancellation is not an error: %v", err)
	}
	wantKind(t, res, river.EventKindJobCancelled, rivertype.JobStateCancelled)
	if len(res.Job.Errors) != 1 || !strings.Contains(res.Job.Errors[0].Error, "not enabled") {
		t.Errorf("errors %v, want one saying the provider is not enabled", res.Job.Errors)
	}
}

// The deletion breaker: unexpected not-founds (the latest event was a
// change) delete the first DeleteGuardMinRows users; the next one pauses
// deletions by sync and snoozes with its user's row intact. A not-found
// after a deletion event still deletes while paused.
func TestSyncUserDeletionBreaker(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	n := worker.DeleteGuardMinRows + 2
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fake.CreateUser()
	}
	u := newUnit(t, fake.Provider(), false)
	tx := u.begin()
	for _, id := range ids {
		if res, err := u.sync(tx, id, nil); err != nil || res.Job.State != rivertype.JobStateCompleted {
			t.Fatalf("sync of a live user: %v", err)
		}
		fake.DeleteUser(id)
	}
	for i, id := range ids[:worker.DeleteGuardMinRows] {
		res, err := u.sync(tx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
		if live := count(t, tx, liveRows); live != n-i-1 {
			t.Fatalf("after %d unexpected not-founds: %d live rows, want %d", i+1, live, n-i-1)
		}
	}
	tripper := ids[worker.DeleteGuardMinRows]
	res, err := u.sync(tx, tripper, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobSnoozed, rivertype.JobStateScheduled)
	var meta map[string]any
	if err := json.Unmarshal(res.Job.Metadata, &meta); err != nil || meta[worker.PausedKey] == nil {
		t.Errorf("snoozed job's metadata %s lacks %s", res.Job.Metadata, worker.PausedKey)
	}
	if live := count(t, tx, `SELECT count(*) FROM neon_identity.users_sync WHERE id = $1 AND deleted_at IS NULL`, tripper); live != 1 {
		t.Fatal("the sync that tripped the breaker deleted its user")
	}
	b, err := store.New(u.store.Schemas()).Breakers.Get(t.Context(), tx, "stackauth")
	if err != nil || b == nil || b.PausedAt == nil || b.PausedUserID == nil || *b.PausedUserID != tripper {
		t.Fatalf("breaker %+v (%v): want paused by %s", b, err, tripper)
	}
	if u.obs.paused != 1 {
		t.Errorf("observer told of %d pauses, want 1", u.obs.paused)
	}
	last := ids[n-1]
	res, err = u.sync(tx, last, deletedEvent)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	if live := count(t, tx, `SELECT count(*) FROM neon_identity.users_sync WHERE id = $1 AND deleted_at IS NULL`, last); live != 0 {
		t.Error("an expected not-found (after a deletion event) did not delete while paused")
	}
}

// pagedClient is a Stack Auth client of fake that lists size users a page.
func pagedClient(t *testing.T, fake *stackfake.Fake, size int) provider.Provider {
	t.Helper()
	o := fake.Options()
	c, err := stackauth.New(stackauth.Config{ProjectID: o.ProjectID, SecretServerKey: o.SecretServerKey,
		WebhookSecret: o.WebhookSecret, APIURL: fake.URL(), PageSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// backfill works first, then each backfill_page job it enqueues in turn,
// calling before (if set) ahead of each further page with that page's args.
// It returns the results, one per page.
func (u *unit) backfill(tx pgx.Tx, first jobs.BackfillPageArgs, before func(jobs.BackfillPageArgs)) []*rivertest.WorkResult {
	u.t.Helper()
	ctx := u.t.Context()
	w := u.backfillWorker(tx)
	res, err := w.Work(ctx, u.t, tx, first, nil)
	if err != nil {
		u.t.Fatalf("page 1: %v", err)
	}
	out := []*rivertest.WorkResult{res}
	for len(out) < 50 {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM usersync.river_job WHERE kind = 'backfill_page' AND state = 'available' ORDER BY id LIMIT 1`).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return out
		}
		if err != nil {
			u.t.Fatal(err)
		}
		job, err := u.inserter.JobGetTx(ctx, tx, id)
		if err != nil {
			u.t.Fatal(err)
		}
		if before != nil {
			var a jobs.BackfillPageArgs
			if err := json.Unmarshal(job.EncodedArgs, &a); err != nil {
				u.t.Fatal(err)
			}
			before(a)
		}
		res, err := w.WorkJob(ctx, u.t, tx, job)
		if err != nil {
			u.t.Fatalf("page %d: %v", len(out)+1, err)
		}
		out = append(out, res)
	}
	u.t.Fatal("the backfill did not end within 50 pages")
	return nil
}

// seedRows stores ids as users written by an earlier sync, before any run.
func (u *unit) seedRows(tx pgx.Tx, ids ...string) {
	u.t.Helper()
	users := make([]provider.User, len(ids))
	for i, id := range ids {
		users[i] = user(id, "Seeded", nil)
	}
	if _, err := u.store.Upsert(u.t.Context(), tx, users, time.Now().Add(-time.Hour), nil); err != nil {
		u.t.Fatal(err)
	}
}

func (u *unit) latestRun(tx pgx.Tx) *store.Run {
	u.t.Helper()
	runs, err := store.New(u.store.Schemas()).Runs.All(u.t.Context(), tx, u.name())
	if err != nil || len(runs) == 0 {
		u.t.Fatalf("runs: %v (%d)", err, len(runs))
	}
	r := runs[0]
	for _, x := range runs {
		if x.ID > r.ID {
			r = x
		}
	}
	return &r
}

func ghosts(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "ghost-" + string(rune('a'+i))
	}
	return ids
}

// A run: the first page starts it and enqueues the next page (with the
// run and cursor); each page records progress; the last page completes the
// run and infers the deletion of the users it did not list.
func TestBackfillPagesCompleteTheRun(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	fake.Seed(5)
	u := newUnit(t, pagedClient(t, fake, 2), false)
	tx := u.begin()
	gone := ghosts(3)
	u.seedRows(tx, gone...)

	var next []jobs.BackfillPageArgs
	results := u.backfill(tx, jobs.BackfillPageArgs{Provider: "stackauth", Force: true}, func(a jobs.BackfillPageArgs) {
		if len(next) == 0 {
			// After the first page: the run is running, with its progress.
			r := u.latestRun(tx)
			if r.Status != store.RunRunning || r.Pages != 1 || r.Listed != 2 {
				t.Errorf("after page 1: run %s, %d pages, %d listed; want running, 1, 2", r.Status, r.Pages, r.Listed)
			}
			if a.RunID == "" || a.Cursor == "" {
				t.Errorf("next page %+v: want the run and a cursor", a)
			}
		}
		next = append(next, a)
	})
	if len(results) != 3 {
		t.Fatalf("%d pages, want 3 (5 users, 2 a page)", len(results))
	}
	for i, res := range results {
		wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
		if i > 0 && next[i-1].RunID != next[0].RunID {
			t.Errorf("page %d belongs to run %s, want %s", i+1, next[i-1].RunID, next[0].RunID)
		}
	}
	r := u.latestRun(tx)
	if r.Status != store.RunCompleted || r.Pages != 3 || r.Listed != 5 || r.Deleted != 3 {
		t.Errorf("run %s, %d pages, %d listed, %d deleted; want completed, 3, 5, 3", r.Status, r.Pages, r.Listed, r.Deleted)
	}
	if n := count(t, tx, liveRows); n != 5 {
		t.Errorf("%d live rows, want the 5 listed", n)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.users_sync WHERE id = ANY($1) AND deleted_at IS NOT NULL`, gone); n != 3 {
		t.Errorf("%d of the 3 unlisted users marked deleted", n)
	}
	if got := u.obs.pages; len(got) != 3 || got[0] || got[1] || !got[2] {
		t.Errorf("observer pages (last?) %v, want [false false true]", got)
	}
}

// A complete run that would delete more than the guard allows ends held:
// nothing is deleted, and the count is recorded.
func TestBackfillOverTheGuardIsHeld(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	fake.Seed(3)
	u := newUnit(t, fake.Provider(), false)
	tx := u.begin()
	gone := ghosts(worker.DeleteGuardMinRows + 1)
	u.seedRows(tx, gone...)
	results := u.backfill(tx, jobs.BackfillPageArgs{Provider: "stackauth", Force: true}, nil)
	if len(results) != 1 {
		t.Fatalf("%d pages, want 1", len(results))
	}
	wantKind(t, results[0], river.EventKindJobCompleted, rivertype.JobStateCompleted)
	r := u.latestRun(tx)
	if r.Status != store.RunHeld || r.HeldDeletions == nil || *r.HeldDeletions != int64(len(gone)) || r.Deleted != 0 {
		t.Fatalf("run %s, held %v, deleted %d; want held with %d", r.Status, r.HeldDeletions, r.Deleted, len(gone))
	}
	if n := count(t, tx, liveRows); n != 3+len(gone) {
		t.Errorf("%d live rows, want %d (nothing deleted)", n, 3+len(gone))
	}
	if len(u.obs.held) != 1 || u.obs.held[0] != int64(len(gone)) {
		t.Errorf("observer held %v, want [%d]", u.obs.held, len(gone))
	}
}

// A cursor that no longer resolves (the user it names was deleted between
// pages) resumes from the previous page's last user: the run completes
// without restarting and every remaining user is written.
func TestBackfillResumesAfterALostCursor(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	fake.Seed(5)
	u := newUnit(t, pagedClient(t, fake, 2), false)
	tx := u.begin()
	var lost string
	results := u.backfill(tx, jobs.BackfillPageArgs{Provider: "stackauth", Force: true}, func(a jobs.BackfillPageArgs) {
		if lost == "" {
			lost = a.Cursor
			if !fake.DeleteUser(lost) {
				t.Fatalf("the cursor %q names no user", lost)
			}
		}
	})
	for _, res := range results {
		wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	}
	r := u.latestRun(tx)
	if r.Status != store.RunCompleted || r.Restarts != 0 || r.Deleted != 0 {
		t.Errorf("run %s, %d restarts, %d deleted; want completed, 0, 0", r.Status, r.Restarts, r.Deleted)
	}
	var live []string
	for id := range fake.Snapshot() {
		live = append(live, id)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.users_sync WHERE id = ANY($1) AND deleted_at IS NULL`, live); n != 4 || len(live) != 4 {
		t.Errorf("%d of the %d remaining users written, want 4", n, len(live))
	}
	if n := count(t, tx, allRows); n != 4 {
		t.Errorf("%d rows, want 4", n)
	}
}

// prune_user_state removes the recorded deletions of users without a row
// once they are older than the horizon, and keeps them before; a deleted
// user whose row remains (soft mode) keeps its state.
func TestPruneRemovesTombstonesPastTheHorizon(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	deleted := fake.CreateUser()
	const never = "00000000-0000-4000-8000-00000000abcd"
	u := newUnit(t, fake.Provider(), false)
	tx := u.begin()
	if res, _ := u.sync(tx, deleted, nil); res.Job.State != rivertype.JobStateCompleted {
		t.Fatalf("sync: %s %v", res.Job.State, res.Job.Errors)
	}
	fake.DeleteUser(deleted)
	for _, id := range []string{deleted, never} {
		if res, _ := u.sync(tx, id, deletedEvent); res.Job.State != rivertype.JobStateCompleted {
			t.Fatalf("sync of %s: %s %v", id, res.Job.State, res.Job.Errors)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	const horizon = 10 * time.Millisecond
	// Prune compares with its transaction's time: begin it once the
	// tombstones are older than the horizon.
	for count(t, u.pool, `SELECT count(*) FROM usersync.user_state WHERE fetched_until > clock_timestamp() - $1::interval`, horizon) > 0 {
		time.Sleep(time.Millisecond)
	}
	tombstones := `SELECT count(*) FROM usersync.user_state WHERE user_id = $1`
	tx = u.begin()
	res, err := u.pruneWorker(tx).Work(t.Context(), t, tx, jobs.PruneUserStateArgs{Provider: "stackauth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	if n := count(t, tx, tombstones, never); n != 1 {
		t.Fatalf("the default horizon (%s) removed a fresh tombstone", worker.DefaultTombstoneHorizon)
	}
	u.deps.TombstoneHorizon = horizon
	res, err = u.pruneWorker(tx).Work(t.Context(), t, tx, jobs.PruneUserStateArgs{Provider: "stackauth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	if n := count(t, tx, tombstones, never); n != 0 {
		t.Errorf("the tombstone of a user without a row survived the horizon")
	}
	if n := count(t, tx, tombstones, deleted); n != 1 {
		t.Errorf("a soft-deleted user's state was pruned with its row still there")
	}
}

// A job that left the running state while its fetch was out (rescued as
// stuck by River, here by setting its state as the rescuer does) writes
// nothing: the worker sees JobCompleteTx not complete it and gives up.
func TestSyncUserRescuedWhileFetchingWritesNothing(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	id := fake.CreateUser()
	hooked := &fetchHook{Provider: fake.Provider()}
	u := newUnit(t, hooked, false)
	tx := u.begin()
	job, err := u.inserter.InsertTx(t.Context(), tx, jobs.SyncUserArgs{Provider: "stackauth", UserID: id}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rescueErr error
	hooked.before = func(ctx context.Context) {
		_, rescueErr = tx.Exec(ctx, `UPDATE usersync.river_job SET state = 'retryable', scheduled_at = now() WHERE id = $1`, job.Job.ID)
	}
	res, err := u.syncWorker(tx).WorkJob(t.Context(), t, tx, job.Job)
	if rescueErr != nil {
		t.Fatal(rescueErr)
	}
	if err == nil || !strings.Contains(err.Error(), "no longer running") {
		t.Fatalf("error %v, want the worker to refuse to commit", err)
	}
	if res.Job.State != rivertype.JobStateRetryable {
		t.Errorf("job state %s, want the rescuer's retryable", res.Job.State)
	}
	if n := count(t, tx, allRows) + count(t, tx, `SELECT count(*) FROM usersync.user_state`); n != 0 {
		t.Errorf("%d rows written by a rescued job", n)
	}
}

// The same job against each provider's fake: a user is written as the
// provider returns it, a change rewrites it, and the provider's not-found
// after a deletion event marks it deleted.
func TestSyncUserEveryProvider(t *testing.T) {
	t.Parallel()
	for name, newFake := range map[string]func() fakekit.Fake{
		"stackauth": func() fakekit.Fake { return stackfake.New(stackfake.Options{}) },
		"clerk":     func() fakekit.Fake { return clerkfake.New(clerkfake.Options{}) },
		"workos":    func() fakekit.Fake { return workosfake.New(workosfake.Options{}) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := newFake()
			t.Cleanup(fake.Close)
			id := fake.CreateUser()
			u := newUnit(t, fake.Provider(), false)
			tx := u.begin()
			stored := `SELECT count(*) FROM neon_identity.users_sync WHERE id = $1 AND raw_json = $2::jsonb AND deleted_at IS NULL`
			for _, step := range []string{"create", "update"} {
				if step == "update" && !fake.UpdateUser(id) {
					t.Fatal("update failed")
				}
				res, err := u.sync(tx, id, nil)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
				if n := count(t, tx, stored, id, string(fake.Snapshot()[id])); n != 1 {
					t.Fatalf("%s: the row does not hold the provider's current profile", step)
				}
			}
			fake.DeleteUser(id)
			res, err := u.sync(tx, id, deletedEvent)
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			if n := count(t, tx, liveRows); n != 0 {
				t.Errorf("%d live rows after the deletion, want 0", n)
			}
			if synced, _ := u.obs.report(); strings.Join(synced, ",") != "changed,changed,deleted" {
				t.Errorf("observer: synced %v, want [changed changed deleted]", synced)
			}
		})
	}
}

// querier is what the tests' reads need: a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}
