package lazytx_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/usersync/usersync/internal/lazytx"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/jobs"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// begin returns a lazy transaction on a connection of pool, released (and
// the transaction rolled back if still open) when the test ends.
func begin(t *testing.T, pool *pgxpool.Pool, opts lazytx.Options) *lazytx.Tx {
	t.Helper()
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tx := lazytx.New(conn.Conn(), opts)
	t.Cleanup(func() {
		_ = tx.Rollback(context.Background())
		conn.Release()
	})
	return tx
}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE t (v text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return pool
}

func rows(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	r, err := pool.Query(t.Context(), `SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// The transaction starts with its first statement, not when it is made,
// and its prelude applies to it.
func TestBeginsWithFirstStatement(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	tx := begin(t, pool, lazytx.Options{Prelude: []string{"SET LOCAL synchronous_commit = off"}})
	var made time.Time
	if err := pool.QueryRow(t.Context(), `SELECT clock_timestamp()`).Scan(&made); err != nil {
		t.Fatal(err)
	}
	if tx.Begun() {
		t.Fatal("begun before any statement")
	}
	var started time.Time
	var setting string
	if err := tx.QueryRow(t.Context(), `SELECT now(), current_setting('synchronous_commit')`).Scan(&started, &setting); err != nil {
		t.Fatal(err)
	}
	if !tx.Begun() {
		t.Fatal("not begun after a statement")
	}
	if started.Before(made) {
		t.Errorf("the transaction started %s before its first statement was sent", made.Sub(started))
	}
	if setting != "off" {
		t.Errorf("synchronous_commit = %s in the transaction, want the prelude's off", setting)
	}
	// A transaction, not autocommit: a second statement sees the same now().
	var again time.Time
	if err := tx.QueryRow(t.Context(), `SELECT now()`).Scan(&again); err != nil {
		t.Fatal(err)
	}
	if !again.Equal(started) {
		t.Errorf("now() moved from %s to %s: the statements are not in one transaction", started, again)
	}
}

// Deferred statements run with the COMMIT, after the others; nothing is
// visible before it.
func TestDeferredStatementsRunAtCommit(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	deferLate := func(sql string) bool { return strings.Contains(sql, "'late'") }
	tx := begin(t, pool, lazytx.Options{Defer: deferLate})
	// The first statement carries BEGIN and is never deferred.
	if _, err := tx.Exec(t.Context(), `INSERT INTO t VALUES ('late')`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO t SELECT 'late' || count(*) FROM t WHERE v = 'late'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO t VALUES ('early')`); err != nil {
		t.Fatal(err)
	}
	if n := tx.Deferred(); n != 1 {
		t.Fatalf("%d statements deferred, want 1", n)
	}
	var seen int
	if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM t`).Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if seen != 2 {
		t.Errorf("the transaction sees %d rows before its commit, want 2 (the deferred insert has not run)", seen)
	}
	if got := rows(t, pool); len(got) != 0 {
		t.Fatalf("rows %v visible before the commit", got)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows(t, pool), ","); got != "early,late,late1" {
		t.Errorf("rows %s after the commit, want early,late,late1", got)
	}
}

// A deferred statement that fails fails the commit, and nothing is kept.
func TestFailingDeferredStatementCommitsNothing(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	tx := begin(t, pool, lazytx.Options{Defer: func(sql string) bool { return strings.Contains(sql, "NULL") }})
	if _, err := tx.Exec(t.Context(), `INSERT INTO t VALUES ('kept?')`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO t VALUES (NULL)`); err != nil {
		t.Fatalf("a deferred statement failed at once: %v", err)
	}
	err := tx.Commit(t.Context())
	if err == nil {
		t.Fatal("commit succeeded although a deferred statement violates NOT NULL")
	}
	if got := rows(t, pool); len(got) != 0 {
		t.Errorf("rows %v kept by a failed commit", got)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Errorf("rollback after the failed commit: %v", err)
	}
}

// A COMMIT after a failed statement answers ROLLBACK: Commit reports it.
func TestCommitOfAbortedTransactionIsAnError(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	tx := begin(t, pool, lazytx.Options{})
	if _, err := tx.Exec(t.Context(), `INSERT INTO t VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO t VALUES (NULL)`); err == nil {
		t.Fatal("NULL inserted")
	}
	if err := tx.Commit(t.Context()); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("commit of an aborted transaction: %v, want a rolled back error", err)
	}
	if got := rows(t, pool); len(got) != 0 {
		t.Errorf("rows %v kept", got)
	}
	if _, err := tx.Exec(t.Context(), `SELECT 1`); err == nil {
		t.Error("a statement after the commit was accepted")
	}
}

// A transaction never begun commits and rolls back nothing; nested
// transactions are refused.
func TestUnbegunAndNested(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	tx := begin(t, pool, lazytx.Options{})
	if _, err := tx.Begin(t.Context()); err == nil {
		t.Error("a nested transaction was begun")
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Errorf("commit of an unbegun transaction: %v", err)
	}
	if err := tx.Commit(t.Context()); err == nil {
		t.Error("a second commit was accepted")
	}
}

// River's insert notification is what RiverNotify defers: inserted through
// a lazy transaction, it waits for the COMMIT and reaches a listener then.
// If River changed its statement, the deferral would silently stop; this
// fails instead.
func TestRiverNotifyIsDeferredAndDelivered(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	if err := migrate.Run(t.Context(), pool, migrate.Plan{InternalSchema: "usersync"}, discard); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "usersync", Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	listener, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(t.Context(), `LISTEN "usersync.river_insert"`); err != nil {
		t.Fatal(err)
	}
	tx := begin(t, pool, lazytx.Options{Defer: lazytx.RiverNotify})
	if _, err := jobs.EnqueueSyncs(t.Context(), tx, client, "usersync", []jobs.UserRef{{Provider: "clerk", UserID: "user_1"}}); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if tx.Deferred() != 1 {
		t.Fatalf("%d statements deferred, want River's notification", tx.Deferred())
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	note, err := listener.Conn().WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("no insert notification after the commit: %v", err)
	}
	if !strings.Contains(note.Payload, jobs.SyncQueue("clerk")) {
		t.Errorf("notification %q, want one for queue %s", note.Payload, jobs.SyncQueue("clerk"))
	}
}
