package worker_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/provider/workos/workosfake"
	"github.com/usersync/usersync/worker"
)

// runner is an in-process River client working usersync's jobs for one
// provider against a migrated database.
type runner struct {
	pool   *pgxpool.Pool
	store  *worker.Store
	client *river.Client[pgx.Tx]
	events <-chan *river.Event
}

// startRunner migrates a fresh database and runs workers for p, with the
// given tombstone horizon.
func startRunner(t *testing.T, p provider.Provider, hard bool, horizon time.Duration) *runner {
	t.Helper()
	return startRunnerWith(t, p, hard, horizon, worker.Register)
}

// startRunnerWith is startRunner with the workers that register adds.
func startRunnerWith(t *testing.T, p provider.Provider, hard bool, horizon time.Duration, register func(*river.Workers, worker.Deps)) *runner {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 12)
	plan := migrate.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: schemaSQL()}
	if err := migrate.Run(t.Context(), pool, plan, discard()); err != nil {
		t.Fatal(err)
	}
	target, err := worker.LoadTarget(t.Context(), pool, "neon_identity", "")
	if err != nil {
		t.Fatal(err)
	}
	store := worker.NewStore(worker.StoreConfig{Provider: p.Name(), InternalSchema: "usersync", Target: target, HardDelete: hard})
	workers := river.NewWorkers()
	register(workers, worker.Deps{DB: pool, Logger: discard(), TombstoneHorizon: horizon,
		Bindings: map[string]*worker.Binding{p.Name(): {Provider: p, Store: store}}})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            "usersync",
		Workers:           workers,
		Queues:            map[string]river.QueueConfig{jobs.SyncQueue(p.Name()): {MaxWorkers: 4}},
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            discard(),
		JobTimeout:        20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	t.Cleanup(cancel)
	if err := client.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(t.Context()) })
	return &runner{pool: pool, store: store, client: client, events: events}
}

// work enqueues jobs and waits until each has been worked once (completed,
// or failed on its first attempt), returning the job rows by id.
func (r *runner) work(t *testing.T, args ...river.JobArgs) map[int64]*rivertype.JobRow {
	t.Helper()
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		params[i] = river.InsertManyParams{Args: a}
	}
	res, err := r.client.InsertMany(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{}
	for _, j := range res {
		want[j.Job.ID] = true
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
	return done
}

func (r *runner) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := r.pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// docs/guarantees.md §12: syncs of ids the provider never had leave no permanent state:
// their recorded deletions are kept only until no fetch begun before them
// can still be running (the horizon), then removed by prune_user_state.
// Until then they still stop an older fetch from inserting the user.
func TestNeverExistingIdsLeaveNoState(t *testing.T) {
	for _, hard := range []bool{false, true} {
		name := "soft"
		if hard {
			name = "hard"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := workosfake.New(workosfake.Options{})
			t.Cleanup(fake.Close)
			r := startRunner(t, fake.Provider(), hard, time.Millisecond)
			live, gone := fake.CreateUser(), fake.CreateUser()
			const n = 200
			var args []river.JobArgs
			ghosts := make([]string, n)
			for i := range ghosts {
				ghosts[i] = "user_01GHOST" + strings.Repeat("0", 10) + string(rune('A'+i%26)) + string(rune('A'+i/26))
				args = append(args, jobs.SyncUserArgs{Provider: "workos", UserID: ghosts[i]})
			}
			args = append(args, jobs.SyncUserArgs{Provider: "workos", UserID: live}, jobs.SyncUserArgs{Provider: "workos", UserID: gone})
			for _, j := range r.work(t, args...) {
				if j.State != rivertype.JobStateCompleted {
					t.Fatalf("job %d %s: %s %v", j.ID, j.EncodedArgs, j.State, j.Errors)
				}
			}
			fake.DeleteUser(gone)
			if j := r.work(t, jobs.SyncUserArgs{Provider: "workos", UserID: gone}); len(j) != 1 {
				t.Fatal("deletion sync not worked")
			}
			countGhosts := func() int {
				return r.count(t, `SELECT count(*) FROM usersync.user_state WHERE provider = 'workos' AND user_id = ANY($1)`, ghosts)
			}
			if got := countGhosts(); got != n {
				t.Fatalf("%d state rows for the %d never-existing ids before the horizon, want %d (they guard against older fetches)", got, n, n)
			}

			// Within the horizon, a fetch that began before a ghost's
			// not-found (and saw it exist, say briefly) cannot insert it.
			ghostToken := r.tokenOf(t, ghosts[0])
			late := user(ghosts[0], "Brief", nil)
			res := write(t, r.pool, func(tx pgx.Tx) (worker.Result, error) {
				return r.store.Upsert(t.Context(), tx, []provider.User{late}, ghostToken.Add(-time.Millisecond), nil)
			})
			if res.Changed() != 0 || get(t, r.pool, ghosts[0]) != nil {
				t.Fatalf("an older fetch inserted a user the provider said does not exist: %+v", res)
			}
			if removed, err := r.store.Prune(t.Context(), r.pool, time.Hour); err != nil || removed != 0 {
				t.Fatalf("prune with a 1 h horizon removed %d (%v), want 0", removed, err)
			}

			// After the horizon (1 ms here), prune_user_state removes them.
			for _, j := range r.work(t, jobs.PruneUserStateArgs{Provider: "workos"}) {
				if j.State != rivertype.JobStateCompleted {
					t.Fatalf("prune job: %s %v", j.State, j.Errors)
				}
			}
			if got := countGhosts(); got != 0 {
				t.Fatalf("%d state rows left for never-existing ids after the horizon, want 0", got)
			}
			// Users with a row keep their state (the deleted one too, in
			// soft mode: its row remembers it); a hard-deleted user's goes.
			wantGone := 1
			if hard {
				wantGone = 0
			}
			if got := r.count(t, `SELECT count(*) FROM usersync.user_state WHERE user_id = $1`, live); got != 1 {
				t.Errorf("live user's state rows: %d, want 1", got)
			}
			if got := r.count(t, `SELECT count(*) FROM usersync.user_state WHERE user_id = $1`, gone); got != wantGone {
				t.Errorf("deleted user's state rows: %d, want %d", got, wantGone)
			}
			if got := r.count(t, `SELECT count(*) FROM usersync.user_state WHERE tombstone`); got != 0 {
				t.Errorf("%d state rows still marked after pruning, want 0", got)
			}
		})
	}
}

func (r *runner) tokenOf(t *testing.T, id string) time.Time {
	t.Helper()
	var tok time.Time
	if err := r.pool.QueryRow(t.Context(), `SELECT fetched_at FROM usersync.user_state WHERE user_id = $1`, id).Scan(&tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// idProxy forwards to a Stack Auth fake, answering every user lookup with
// the profile of user real, whose id it reports as answer.
func idProxy(t *testing.T, fake *stackfake.Fake, real, answer string) provider.Provider {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, fake.URL()+"/api/v1/users/"+real, nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var obj map[string]any
		if json.Unmarshal(body, &obj) == nil && obj["id"] != nil {
			obj["id"] = answer
			body, _ = json.Marshal(obj)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	o := fake.Options()
	c, err := stackauth.New(stackauth.Config{ProjectID: o.ProjectID, SecretServerKey: o.SecretServerKey, WebhookSecret: o.WebhookSecret, APIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// docs/data-model.md, issue 10: the row is stored under the id the event named. Stack
// Auth compares ids case-insensitively: an answer for the same id spelled
// in another case is stored under the event's spelling (one row, also in
// raw_json); an answer about another user fails the job and writes nothing.
func TestSyncStoresTheIdTheEventNamed(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	real := fake.CreateUser()

	t.Run("case", func(t *testing.T) {
		r := startRunner(t, idProxy(t, fake, real, strings.ToUpper(real)), false, 0)
		for _, j := range r.work(t, jobs.SyncUserArgs{Provider: "stackauth", UserID: real}) {
			if j.State != rivertype.JobStateCompleted {
				t.Fatalf("job: %s %v", j.State, j.Errors)
			}
		}
		if n := r.count(t, `SELECT count(*) FROM neon_identity.users_sync`); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
		if n := r.count(t, `SELECT count(*) FROM neon_identity.users_sync WHERE id = $1 AND raw_json->>'id' = $1`, real); n != 1 {
			t.Fatalf("the row is not stored under the asked id %q", real)
		}
		if n := r.count(t, `SELECT count(*) FROM usersync.user_state WHERE user_id = $1`, real); n != 1 {
			t.Fatalf("no state under the asked id %q", real)
		}
	})
	t.Run("other user", func(t *testing.T) {
		other := fake.CreateUser()
		r := startRunner(t, idProxy(t, fake, real, real), false, 0)
		for _, j := range r.work(t, jobs.SyncUserArgs{Provider: "stackauth", UserID: other}) {
			if j.State == rivertype.JobStateCompleted || len(j.Errors) == 0 || !strings.Contains(j.Errors[0].Error, real) {
				t.Fatalf("job: %s %v, want it failed with an error naming the user answered", j.State, j.Errors)
			}
		}
		if n := r.count(t, `SELECT count(*) FROM neon_identity.users_sync`) + r.count(t, `SELECT count(*) FROM usersync.user_state`); n != 0 {
			t.Fatalf("%d rows written for a mismatched answer, want 0", n)
		}
	})
}
