package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/worker"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

var schemaSQL = sync.OnceValue(func() string {
	b, err := os.ReadFile("../schema.sql")
	if err != nil {
		panic(err)
	}
	return string(b)
})

// setup migrates a fresh database; before, if set, runs first (e.g. to
// create Neon's own table).
func setup(t *testing.T, before string) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	if before != "" {
		if _, err := pool.Exec(t.Context(), before); err != nil {
			t.Fatal(err)
		}
	}
	plan := migrate.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: schemaSQL()}
	if err := migrate.Run(t.Context(), pool, plan, discard()); err != nil {
		t.Fatal(err)
	}
	return pool
}

func newStore(t *testing.T, pool *pgxpool.Pool, hard bool, redact ...string) *worker.Store {
	t.Helper()
	target, err := worker.LoadTarget(t.Context(), pool, "neon_identity", "neon_identity_users_sync")
	if err != nil {
		t.Fatal(err)
	}
	return worker.NewStore(worker.StoreConfig{Provider: "stackauth", InternalSchema: "usersync", Target: target, HardDelete: hard, Redact: redact})
}

func user(id, name string, extra map[string]any) provider.User {
	obj := map[string]any{"id": id, "display_name": name, "primary_email": id + "@example.com", "signed_up_at_millis": 1700000000123}
	for k, v := range extra {
		obj[k] = v
	}
	raw, _ := json.Marshal(obj)
	created := time.UnixMilli(1700000000123).UTC()
	email := id + "@example.com"
	return provider.User{ID: id, Name: &name, Email: &email, CreatedAt: &created, Raw: raw}
}

func write(t *testing.T, pool *pgxpool.Pool, fn func(tx pgx.Tx) (worker.Result, error)) worker.Result {
	t.Helper()
	var res worker.Result
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		var err error
		res, err = fn(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// clock is the database's current time: the token of a fetch beginning now.
func clock(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var now time.Time
	if err := pool.QueryRow(t.Context(), "SELECT clock_timestamp()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

type row struct {
	name      *string
	raw       map[string]any
	deletedAt *time.Time
	updatedAt *time.Time
	xmin      uint32
}

func get(t *testing.T, pool *pgxpool.Pool, id string) *row {
	t.Helper()
	var r row
	var raw []byte
	err := pool.QueryRow(t.Context(), `SELECT name, raw_json, deleted_at, updated_at, xmin::text::bigint FROM neon_identity.users_sync WHERE id = $1`, id).
		Scan(&r.name, &raw, &r.deletedAt, &r.updatedAt, &r.xmin)
	if err == pgx.ErrNoRows {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(raw, &r.raw)
	return &r
}

func TestUpsertSkipsDataFetchedBeforeStoredData(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false)
	t0 := time.Now()
	newer := write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "New", nil)}, t0.Add(time.Second), nil)
	})
	if newer.Inserted != 1 {
		t.Fatalf("first write: %+v", newer)
	}
	// A job that began fetching earlier finishes later: it must not win.
	stale := write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "Old", nil)}, t0, nil)
	})
	if stale.Changed() != 0 || stale.Stale != 1 {
		t.Fatalf("stale write: %+v, want no change and 1 stale", stale)
	}
	if r := get(t, pool, "u1"); *r.name != "New" {
		t.Fatalf("stale data overwrote newer: name %q", *r.name)
	}
	// A stale "user not found" must not delete a user known to exist later.
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.MarkDeleted(t.Context(), tx, "u1", t0) })
	if r := get(t, pool, "u1"); r.deletedAt != nil {
		t.Fatal("stale deletion applied")
	}
}

func TestUnchangedWriteIsNoOpAndNotifiesOnlyChanges(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false)
	conn, err := pgx.Connect(t.Context(), pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "LISTEN neon_identity_users_sync"); err != nil {
		t.Fatal(err)
	}
	up := func(name string) worker.Result {
		tok := clock(t, pool)
		return write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			return s.Upsert(t.Context(), tx, []provider.User{user("u1", name, nil)}, tok, nil)
		})
	}
	up("A")
	before := get(t, pool, "u1")
	if res := up("A"); res.Changed() != 0 {
		t.Fatalf("unchanged write reported a change: %+v", res)
	}
	after := get(t, pool, "u1")
	if before.xmin != after.xmin || !before.updatedAt.Equal(*after.updatedAt) {
		t.Fatal("unchanged write created a new row version")
	}
	up("B")
	for range 2 {
		tok := clock(t, pool)
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.MarkDeleted(t.Context(), tx, "u1", tok) })
	}

	want := []string{`{"id" : "u1", "op" : "insert"}`, `{"id" : "u1", "op" : "update"}`, `{"id" : "u1", "op" : "delete"}`}
	for i, w := range want {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		var got, exp map[string]string
		_ = json.Unmarshal([]byte(n.Payload), &got)
		_ = json.Unmarshal([]byte(w), &exp)
		if got["id"] != exp["id"] || got["op"] != exp["op"] {
			t.Fatalf("notification %d = %s, want %s", i, n.Payload, w)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if n, err := conn.WaitForNotification(ctx); err == nil {
		t.Fatalf("unexpected extra notification %s (no-op writes must not notify)", n.Payload)
	}
}

func TestRedactionAndRestoreAfterDeletion(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false, "server_metadata")
	tok := time.Now()
	u := user("u1", "Ann", map[string]any{"server_metadata": map[string]any{"secret": "x"}})
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.Upsert(t.Context(), tx, []provider.User{u}, tok, nil) })
	r := get(t, pool, "u1")
	if _, ok := r.raw["server_metadata"]; ok {
		t.Fatal("redacted key stored")
	}
	if r.raw["display_name"] != "Ann" || *r.name != "Ann" {
		t.Fatalf("row = %+v", r)
	}
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.MarkDeleted(t.Context(), tx, "u1", tok.Add(time.Second))
	})
	if r := get(t, pool, "u1"); r.deletedAt == nil || r.raw["display_name"] != "Ann" {
		t.Fatalf("soft delete must keep the last profile and set deleted_at: %+v", r)
	}
	// A fresh fetch saying the user exists again restores it.
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{u}, tok.Add(2*time.Second), nil)
	})
	if r := get(t, pool, "u1"); r.deletedAt != nil {
		t.Fatal("user not restored by a fresh fetch")
	}
}

func TestHardDelete(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, true)
	tok := time.Now()
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "Ann", nil)}, tok, nil)
	})
	res := write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.MarkDeleted(t.Context(), tx, "u1", tok.Add(time.Second))
	})
	if res.Deleted != 1 || get(t, pool, "u1") != nil {
		t.Fatalf("hard delete: %+v", res)
	}
	// A late job holding data fetched before the deletion cannot bring it back.
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "Ann", nil)}, tok.Add(500*time.Millisecond), nil)
	})
	if get(t, pool, "u1") != nil {
		t.Fatal("late data resurrected a hard-deleted user")
	}
}

// Neon's table computes id, name, email and created_at from raw_json.
const neonTable = `CREATE SCHEMA neon_identity;
CREATE TABLE neon_identity.users_sync (
    raw_json   jsonb NOT NULL,
    id         text GENERATED ALWAYS AS ((raw_json ->> 'id'::text)) STORED NOT NULL,
    name       text GENERATED ALWAYS AS ((raw_json ->> 'display_name'::text)) STORED,
    email      text GENERATED ALWAYS AS ((raw_json ->> 'primary_email'::text)) STORED,
    created_at timestamp with time zone GENERATED ALWAYS AS
               (to_timestamp((trunc((((raw_json ->> 'signed_up_at_millis'::text))::bigint)::double precision)
                              / (1000)::double precision))) STORED,
    updated_at timestamp with time zone,
    deleted_at timestamp with time zone
);
ALTER TABLE ONLY neon_identity.users_sync ADD CONSTRAINT users_sync_pkey PRIMARY KEY (id);
CREATE INDEX users_sync_deleted_at_idx ON neon_identity.users_sync USING btree (deleted_at);`

func TestNeonGeneratedColumns(t *testing.T) {
	t.Parallel()
	pool := setup(t, neonTable)
	s := newStore(t, pool, false)
	if !s.Target.Generated("id") || s.Target.Generated("updated_at") {
		t.Fatal("generated columns not detected")
	}
	tok := time.Now()
	for i, name := range []string{"Ann", "Ann", "Bea"} {
		res := write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			return s.Upsert(t.Context(), tx, []provider.User{user("u1", name, nil)}, tok.Add(time.Duration(i)*time.Second), nil)
		})
		if wantChanged := i != 1; (res.Changed() > 0) != wantChanged {
			t.Fatalf("write %d (%s): %+v", i, name, res)
		}
	}
	r := get(t, pool, "u1")
	if r == nil || *r.name != "Bea" || r.updatedAt == nil {
		t.Fatalf("row = %+v", r)
	}
	var created time.Time
	if err := pool.QueryRow(t.Context(), `SELECT created_at FROM neon_identity.users_sync WHERE id='u1'`).Scan(&created); err != nil || created.UnixMilli() != 1700000000123 {
		t.Fatalf("generated created_at = %v, %v", created, err)
	}
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.MarkDeleted(t.Context(), tx, "u1", tok.Add(time.Hour))
	})
	if r := get(t, pool, "u1"); r.deletedAt == nil {
		t.Fatal("not marked deleted")
	}
}

func TestInferDeletionsOnlyUnseenAndNotWrittenSinceRunStart(t *testing.T) {
	t.Parallel()
	pool := setup(t, "")
	s := newStore(t, pool, false)
	before := clock(t, pool)
	// u1, u2, u3 known from before the run; also a row that predates usersync.
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "A", nil), user("u2", "B", nil), user("u3", "C", nil)}, before, nil)
	})
	start := clock(t, pool)
	if _, err := pool.Exec(t.Context(), `INSERT INTO neon_identity.users_sync (raw_json, id) VALUES ('{"id":"legacy"}', 'legacy')`); err != nil {
		t.Fatal(err)
	}
	runID := int64(7)
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return worker.Result{}, s.Adopt(t.Context(), tx) })
	// The run lists u1 only; u3 is synced by a webhook after the run started.
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u1", "A", nil)}, start, &runID)
	})
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		return s.Upsert(t.Context(), tx, []provider.User{user("u3", "C2", nil)}, start.Add(time.Second), nil)
	})
	res := write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.InferDeletions(t.Context(), tx, runID, start) })
	if res.Deleted != 2 {
		t.Fatalf("inferred %d deletions, want 2 (u2, legacy)", res.Deleted)
	}
	for id, wantDeleted := range map[string]bool{"u1": false, "u2": true, "u3": false, "legacy": true} {
		if r := get(t, pool, id); (r.deletedAt != nil) != wantDeleted {
			t.Errorf("%s deleted=%v, want %v", id, r.deletedAt != nil, wantDeleted)
		}
	}
}

// Found by TestModel seed 90: a backfill page inserts a user's row while a
// sync that found the user deleted waits for that user's lock. Once the page
// commits, the deletion (begun later) must still remove the row: the change
// to users_sync must see rows committed while it waited.
func TestDeletionWaitingOnPageSeesItsRow(t *testing.T) {
	for _, hard := range []bool{false, true} {
		t.Run(fmt.Sprintf("hard=%v", hard), func(t *testing.T) {
			t.Parallel()
			pool := setup(t, "")
			s := newStore(t, pool, hard)
			var now time.Time
			if err := pool.QueryRow(t.Context(), "SELECT now()").Scan(&now); err != nil {
				t.Fatal(err)
			}
			page, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer page.Rollback(context.Background())
			runID := int64(1)
			if _, err := s.Upsert(t.Context(), page, []provider.User{user("u1", "Ann", nil)}, now.Add(-time.Second), &runID); err != nil {
				t.Fatal(err)
			}
			// The deletion's fetch began after the page's transaction: it is
			// plainly newer.
			deleteToken := clock(t, pool)
			done := make(chan worker.Result, 1)
			go func() {
				done <- write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
					return s.MarkDeleted(t.Context(), tx, "u1", deleteToken)
				})
			}()
			// Wait until the deletion is blocked on the page's lock.
			deadline := time.Now().Add(10 * time.Second)
			for {
				var waiting bool
				if err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the deletion never waited for the page's lock")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := page.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if res := <-done; res.Deleted != 1 {
				t.Fatalf("deletion after the page committed: %+v, want 1 deleted", res)
			}
			r := get(t, pool, "u1")
			if hard && r != nil || !hard && (r == nil || r.deletedAt == nil) {
				t.Fatalf("row after the deletion: %+v", r)
			}
		})
	}
}

// The skip-fetch read sends its ids as text (it is planned for them on
// every read): ids that need quoting in an array literal still match.
func TestFetchedAtManyQuotedIDs(t *testing.T) {
	pool := setup(t, "")
	s := newStore(t, pool, false)
	ids := []string{"plain", `with "quotes"`, "a,b", "{braces}", `back\slash`, "two words", "NULL", "null", "", "ünïcode"}
	users := make([]provider.User, len(ids))
	tokens := make([]time.Time, len(ids))
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	for i, id := range ids {
		users[i], tokens[i] = user(id, "N", nil), t0.Add(time.Duration(i)*time.Millisecond)
	}
	write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
		r, _, err := s.UpsertFetched(t.Context(), tx, users, tokens)
		return r, err
	})
	got, err := s.FetchedAtMany(t.Context(), pool, append([]string{"absent"}, ids...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) {
		t.Errorf("read %d users, want %d: %v", len(got), len(ids), got)
	}
	for i, id := range ids {
		if at, ok := got[id]; !ok || !at.Equal(tokens[i]) {
			t.Errorf("user %q: fetched_at %v (found %v), want %v", id, at, ok, tokens[i])
		}
	}
}
