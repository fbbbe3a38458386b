package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/worker"
)

func TestHoldDeletions(t *testing.T) {
	cases := []struct {
		would, live, listed int64
		guard               float64
		hold                bool
	}{
		{0, 600, 0, 0.1, false},    // nothing to delete: nothing to hold
		{600, 600, 0, 0.1, true},   // empty list: everything would go
		{3, 3, 0, 0.1, true},       // empty list, however few rows
		{3, 3, 0, 1, true},         // empty list, whatever the guard
		{15, 300, 285, 0.1, false}, // 5%
		{86, 285, 199, 0.1, true},  // 30%
		{10, 50, 40, 0, false},     // exactly the floor
		{11, 50, 39, 0, true},      // one over the floor, over the share
		{11, 200, 189, 0.1, false}, // one over the floor, under the share
		{30, 300, 270, 0.1, false}, // exactly the share
		{31, 300, 269, 0.1, true},  // over the share
		{11, 11, 1, 1, false},      // guard 1: only the empty list holds
	}
	for _, c := range cases {
		if got := worker.HoldDeletions(c.would, c.live, c.listed, c.guard); got != c.hold {
			t.Errorf("HoldDeletions(would %d, live %d, listed %d, guard %v) = %v, want %v", c.would, c.live, c.listed, c.guard, got, c.hold)
		}
	}
}

func TestConfirmCommand(t *testing.T) {
	if got, want := worker.ConfirmCommand("clerk", 42), "usersync backfill --confirm-deletions --provider clerk --run 42"; got != want {
		t.Errorf("ConfirmCommand = %q, want %q", got, want)
	}
}

// TestInferableCountsWhatInferDeletionsDeletes: the deletion guard decides
// on Inferable's count; it must be exactly the live rows InferDeletions then
// marks deleted (users the run never listed and that were not written since
// it started, rows predating usersync included), in both delete modes.
func TestInferableCountsWhatInferDeletionsDeletes(t *testing.T) {
	t.Parallel()
	for _, hard := range []bool{false, true} {
		pool := setup(t, "")
		s := newStore(t, pool, hard)
		before := time.Now().Add(-time.Hour)
		var old []provider.User
		for i := range 8 {
			old = append(old, user(fmt.Sprintf("u%d", i), "A", nil))
		}
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.Upsert(t.Context(), tx, old, before, nil) })
		if _, err := pool.Exec(t.Context(), `INSERT INTO neon_identity.users_sync (raw_json, id) VALUES ('{"id":"legacy"}', 'legacy')`); err != nil {
			t.Fatal(err)
		}
		if !hard {
			// u7 was marked deleted before: not live, not counted.
			// A deletion fetched after u7's data was stored.
			var now time.Time
			if err := pool.QueryRow(t.Context(), "SELECT clock_timestamp()").Scan(&now); err != nil {
				t.Fatal(err)
			}
			write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
				return s.MarkDeleted(t.Context(), tx, "u7", now)
			})
		}
		runID := int64(3)
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return worker.Result{}, s.Adopt(t.Context(), tx) })
		// The run starts after all of the above was stored (on the
		// database's clock, which orders fetches).
		var start time.Time
		if err := pool.QueryRow(t.Context(), "SELECT clock_timestamp()").Scan(&start); err != nil {
			t.Fatal(err)
		}
		// The run lists u0, u1; a webhook writes u2 after it started.
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			return s.Upsert(t.Context(), tx, old[:2], start, &runID)
		})
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			return s.Upsert(t.Context(), tx, []provider.User{user("u2", "B", nil)}, start.Add(time.Second), nil)
		})
		// u8's fetch began before the run started but was stored while it
		// listed: it cannot be ordered against the run, so it is neither
		// counted nor deleted, but resynced.
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			return s.Upsert(t.Context(), tx, []provider.User{user("u8", "A", nil)}, before, nil)
		})
		var would, live int64
		write(t, pool, func(tx pgx.Tx) (worker.Result, error) {
			var err error
			would, live, err = s.Inferable(t.Context(), tx, runID, start)
			return worker.Result{}, err
		})
		wantWould, wantLive := int64(5), int64(9) // u3..u6 and legacy; u7 already deleted
		if hard {
			wantWould, wantLive = 6, 10 // u3..u7 and legacy
		}
		if would != wantWould || live != wantLive {
			t.Errorf("hard=%v: Inferable = %d of %d live, want %d of %d", hard, would, live, wantWould, wantLive)
		}
		res := write(t, pool, func(tx pgx.Tx) (worker.Result, error) { return s.InferDeletions(t.Context(), tx, runID, start) })
		if int64(res.Deleted) != would {
			t.Errorf("hard=%v: InferDeletions deleted %d, Inferable counted %d", hard, res.Deleted, would)
		}
		if len(res.Resync) != 1 || res.Resync[0] != "u8" {
			t.Errorf("hard=%v: InferDeletions resyncs %v, want [u8]", hard, res.Resync)
		}
	}
}
