package pgtest_test

import (
	"os"
	"testing"

	"github.com/usersync/usersync/internal/pgtest"
)

// TestMain is the one line every package with database tests needs: it
// makes sure the throwaway cluster (if pgtest started one) is stopped and
// deleted when the test binary exits.
func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m))
}

// TestExample shows the usual shape of a database test: a private database,
// a small pool on it, and parallel execution.
func TestExample(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)      // fresh database, dropped on cleanup
	pool := pgtest.NewPool(t, url, 4) // closed on cleanup, before the drop
	if _, err := pool.Exec(t.Context(), "CREATE TABLE users (id text PRIMARY KEY)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := pool.Exec(t.Context(), "INSERT INTO users VALUES ('user_1')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
}
