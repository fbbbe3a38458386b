package jobs_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/jobs"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

// enqueuer is a migrated database of its own and an insert-only River
// client on it, as the webhook path has.
type enqueuer struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func newEnqueuer(t *testing.T) *enqueuer {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	schema, err := os.ReadFile("../schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	plan := migrate.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: string(schema)}
	if err := migrate.Run(t.Context(), pool, plan, logger); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "usersync", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return &enqueuer{pool: pool, client: client}
}

// enqueue runs EnqueueSyncs in a transaction of its own and commits it.
func (e *enqueuer) enqueue(t *testing.T, refs ...jobs.UserRef) int {
	t.Helper()
	var marked int
	err := pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
		var err error
		marked, err = jobs.EnqueueSyncs(t.Context(), tx, e.client, "usersync", refs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return marked
}

type jobRow struct {
	id       int64
	userID   string
	state    string
	metadata map[string]any
	raw      []byte
}

// syncJobs returns the sync_user jobs, oldest first.
func (e *enqueuer) syncJobs(t *testing.T) []jobRow {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT id, args->>'user_id', state::text, metadata FROM usersync.river_job WHERE kind = 'sync_user' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var j jobRow
		if err := rows.Scan(&j.id, &j.userID, &j.state, &j.raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j.raw, &j.metadata); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A burst of events coalesces into one waiting job per user, in the
// provider's sync queue, in a stable (sorted) insert order.
func TestEnqueueSyncsCoalesces(t *testing.T) {
	t.Parallel()
	e := newEnqueuer(t)
	e.enqueue(t, jobs.UserRef{Provider: "stackauth", UserID: "b"}, jobs.UserRef{Provider: "stackauth", UserID: "a"},
		jobs.UserRef{Provider: "stackauth", UserID: "b"})
	e.enqueue(t, jobs.UserRef{Provider: "stackauth", UserID: "a"})
	got := e.syncJobs(t)
	if len(got) != 2 || got[0].userID != "a" || got[1].userID != "b" {
		t.Fatalf("jobs %+v, want one for a, then one for b", got)
	}
	var queue string
	if err := e.pool.QueryRow(t.Context(), `SELECT string_agg(DISTINCT queue, ',') FROM usersync.river_job`).Scan(&queue); err != nil || queue != jobs.SyncQueue("stackauth") {
		t.Errorf("queues %q (%v), want %s", queue, err, jobs.SyncQueue("stackauth"))
	}
}

// The waiting job records the kind of its user's latest event, also when
// later events coalesce into it, in one batch or several.
func TestEnqueueSyncsRecordsTheLatestEvent(t *testing.T) {
	t.Parallel()
	e := newEnqueuer(t)
	const u = "user_1"
	wantDeleted := func(step string, want bool) {
		t.Helper()
		got := e.syncJobs(t)
		if len(got) != 1 {
			t.Fatalf("%s: %d jobs, want 1", step, len(got))
		}
		if jobs.LastEventWasDeletion(got[0].raw) != want {
			t.Fatalf("%s: metadata %s, deletion want %v", step, got[0].raw, want)
		}
	}
	e.enqueue(t, jobs.UserRef{Provider: "clerk", UserID: u})
	wantDeleted("change", false)
	e.enqueue(t, jobs.UserRef{Provider: "clerk", UserID: u, Deleted: true})
	wantDeleted("then a deletion", true)
	e.enqueue(t, jobs.UserRef{Provider: "clerk", UserID: u})
	wantDeleted("then a change", false)
	e.enqueue(t, jobs.UserRef{Provider: "clerk", UserID: u, Deleted: true}, jobs.UserRef{Provider: "clerk", UserID: u})
	wantDeleted("deletion and change in one batch", false)
	e.enqueue(t, jobs.UserRef{Provider: "clerk", UserID: u}, jobs.UserRef{Provider: "clerk", UserID: u, Deleted: true})
	wantDeleted("change and deletion in one batch", true)
}

// An event for a user whose job is running marks that job dirty instead of
// inserting another; a finalized job does not stop a new one.
func TestEnqueueSyncsMarksARunningJobDirty(t *testing.T) {
	t.Parallel()
	e := newEnqueuer(t)
	ref := jobs.UserRef{Provider: "workos", UserID: "user_01ABC"}
	if n := e.enqueue(t, ref); n != 0 {
		t.Fatalf("marked %d on first insert", n)
	}
	// Start it as a River producer does.
	if _, err := e.pool.Exec(t.Context(), `UPDATE usersync.river_job SET state = 'running', attempt = 1, attempted_at = now()`); err != nil {
		t.Fatal(err)
	}
	if n := e.enqueue(t, ref); n != 1 {
		t.Fatalf("marked %d running jobs, want 1", n)
	}
	got := e.syncJobs(t)
	if len(got) != 1 || got[0].metadata[jobs.DirtyKey] == nil {
		t.Fatalf("jobs %+v, want the running one marked %s", got, jobs.DirtyKey)
	}
	if _, err := e.pool.Exec(t.Context(), `UPDATE usersync.river_job SET state = 'completed', finalized_at = now()`); err != nil {
		t.Fatal(err)
	}
	if n := e.enqueue(t, ref); n != 0 {
		t.Fatalf("marked %d jobs after completion, want 0", n)
	}
	if got := e.syncJobs(t); len(got) != 2 || got[1].state != "available" {
		t.Fatalf("jobs %+v, want a new available job after the completed one", got)
	}
}

// Resyncs are not unique: they never coalesce into (or wait for) a job
// already there, and after a deletion they carry it.
func TestEnqueueResyncsAreNotUnique(t *testing.T) {
	t.Parallel()
	e := newEnqueuer(t)
	e.enqueue(t, jobs.UserRef{Provider: "stackauth", UserID: "a"})
	err := pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
		if err := jobs.EnqueueResyncs(t.Context(), tx, e.client, "stackauth", []string{"a"}); err != nil {
			return err
		}
		return jobs.EnqueueResyncsAfterDeletion(t.Context(), tx, e.client, "stackauth", []string{"a"})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := e.syncJobs(t)
	if len(got) != 3 {
		t.Fatalf("%d jobs for a, want 3", len(got))
	}
	if jobs.LastEventWasDeletion(got[1].raw) || !jobs.LastEventWasDeletion(got[2].raw) {
		t.Errorf("resync metadata %s and %s: want only the second to carry the deletion", got[1].raw, got[2].raw)
	}
}

// Organization events coalesce into one sync_organization job per
// organization; an organization's deletion event marks its job to expect
// a deletion, and membership events that trail it do not unmark it.
func TestEnqueueOrganizationSyncsLastEvent(t *testing.T) {
	t.Parallel()
	e := newEnqueuer(t)
	enqueue := func(refs ...jobs.OrgRef) {
		t.Helper()
		if err := pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
			_, err := jobs.EnqueueOrganizationSyncs(t.Context(), tx, e.client, "usersync", refs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	lastEvent := func(org string) (n int, last *string) {
		t.Helper()
		if err := e.pool.QueryRow(t.Context(), `SELECT count(*), max(metadata->>'usersync_last_event') FROM usersync.river_job
			WHERE kind = 'sync_organization' AND args->>'organization_id' = $1`, org).Scan(&n, &last); err != nil {
			t.Fatal(err)
		}
		return n, last
	}
	enqueue(jobs.OrgRef{Provider: "clerk", OrganizationID: "org_a"}, jobs.OrgRef{Provider: "clerk", OrganizationID: "org_b"})
	enqueue(jobs.OrgRef{Provider: "clerk", OrganizationID: "org_a", Deleted: true}, jobs.OrgRef{Provider: "clerk", OrganizationID: "org_a"})
	enqueue(jobs.OrgRef{Provider: "clerk", OrganizationID: "org_a"}, jobs.OrgRef{Provider: "clerk", OrganizationID: "org_b"})
	if n, last := lastEvent("org_a"); n != 1 || last == nil || *last != jobs.LastEventDeleted {
		t.Errorf("org_a: %d jobs, last event %v; want 1 job expecting a deletion", n, last)
	}
	if n, last := lastEvent("org_b"); n != 1 || last != nil {
		t.Errorf("org_b: %d jobs, last event %v; want 1 job, no deletion", n, last)
	}
}
