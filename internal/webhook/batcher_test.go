package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/internal/webhook"
	"github.com/usersync/usersync/jobs"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// newBatcher returns a batcher over a freshly migrated database, with an
// insert-only River client, and the pool to inspect it.
func newBatcher(t *testing.T) (*webhook.Batcher, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 6)
	if err := migrate.Run(t.Context(), pool, migrate.Plan{InternalSchema: "usersync"}, discard); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "usersync", Logger: discard})
	if err != nil {
		t.Fatalf("river client: %v", err)
	}
	b := webhook.NewBatcher(pool, client, "usersync", 2, 64, discard)
	t.Cleanup(b.Close)
	return b, pool
}

func syncJobsOf(t *testing.T, pool *pgxpool.Pool, ids []string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM usersync.river_job
		WHERE kind = 'sync_user' AND args->>'user_id' = ANY($1)`, ids).Scan(&n); err != nil {
		t.Fatalf("count jobs: %v", err)
	}
	return n
}

// Concurrent deliveries are committed (in shared transactions) before
// Submit returns, one job per user.
func TestBatcherCommitsBeforeAnswering(t *testing.T) {
	t.Parallel()
	b, pool := newBatcher(t)
	var wg sync.WaitGroup
	ids := make([]string, 200)
	errs := make([]error, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("user_%03d", i)
		wg.Go(func() {
			errs[i] = b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: ids[i]})
			if errs[i] == nil && syncJobsOf(t, pool, ids[i:i+1]) != 1 {
				errs[i] = errors.New("answered before its job was committed")
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("submit %s: %v", ids[i], err)
		}
	}
	if n := syncJobsOf(t, pool, ids); n != len(ids) {
		t.Errorf("%d sync_user jobs, want %d", n, len(ids))
	}
}

func TestSubmitAfterCloseReturnsError(t *testing.T) {
	t.Parallel()
	b, pool := newBatcher(t)
	b.Close()
	err := b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: "user_late"})
	if !errors.Is(err, webhook.ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
	if n := syncJobsOf(t, pool, []string{"user_late"}); n != 0 {
		t.Errorf("%d jobs enqueued after Close, want 0", n)
	}
}

// A Submit caught between deciding to send and sending while Close runs to
// the end (its writers gone) returns ErrClosed instead of waiting forever
// for an answer no writer will give.
func TestSubmitPausedAcrossCloseReturns(t *testing.T) {
	t.Parallel()
	for round := range 10 {
		b, pool := newBatcher(t)
		paused, resume := make(chan struct{}), make(chan struct{})
		webhook.SetBeforeSend(b, func() {
			close(paused)
			<-resume
		})
		id := fmt.Sprintf("user_paused_%d", round)
		result := make(chan error, 1)
		go func() { result <- b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: id}) }()
		<-paused
		b.Close() // returns once the writers are gone
		close(resume)
		select {
		case err := <-result:
			if !errors.Is(err, webhook.ErrClosed) {
				t.Errorf("round %d: Submit paused across Close = %v, want ErrClosed", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Submit paused across Close never returned", round)
		}
		if n := syncJobsOf(t, pool, []string{id}); n != 0 {
			t.Errorf("round %d: %d jobs for a refused delivery", round, n)
		}
	}
}

// Submits racing Close each return: committed (and then really in the
// database) or ErrClosed (and then not). None waits for a writer that is
// gone. Many goroutines submit in a loop so that some are caught between
// deciding to send and sending when Close happens.
func TestSubmitRacingCloseAlwaysReturns(t *testing.T) {
	t.Parallel()
	for round := range 3 {
		b, pool := newBatcher(t)
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			committed []string
			refused   []string
			started   = make(chan struct{}, 1)
		)
		for g := range 200 {
			wg.Go(func() {
				for i := 0; ; i++ {
					id := fmt.Sprintf("user_%d_%d_%d", round, g, i)
					err := b.Submit(t.Context(), jobs.UserRef{Provider: "workos", UserID: id})
					mu.Lock()
					if err == nil {
						committed = append(committed, id)
					} else {
						refused = append(refused, id)
					}
					mu.Unlock()
					select {
					case started <- struct{}{}:
					default:
					}
					if err != nil {
						if !errors.Is(err, webhook.ErrClosed) {
							t.Errorf("submit %s: %v", id, err)
						}
						return
					}
				}
			})
		}
		<-started
		b.Close()
		returned := make(chan struct{})
		go func() { wg.Wait(); close(returned) }()
		select {
		case <-returned:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: a Submit racing Close never returned", round)
		}
		if n := syncJobsOf(t, pool, committed); n != len(committed) {
			t.Errorf("round %d: %d of %d deliveries answered committed have a job", round, n, len(committed))
		}
		if n := syncJobsOf(t, pool, refused); n != 0 {
			t.Errorf("round %d: %d refused deliveries have a job", round, n)
		}
	}
}

// Organization refs become sync_organization jobs, coalesced per
// organization, in the same commit as the users' jobs.
func TestBatcherEnqueuesOrganizationSyncs(t *testing.T) {
	t.Parallel()
	b, pool := newBatcher(t)
	for _, ref := range []jobs.UserRef{
		{Provider: "stackauth", OrganizationID: "org_1"},
		{Provider: "stackauth", UserID: "u1"},
		{Provider: "stackauth", OrganizationID: "org_1"},
		{Provider: "stackauth", OrganizationID: "org_2"},
	} {
		if err := b.Submit(t.Context(), ref); err != nil {
			t.Fatal(err)
		}
	}
	var orgs, users int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE kind = 'sync_organization' AND queue = 'sync_stackauth'),
		count(*) FILTER (WHERE kind = 'sync_user') FROM usersync.river_job`).Scan(&orgs, &users); err != nil {
		t.Fatal(err)
	}
	if orgs != 2 || users != 1 {
		t.Fatalf("%d sync_organization and %d sync_user jobs, want 2 and 1", orgs, users)
	}
}

// idleInTransaction counts this database's sessions that hold a transaction
// and run nothing.
func idleInTransaction(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state = 'idle in transaction'`).Scan(&n); err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return n
}

// await polls cond until it holds or the deadline passes.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An idle receiver holds no open transaction.
func TestBatcherHoldsNoTransactionWhenIdle(t *testing.T) {
	t.Parallel()
	b, pool := newBatcher(t)
	if err := b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: "user_once"}); err != nil {
		t.Fatal(err)
	}
	await(t, "no session idle in transaction", func() bool { return idleInTransaction(t, pool) == 0 })
	if n := syncJobsOf(t, pool, []string{"user_once"}); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

// A batch whose commit fails is answered with the error and leaves nothing
// behind; the writer's next batch commits on a sound transaction.
func TestBatcherCommitFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	b, pool := newBatcher(t)
	// A deferred constraint trigger fails the commit of any transaction
	// that enqueues user_poison.
	if _, err := pool.Exec(t.Context(), `
		CREATE FUNCTION usersync.poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.args->>'user_id' = 'user_poison' THEN RAISE EXCEPTION 'poisoned batch'; END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER poison AFTER INSERT ON usersync.river_job
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION usersync.poison();`); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		ok := fmt.Sprintf("user_ok_%d", round)
		if err := b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: ok}); err != nil {
			t.Fatalf("round %d: submit %s: %v", round, ok, err)
		}
		if err := b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: "user_poison"}); err == nil {
			t.Fatalf("round %d: a batch whose commit failed was answered committed", round)
		}
		if n := syncJobsOf(t, pool, []string{ok, "user_poison"}); n != 1 {
			t.Fatalf("round %d: %d jobs, want 1 (the failed batch's job must not exist)", round, n)
		}
	}
}

// A batch's transaction begins only once its deliveries have arrived: the
// time its events are recorded at (a new job's created_at, the dirty mark of
// a running one: the transaction's now()) is never earlier than a delivery.
// An earlier start (say, begun with the previous batch's commit) would make
// a running sync take an event that arrived during its fetch for one that
// came before it, and lose it.
func TestBatcherRecordsEventsNoEarlierThanTheirArrival(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	if err := migrate.Run(t.Context(), pool, migrate.Plan{InternalSchema: "usersync"}, discard); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "usersync", Logger: discard})
	if err != nil {
		t.Fatalf("river client: %v", err)
	}
	// One writer: every batch after the first follows another's commit.
	b := webhook.NewBatcher(pool, client, "usersync", 1, 64, discard)
	t.Cleanup(b.Close)
	now := func() time.Time {
		var at time.Time
		if err := pool.QueryRow(t.Context(), `SELECT clock_timestamp()`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	for round := range 10 {
		id := fmt.Sprintf("user_time_%d", round)
		sent := now()
		if err := b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: id}); err != nil {
			t.Fatal(err)
		}
		var created time.Time
		if err := pool.QueryRow(t.Context(), `SELECT created_at FROM usersync.river_job
			WHERE kind = 'sync_user' AND args->>'user_id' = $1`, id).Scan(&created); err != nil {
			t.Fatal(err)
		}
		if created.Before(sent) {
			t.Fatalf("round %d: the job was created at %s, %s before its delivery was submitted",
				round, created.Format(time.RFC3339Nano), sent.Sub(created))
		}
		// The job starts running; another event for its user arrives.
		if _, err := pool.Exec(t.Context(), `UPDATE usersync.river_job SET state = 'running', attempt = 1, attempted_at = now()
			WHERE args->>'user_id' = $1`, id); err != nil {
			t.Fatal(err)
		}
		sent = now()
		if err := b.Submit(t.Context(), jobs.UserRef{Provider: "clerk", UserID: id}); err != nil {
			t.Fatal(err)
		}
		var dirty time.Time
		if err := pool.QueryRow(t.Context(), `SELECT (metadata->>$2)::timestamptz FROM usersync.river_job
			WHERE kind = 'sync_user' AND args->>'user_id' = $1`, id, jobs.DirtyKey).Scan(&dirty); err != nil {
			t.Fatal(err)
		}
		if dirty.Before(sent) {
			t.Fatalf("round %d: the running job was marked dirty at %s, %s before the event was submitted",
				round, dirty.Format(time.RFC3339Nano), sent.Sub(dirty))
		}
	}
}
