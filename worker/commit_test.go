package worker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/worker"
)

// Group commit (docs/jobs.md): syncs whose writes commit in one transaction
// keep each job's atomicity. A job that is no longer running when its batch
// completes it (rescued while it fetched) writes nothing and fails alone;
// the other jobs of the batch complete with their rows.
func TestGroupCommitJobNoLongerRunningFailsAlone(t *testing.T) {
	t.Parallel()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	a, b, c := fake.CreateUser(), fake.CreateUser(), fake.CreateUser()
	var r *runner
	hooked := &fetchHookID{Provider: fake.Provider(), before: func(ctx context.Context, id string) {
		if id != b {
			return
		}
		// River's rescuer returns the job to the queue while it fetches.
		if _, err := r.pool.Exec(ctx, `UPDATE usersync.river_job SET state = 'retryable', scheduled_at = now() + interval '1 hour'
			WHERE args->>'user_id' = $1 AND state = 'running'`, id); err != nil {
			t.Error(err)
		}
	}}
	r = startRunnerWith(t, hooked, false, 0, func(ws *river.Workers, d worker.Deps) { worker.RegisterBatched(ws, d, 3) })
	done := r.work(t, jobs.SyncUserArgs{Provider: "stackauth", UserID: a}, jobs.SyncUserArgs{Provider: "stackauth", UserID: b},
		jobs.SyncUserArgs{Provider: "stackauth", UserID: c})
	states := map[string]rivertype.JobState{}
	for _, j := range done {
		states[userOf(t, j)] = j.State
	}
	if states[a] != rivertype.JobStateCompleted || states[c] != rivertype.JobStateCompleted {
		t.Errorf("jobs of the batch: %v; want a and c completed", states)
	}
	if n := r.count(t, `SELECT count(*) FROM usersync.river_job WHERE args->>'user_id' = $1 AND state = 'completed'`, b); n != 0 {
		t.Errorf("the rescued job completed")
	}
	for id, want := range map[string]int{a: 1, b: 0, c: 1} {
		if n := r.count(t, `SELECT count(*) FROM neon_identity.users_sync WHERE id = $1`, id); n != want {
			t.Errorf("user %s: %d rows, want %d", id, n, want)
		}
	}
	if n := r.count(t, `SELECT count(*) FROM usersync.user_state WHERE user_id = $1`, b); n != 0 {
		t.Errorf("the rescued job's user has state: its write committed")
	}
}

// fetchHookID runs before ahead of each user fetch, with the user's id.
type fetchHookID struct {
	provider.Provider
	before func(ctx context.Context, id string)
}

func (h *fetchHookID) FetchUser(ctx context.Context, id string) (provider.User, error) {
	h.before(ctx, id)
	return h.Provider.FetchUser(ctx, id)
}

func userOf(t *testing.T, j *rivertype.JobRow) string {
	t.Helper()
	var a jobs.SyncUserArgs
	if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
		t.Fatal(err)
	}
	return a.UserID
}
