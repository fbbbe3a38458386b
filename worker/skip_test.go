package worker_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/worker"
)

// Skip-fetch (docs/guarantees.md §11, docs/jobs.md): a sync_user job whose
// user's stored data was fetched strictly after the job's latest event
// completes without a request to the provider; any other fetches.

// hold inserts a sync_user job for id that no worker takes yet (pending),
// as a webhook would: its creation is its event's time.
func (r *runner) hold(t *testing.T, id string, deleted bool) int64 {
	t.Helper()
	var opts *river.InsertOpts
	if deleted {
		opts = &river.InsertOpts{Metadata: []byte(`{"` + jobs.LastEventKey + `":"` + jobs.LastEventDeleted + `"}`)}
	}
	opts = withPending(opts)
	res, err := r.client.Insert(t.Context(), jobs.SyncUserArgs{Provider: "stackauth", UserID: id}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.Job.ID
}

func withPending(o *river.InsertOpts) *river.InsertOpts {
	if o == nil {
		o = &river.InsertOpts{}
	}
	o.Pending = true
	return o
}

// release makes held jobs available and waits until each has been worked
// once.
func (r *runner) release(t *testing.T, ids ...int64) map[int64]*rivertype.JobRow {
	t.Helper()
	if _, err := r.pool.Exec(t.Context(), `UPDATE usersync.river_job SET state = 'available' WHERE id = ANY($1) AND state = 'pending'`, ids); err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	done := map[int64]*rivertype.JobRow{}
	timeout := time.After(60 * time.Second)
	for len(done) < len(want) {
		select {
		case ev := <-r.events:
			if want[ev.Job.ID] {
				done[ev.Job.ID] = ev.Job
			}
		case <-timeout:
			t.Fatalf("%d of %d jobs worked within 60 s", len(done), len(want))
		}
	}
	for id, j := range done {
		if j.State != rivertype.JobStateCompleted {
			t.Fatalf("job %d: state %s, errors %v", id, j.State, j.Errors)
		}
	}
	return done
}

// holds reports whether the row of id holds profile u (and is not deleted).
func holds(t *testing.T, r *runner, u provider.User) bool {
	t.Helper()
	got := get(t, r.pool, u.ID)
	var want map[string]any
	if err := json.Unmarshal(u.Raw, &want); err != nil {
		t.Fatal(err)
	}
	return got != nil && got.deletedAt == nil && reflect.DeepEqual(got.raw, want)
}

// profile is the fake's current profile of id, read as a backfill page
// would (one request, counted before the test's own count starts).
func profile(t *testing.T, fake *stackfake.Fake, id string) provider.User {
	t.Helper()
	u, err := fake.Provider().FetchUser(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSkipFetch(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	r := startRunner(t, fake.Provider(), false, 0)

	t.Run("listed after the event: no request", func(t *testing.T) {
		id := fake.CreateUser()
		job := r.hold(t, id, false)
		listed := profile(t, fake, id)
		upsertAt(t, r.pool, r.store, clock(t, r.pool), nil, listed) // a page listing the user after the event
		before := fake.Requests()
		r.release(t, job)
		if n := fake.Requests() - before; n != 0 {
			t.Errorf("%d requests to the provider, want none: the stored data is newer than the event", n)
		}
		if !holds(t, r, listed) {
			t.Errorf("row %s, want the listed profile", get(t, r.pool, id).raw)
		}
	})

	t.Run("listed before the event: fetched", func(t *testing.T) {
		id := fake.CreateUser()
		listed := profile(t, fake, id)
		upsertAt(t, r.pool, r.store, clock(t, r.pool), nil, listed)
		fake.UpdateUser(id)
		job := r.hold(t, id, false) // the change's event, after the listing
		before := fake.Requests()
		r.release(t, job)
		if n := fake.Requests() - before; n != 1 {
			t.Errorf("%d requests to the provider, want 1", n)
		}
		if holds(t, r, listed) || !holds(t, r, profile(t, fake, id)) {
			t.Errorf("row %s, want the changed profile", get(t, r.pool, id).raw)
		}
	})

	t.Run("a later event coalesced into the waiting job: fetched", func(t *testing.T) {
		id := fake.CreateUser()
		job := r.hold(t, id, false)
		listed := profile(t, fake, id)
		upsertAt(t, r.pool, r.store, clock(t, r.pool), nil, listed)
		fake.UpdateUser(id)
		// The change's event finds the job waiting and coalesces into it.
		if err := pgx.BeginFunc(t.Context(), r.pool, func(tx pgx.Tx) error {
			_, err := jobs.EnqueueSyncs(t.Context(), tx, r.client, "usersync", []jobs.UserRef{{Provider: "stackauth", UserID: id}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n := r.count(t, `SELECT count(*) FROM usersync.river_job WHERE args->>'user_id' = $1`, id); n != 1 {
			t.Fatalf("%d jobs for the user, want the one the event coalesced into", n)
		}
		before := fake.Requests()
		r.release(t, job)
		if n := fake.Requests() - before; n != 1 {
			t.Errorf("%d requests to the provider, want 1: the coalesced event is newer than the stored data", n)
		}
		if !holds(t, r, profile(t, fake, id)) {
			t.Errorf("row %s, want the changed profile", get(t, r.pool, id).raw)
		}
	})

	t.Run("deletion after the listing: fetched, row deleted", func(t *testing.T) {
		id := fake.CreateUser()
		upsertAt(t, r.pool, r.store, clock(t, r.pool), nil, profile(t, fake, id))
		fake.DeleteUser(id)
		job := r.hold(t, id, true)
		before := fake.Requests()
		r.release(t, job)
		if n := fake.Requests() - before; n != 1 {
			t.Errorf("%d requests to the provider, want 1", n)
		}
		if got := nameOf(t, r.pool, id); got != "<deleted>" {
			t.Errorf("row %q, want deleted", got)
		}
	})

	t.Run("deletion listed after its event: no request, row stays deleted", func(t *testing.T) {
		id := fake.CreateUser()
		upsertAt(t, r.pool, r.store, clock(t, r.pool), nil, profile(t, fake, id))
		fake.DeleteUser(id)
		job := r.hold(t, id, true)
		deleteAt(t, r.pool, r.store, clock(t, r.pool), id) // a fetch after the event found it gone
		before := fake.Requests()
		r.release(t, job)
		if n := fake.Requests() - before; n != 0 {
			t.Errorf("%d requests to the provider, want none", n)
		}
		if got := nameOf(t, r.pool, id); got != "<deleted>" {
			t.Errorf("row %q, want deleted", got)
		}
	})

	// A write that could not be ordered moves fetched_at past the job's
	// event without storing newer data: the job skips, but the resync its
	// transaction enqueued (created after it) fetches, so the row still
	// reaches the provider's state at the event.
	t.Run("ambiguous write after the event: its resync fetches", func(t *testing.T) {
		id := fake.CreateUser()
		old := profile(t, fake, id)
		t0 := clock(t, r.pool)
		fake.UpdateUser(id)
		job := r.hold(t, id, false) // the change's event
		var e time.Time
		if err := r.pool.QueryRow(t.Context(), `SELECT created_at FROM usersync.river_job WHERE id = $1`, job).Scan(&e); err != nil {
			t.Fatal(err)
		}
		upsertAt(t, r.pool, r.store, t0, nil, old) // stored: read before the change, stored after the event
		// A fetch begun after the event, overlapping the stored one, with
		// other content and no updated_at to order them: not applied.
		var resync []string
		if err := pgx.BeginFunc(t.Context(), r.pool, func(tx pgx.Tx) error {
			stale := old
			stale.Raw = []byte(`{"id":"` + id + `","display_name":"never stored"}`)
			res, err := r.store.Upsert(t.Context(), tx, []provider.User{stale}, e.Add(time.Microsecond), nil)
			if err != nil {
				return err
			}
			resync = res.Resync
			return jobs.EnqueueResyncs(t.Context(), tx, r.client, "stackauth", res.Resync)
		}); err != nil {
			t.Fatal(err)
		}
		if len(resync) != 1 {
			t.Fatalf("the overlapping write was not ambiguous (resync %v): the test's premise does not hold", resync)
		}
		if !holds(t, r, old) {
			t.Fatalf("row %s, want the old profile still", get(t, r.pool, id).raw)
		}
		want := profile(t, fake, id)
		for deadline := time.Now().Add(60 * time.Second); !holds(t, r, want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("row %s after 60 s, want the resync to write the provider's profile", get(t, r.pool, id).raw)
			}
		}
		before := fake.Requests()
		r.release(t, job)
		if n := fake.Requests() - before; n != 0 {
			t.Errorf("%d requests to the provider, want none: the resync fetched after the event", n)
		}
		if !holds(t, r, want) {
			t.Errorf("row %s, want the provider's profile", get(t, r.pool, id).raw)
		}
	})
}

// beginHook is a database whose next Begin, once armed, first runs hook.
type beginHook struct {
	worker.DB
	mu   sync.Mutex
	hook func(ctx context.Context)
}

func (b *beginHook) Begin(ctx context.Context) (pgx.Tx, error) {
	b.mu.Lock()
	h := b.hook
	b.hook = nil
	b.mu.Unlock()
	if h != nil {
		h(ctx)
	}
	return b.DB.Begin(ctx)
}

// An event that arrives while a job completes without a fetch, after the
// stored data's fetch began, marks the job dirty: the skip enqueues one
// more sync, which fetches the change.
func TestSkipFetchDirtyFollowUp(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	db := &beginHook{}
	r := startRunnerWith(t, fake.Provider(), false, 0, func(ws *river.Workers, d worker.Deps) {
		db.DB = d.DB
		d.DB = db
		worker.Register(ws, d)
	})
	id := fake.CreateUser()
	job := r.hold(t, id, false)
	listed := profile(t, fake, id)
	upsertAt(t, r.pool, r.store, clock(t, r.pool), nil, listed) // listed after the event: the job skips
	var marked int
	var markErr error
	db.mu.Lock()
	db.hook = func(ctx context.Context) {
		// The skip's transaction is about to begin: the user changes and
		// its event finds the job running.
		fake.UpdateUser(id)
		markErr = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			var err error
			marked, err = jobs.EnqueueSyncs(ctx, tx, r.client, "usersync", []jobs.UserRef{{Provider: "stackauth", UserID: id}})
			return err
		})
	}
	db.mu.Unlock()
	before := fake.Requests()
	r.release(t, job)
	if markErr != nil || marked != 1 {
		t.Fatalf("the event during the skip marked %d jobs (%v), want 1", marked, markErr)
	}
	want := profile(t, fake, id)
	for deadline := time.Now().Add(60 * time.Second); !holds(t, r, want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("row %s after 60 s, want the follow-up to write the changed profile", get(t, r.pool, id).raw)
		}
	}
	if n := fake.Requests() - before - 1; n != 1 { // less profile()'s own request
		t.Errorf("%d requests by the syncs, want 1 (the follow-up's)", n)
	}
}
