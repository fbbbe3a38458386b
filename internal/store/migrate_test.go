package store_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

// TestUpgradeAllowsHeldRuns: a database migrated before the deletion guard
// (backfill_run's status check without 'held', no breaker table) is brought
// up to date by a later migrate, which is idempotent.
func TestUpgradeAllowsHeldRuns(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	ctx := t.Context()
	// backfill_run as version 1 created it.
	if _, err := pool.Exec(ctx, `CREATE SCHEMA usersync;
CREATE TABLE usersync.backfill_run (
  id bigserial PRIMARY KEY, provider text NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
  started_at timestamptz NOT NULL, finished_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now(),
  pages integer NOT NULL DEFAULT 0, users_listed bigint NOT NULL DEFAULT 0, users_written bigint NOT NULL DEFAULT 0,
  users_deleted bigint NOT NULL DEFAULT 0, next_cursor text, last_user_id text,
  recent_user_ids text[] NOT NULL DEFAULT '{}', restarts integer NOT NULL DEFAULT 0, started_by_job bigint, last_error text);
INSERT INTO usersync.backfill_run (provider, status, started_at) VALUES ('stackauth', 'completed', now());`); err != nil {
		t.Fatal(err)
	}
	plan := store.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: "CREATE TABLE IF NOT EXISTS users_sync (id text PRIMARY KEY, raw_json jsonb NOT NULL);"}
	log := slog.New(slog.DiscardHandler)
	for range 2 {
		if err := store.Migrate(ctx, pool, plan, log); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.CheckMigrated(ctx, pool, plan); err != nil {
		t.Fatalf("check after migrate: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.backfill_run (provider, status, started_at, held_deletions, held_live)
		VALUES ('stackauth', 'held', now(), 600, 600)`); err != nil {
		t.Fatalf("a held run after the upgrade: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.backfill_run (provider, status, started_at) VALUES ('stackauth', 'bogus', now())`); err == nil {
		t.Fatal("the status check accepts any status after the upgrade")
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.deletion_breaker (provider) VALUES ('stackauth')`); err != nil {
		t.Fatalf("deletion_breaker: %v", err)
	}
}
