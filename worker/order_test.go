package worker_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/worker"
)

// versioned is a user with the provider's own updated_at (as Clerk and
// WorkOS give), at updated milliseconds.
func versioned(id, name string, updated int64) provider.User {
	u := user(id, name, map[string]any{"updated_at": updated})
	at := time.UnixMilli(updated).UTC()
	u.UpdatedAt = &at
	return u
}

// upsertAt writes users fetched from token on, in a transaction of its own.
func upsertAt(t *testing.T, pool *pgxpool.Pool, s *worker.Store, token time.Time, runID *int64, users ...provider.User) worker.Result {
	t.Helper()
	return write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, users, token, runID)
	})
}

func deleteAt(t *testing.T, pool *pgxpool.Pool, s *worker.Store, token time.Time, id string) worker.Result {
	t.Helper()
	return write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.MarkDeleted(t.Context(), tx, id, token)
	})
}

// expect checks a write's result: changed rows, stale count, resyncs.
func expect(t *testing.T, what string, got worker.Result, changed, stale int, resync ...string) {
	t.Helper()
	if got.Changed() != changed || got.Stale != stale || !slices.Equal(got.Resync, resync) {
		t.Fatalf("%s: %+v, want %d changed, %d stale, resync %v", what, got, changed, stale, resync)
	}
}

func nameOf(t *testing.T, pool *pgxpool.Pool, id string) string {
	t.Helper()
	r := get(t, pool, id)
	switch {
	case r == nil:
		return "<no row>"
	case r.deletedAt != nil:
		return "<deleted>"
	case r.name == nil:
		return "<null>"
	}
	return *r.name
}

// docs/guarantees.md §3: fetches that overlap in time (the second began before the
// first's data was stored) are ordered by the provider's updated_at where
// both have one: applied only if strictly newer, nothing to do if the same.
func TestOverlapOrderedByProviderUpdatedAt(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false)
	// The stored fetch began 10 s ago and is stored now: every token in
	// between overlaps it.
	base := clock(t, pool).Add(-10 * time.Second)
	expect(t, "first write", upsertAt(t, pool, s, base, nil, versioned("u1", "A", 100)), 1, 0)

	expect(t, "overlapping write, newer updated_at", upsertAt(t, pool, s, base.Add(time.Second), nil, versioned("u1", "B", 200)), 1, 0)
	if n := nameOf(t, pool, "u1"); n != "B" {
		t.Fatalf("after the newer overlapping write: %s, want B", n)
	}
	expect(t, "overlapping write, older updated_at", upsertAt(t, pool, s, base.Add(2*time.Second), nil, versioned("u1", "Old", 150)), 0, 1)
	expect(t, "overlapping write, same version", upsertAt(t, pool, s, base.Add(3*time.Second), nil, versioned("u1", "B", 200)), 0, 0)
	if n := nameOf(t, pool, "u1"); n != "B" {
		t.Fatalf("older or equal overlapping writes changed the row: %s, want B", n)
	}
	// The same updated_at with other content does not say which is newer.
	expect(t, "overlapping write, equal updated_at, other content",
		upsertAt(t, pool, s, base.Add(4*time.Second), nil, versioned("u1", "C", 200)), 0, 1, "u1")
	if n := nameOf(t, pool, "u1"); n != "B" {
		t.Fatalf("an unordered write was applied: %s, want B", n)
	}
	// A fetch begun after the stored transaction ran is plainly newer.
	expect(t, "later write", upsertAt(t, pool, s, clock(t, pool), nil, versioned("u1", "D", 300)), 1, 0)
	if n := nameOf(t, pool, "u1"); n != "D" {
		t.Fatalf("later write: %s, want D", n)
	}
}

// docs/guarantees.md §3: without the provider's updated_at (Stack Auth), an overlapping
// write is not applied: the stored row stays as it is and a fresh sync is
// requested. A write of the same content needs nothing.
func TestOverlapWithoutUpdatedAtIsNotApplied(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false)
	base := clock(t, pool).Add(-10 * time.Second)
	expect(t, "first write", upsertAt(t, pool, s, base, nil, user("u1", "A", nil)), 1, 0)

	expect(t, "overlapping write", upsertAt(t, pool, s, base.Add(time.Second), nil, user("u1", "B", nil)), 0, 1, "u1")
	if n := nameOf(t, pool, "u1"); n != "A" {
		t.Fatalf("an unordered overlapping write was applied: %s, want A", n)
	}
	expect(t, "overlapping write of the same content", upsertAt(t, pool, s, base.Add(2*time.Second), nil, user("u1", "A", nil)), 0, 0)
	// Began before the stored fetch: skipped, and a fresh sync requested
	// (its read may still have been the later one).
	expect(t, "write begun earlier", upsertAt(t, pool, s, base.Add(-time.Second), nil, user("u1", "C", nil)), 0, 1, "u1")
	if n := nameOf(t, pool, "u1"); n != "A" {
		t.Fatalf("row = %s, want A", n)
	}
	// The fresh sync begins after everything stored: it decides.
	expect(t, "resync", upsertAt(t, pool, s, clock(t, pool), nil, user("u1", "B", nil)), 1, 0)
	if n := nameOf(t, pool, "u1"); n != "B" {
		t.Fatalf("after the resync: %s, want B", n)
	}
}

// docs/guarantees.md §3; docs/data-model.md: a deletion carries no updated_at, so a deletion that
// overlaps stored data, or a profile that overlaps a stored deletion, is
// not applied: a deleted user never comes back, even briefly, and a live
// one is not deleted on a guess. A fresh sync decides.
func TestOverlappingDeletion(t *testing.T) {
	for _, hard := range []bool{false, true} {
		t.Run(fmt.Sprintf("hard=%v", hard), func(t *testing.T) {
			t.Parallel()
			pool := setup(t, "")
			s := newStore(t, pool, hard)
			base := clock(t, pool).Add(-10 * time.Second)
			expect(t, "first write", upsertAt(t, pool, s, base, nil, versioned("u1", "A", 100)), 1, 0)

			expect(t, "overlapping deletion", deleteAt(t, pool, s, base.Add(time.Second), "u1"), 0, 1, "u1")
			if n := nameOf(t, pool, "u1"); n != "A" {
				t.Fatalf("an overlapping deletion was applied: %s", n)
			}
			del := clock(t, pool)
			expect(t, "later deletion", deleteAt(t, pool, s, del, "u1"), 1, 0)

			// Fetches begun at del overlap the stored deletion (its
			// transaction ran after del): even a newer updated_at does not
			// order a profile against a deletion.
			expect(t, "profile overlapping the deletion", upsertAt(t, pool, s, del, nil, versioned("u1", "A2", 200)), 0, 1, "u1")
			want := "<deleted>"
			if hard {
				want = "<no row>"
			}
			if n := nameOf(t, pool, "u1"); n != want {
				t.Fatalf("a deleted user came back: %s", n)
			}
			expect(t, "deletion overlapping the deletion", deleteAt(t, pool, s, del, "u1"), 0, 0)
			expect(t, "deletion begun earlier (the same state)", deleteAt(t, pool, s, base.Add(2*time.Second), "u1"), 0, 0)
			// Only the provider saying the user exists, in a fetch begun
			// later, brings it back.
			expect(t, "later profile", upsertAt(t, pool, s, clock(t, pool), nil, versioned("u1", "A2", 200)), 1, 0)
			if n := nameOf(t, pool, "u1"); n != "A2" {
				t.Fatalf("after the later profile: %s, want A2", n)
			}
		})
	}
}

// docs/guarantees.md §3, §5: a backfill page obeys the same rule per user, and still
// records that its run listed the user; deletion inference at the end of
// the run applies only to users whose stored data was written before the
// run started, and an older fetch cannot undo an inferred deletion.
func TestBackfillPageAndInferenceOverlapping(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false)
	expect(t, "u5 before the run", upsertAt(t, pool, s, clock(t, pool), nil, user("u5", "E", nil)), 1, 0)
	start := clock(t, pool)
	// Syncs begun before the run started, stored after it started.
	expect(t, "u1 sync", upsertAt(t, pool, s, start.Add(-time.Second), nil, user("u1", "A", nil)), 1, 0)
	expect(t, "u4 sync", upsertAt(t, pool, s, start.Add(-time.Second), nil, user("u4", "D", nil)), 1, 0)

	runID := int64(5)
	page := upsertAt(t, pool, s, start, &runID, user("u1", "A-changed", nil), user("u3", "C", nil))
	if page.Inserted != 1 || page.Updated != 0 || page.Stale != 1 || !slices.Equal(page.Resync, []string{"u1"}) {
		t.Fatalf("page: %+v, want u3 inserted and u1 not applied, for a resync", page)
	}
	if n := nameOf(t, pool, "u1"); n != "A" {
		t.Fatalf("page overwrote u1 with an unordered profile: %s", n)
	}
	del := write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.InferDeletions(t.Context(), tx, runID, start) })
	if del.Deleted != 1 || !slices.Equal(del.Resync, []string{"u4"}) {
		t.Fatalf("inference: %+v, want u5 deleted and u4 left for a resync", del)
	}
	for id, want := range map[string]string{"u1": "A", "u3": "C", "u4": "D", "u5": "<deleted>"} {
		if n := nameOf(t, pool, id); n != want {
			t.Errorf("%s after the run: %s, want %s", id, n, want)
		}
	}
	// A sync begun before the run started, finishing now, cannot undo the
	// inferred deletion.
	expect(t, "late sync of u5", upsertAt(t, pool, s, start.Add(-time.Millisecond), nil, user("u5", "E", nil)), 0, 1, "u5")
	if n := nameOf(t, pool, "u5"); n != "<deleted>" {
		t.Fatalf("a late sync brought back u5: %s", n)
	}
}

// docs/data-model.md; README "Configuration": the notification channel is a bind parameter, so any
// channel name works, whatever the session's string-literal settings.
func TestNotifyChannelIsABindParameter(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	const channel = `odd\chan'nel "x`
	target, err := worker.LoadTarget(t.Context(), pool, "neon_identity", channel)
	if err != nil {
		t.Fatal(err)
	}
	s := worker.NewStore(worker.StoreConfig{Provider: "stackauth", InternalSchema: "usersync", Target: target})
	listener, err := pgx.Connect(t.Context(), pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(t.Context())
	if _, err := listener.Exec(t.Context(), "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	// A second listener on the channel the old code produced from a
	// literal with backslash escapes enabled: it must hear nothing.
	if _, err := listener.Exec(t.Context(), "LISTEN "+pgx.Identifier{`oddchan'nel "x`}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	offWrite := func(fn func(tx pgx.Tx) (worker.Result, error)) worker.Result {
		return write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			if _, err := tx.Exec(t.Context(), "SET LOCAL standard_conforming_strings = off"); err != nil {
				return worker.Result{}, err
			}
			return fn(tx)
		})
	}
	tok := clock(t, pool)
	expect(t, "insert", offWrite(func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "A", nil)}, tok, nil)
	}), 1, 0)
	tok = clock(t, pool)
	expect(t, "delete", offWrite(func(tx pgx.Tx) (worker.Result, error) { return s.MarkDeleted(t.Context(), tx, "u1", tok) }), 1, 0)
	for _, op := range []string{"insert", "delete"} {
		n, err := listener.WaitForNotification(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ ID, Op string }
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			t.Fatal(err)
		}
		if n.Channel != channel || p.ID != "u1" || p.Op != op {
			t.Fatalf("notification on %q: %s, want %q on %q", n.Channel, n.Payload, op, channel)
		}
	}
}

// userStateV1 is usersync.user_state as version 1 of the internal tables
// created it.
const userStateV1 = `CREATE SCHEMA usersync;
CREATE TABLE usersync.user_state (
  provider   text        NOT NULL,
  user_id    text        NOT NULL,
  fetched_at timestamptz NOT NULL DEFAULT '-infinity',
  fetched_until timestamptz NOT NULL DEFAULT '-infinity',
  resync     boolean     NOT NULL DEFAULT false,
  seen_run   bigint,
  PRIMARY KEY (provider, user_id)
);
CREATE TABLE usersync.usersync_migration (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO usersync.usersync_migration (version) VALUES (1);
INSERT INTO usersync.user_state (provider, user_id, fetched_at, fetched_until) VALUES
  ('stackauth', 'ghost', now() - interval '2 hours', now() - interval '1 hour'),
  ('stackauth', 'u1', now() - interval '2 hours', now() - interval '1 hour');`

// `usersync migrate` upgrades a version 1 database in place: the new
// columns appear with defaults under which old rows order safely, the
// state left for an id without a row is pruned, and running it again
// changes nothing.
func TestMigrateUpgradesVersion1State(t *testing.T) {
	t.Parallel()
	pool := setup(t, userStateV1)
	plan := migrate.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: schemaSQL()}
	if err := migrate.Run(t.Context(), pool, plan, discard()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if err := migrate.Check(t.Context(), pool, plan); err != nil {
		t.Fatalf("check after the upgrade: %v", err)
	}
	var v int
	if err := pool.QueryRow(t.Context(), `SELECT max(version) FROM usersync.usersync_migration`).Scan(&v); err != nil || v != migrate.Version {
		t.Fatalf("version %d (%v), want %d", v, err, migrate.Version)
	}
	s := newStore(t, pool, false)
	if _, err := pool.Exec(t.Context(), `INSERT INTO neon_identity.users_sync (raw_json, id, name) VALUES ('{"id":"u1"}', 'u1', 'Old')`); err != nil {
		t.Fatal(err)
	}
	// A write overlapping what version 1 stored cannot be ordered by
	// updated_at (version 1 did not keep it): not applied, resynced.
	var fa time.Time
	if err := pool.QueryRow(t.Context(), `SELECT fetched_at FROM usersync.user_state WHERE user_id = 'u1'`).Scan(&fa); err != nil {
		t.Fatal(err)
	}
	expect(t, "overlapping write on a version 1 row", upsertAt(t, pool, s, fa.Add(time.Second), nil, versioned("u1", "New", 100)), 0, 1, "u1")
	removed, err := s.Prune(t.Context(), pool, worker.DefaultTombstoneHorizon)
	if err != nil || removed != 1 {
		t.Fatalf("prune after the upgrade removed %d (%v), want 1 (the state of an id without a row)", removed, err)
	}
	var ids []string
	rows, _ := pool.Query(t.Context(), `SELECT user_id FROM usersync.user_state ORDER BY 1`)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(ids, []string{"u1"}) {
		t.Fatalf("state rows after pruning: %v (%v), want [u1]", ids, err)
	}
	expect(t, "later write", upsertAt(t, pool, s, clock(t, pool), nil, versioned("u1", "New", 100)), 1, 0)
}
