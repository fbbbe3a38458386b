package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestParallelDatabasesAreIsolated runs two parallel tests that create the
// same table in their own databases.
func TestParallelDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := NewDatabase(t)
			pool := NewPool(t, url, 2)
			ctx := t.Context()

			var db string
			if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
				t.Fatalf("current_database: %v", err)
			}
			if !strings.HasPrefix(db, DatabasePrefix) {
				t.Fatalf("connected to %q, want a %s* database", db, DatabasePrefix)
			}
			if _, err := pool.Exec(ctx, "CREATE TABLE widgets (id int PRIMARY KEY, owner text NOT NULL)"); err != nil {
				t.Fatalf("create table: %v", err)
			}
			if _, err := pool.Exec(ctx, "INSERT INTO widgets VALUES (1, $1)", name); err != nil {
				t.Fatalf("insert: %v", err)
			}
			var n int
			var owner string
			if err := pool.QueryRow(ctx, "SELECT count(*), min(owner) FROM widgets").Scan(&n, &owner); err != nil {
				t.Fatalf("select: %v", err)
			}
			if n != 1 || owner != name {
				t.Fatalf("widgets has %d rows owned by %q, want 1 owned by %q", n, owner, name)
			}
		})
	}
}

// TestDatabaseDroppedOnCleanup checks that the database of a finished
// subtest is gone, even though the subtest left a connection open.
func TestDatabaseDroppedOnCleanup(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		url := NewDatabase(t)
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.Database
		// A connection without cleanup: DROP ... WITH (FORCE) must cope.
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		_ = conn // intentionally leaked
		if !exists(t, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
	})
	if name == "" {
		t.Fatal("inner test did not run")
	}
	if exists(t, name) {
		t.Fatalf("database %s still exists after cleanup", name)
	}
}

func exists(t *testing.T, name string) bool {
	t.Helper()
	var ok bool
	err := server.adminPool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok)
	if err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	return ok
}

// TestStartCluster starts a second, independent throwaway cluster and stops
// it again. It is skipped when no server binaries are installed, since the
// shared server may come from TEST_DATABASE_URL.
func TestStartCluster(t *testing.T) {
	t.Parallel()
	url, stop, err := StartCluster(t.Context(), t.Logf)
	if err != nil {
		if strings.Contains(err.Error(), "no PostgreSQL server binaries") {
			t.Skip(err)
		}
		t.Fatalf("StartCluster: %v", err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		_ = stop()
		t.Fatalf("connect to %s: %v", url, err)
	}
	var one int
	err = conn.QueryRow(t.Context(), "SELECT 1").Scan(&one)
	_ = conn.Close(t.Context())
	if err != nil || one != 1 {
		t.Errorf("SELECT 1 = %d, %v", one, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
