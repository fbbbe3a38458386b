package store_test

import (
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
)

// newStore migrates a fresh database with usersync's tables in "usersync"
// and River's in "app_river", as an app that runs River in its own schema
// has them, and returns its store.
func newStore(t *testing.T) (*pgxpool.Pool, *store.Store) {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	schemaSQL, err := os.ReadFile("../../schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	plan := store.Plan{InternalSchema: "usersync", RiverSchema: "app_river", TargetSchemas: []string{"neon_identity"}, SchemaSQL: string(schemaSQL)}
	if err := store.Migrate(t.Context(), pool, plan, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckMigrated(t.Context(), pool, plan); err != nil {
		t.Fatal(err)
	}
	var inInternal, inRiver bool
	if err := pool.QueryRow(t.Context(), `SELECT to_regclass('usersync.river_job') IS NOT NULL, to_regclass('app_river.river_job') IS NOT NULL`).
		Scan(&inInternal, &inRiver); err != nil {
		t.Fatal(err)
	}
	if inInternal || !inRiver {
		t.Fatalf("river_job in usersync: %v, in app_river: %v; want only in app_river", inInternal, inRiver)
	}
	return pool, store.New(plan.Schemas())
}

func inTx(t *testing.T, pool *pgxpool.Pool, f func(tx pgx.Tx) error) {
	t.Helper()
	if err := pgx.BeginFunc(t.Context(), pool, f); err != nil {
		t.Fatal(err)
	}
}

func riverClient(t *testing.T, pool *pgxpool.Pool) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "app_river", SkipUnknownJobCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRunLifecycle: a run starts (closing an abandoned one), records pages
// and errors, ends held, is confirmed; the reads see each step.
func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	var first, r *store.Run
	inTx(t, pool, func(tx pgx.Tx) (err error) { first, err = st.Runs.Start(ctx, tx, "clerk", start, 7); return err })
	inTx(t, pool, func(tx pgx.Tx) (err error) { r, err = st.Runs.Start(ctx, tx, "clerk", start, 8); return err })
	if got, err := st.Runs.Get(ctx, pool, first.ID); err != nil || got == nil || got.Status != store.RunFailed || got.LastError == nil {
		t.Fatalf("abandoned run = %+v (%v), want failed with an error", got, err)
	}
	var listed int64
	inTx(t, pool, func(tx pgx.Tx) (err error) {
		if _, err = st.Runs.RecordPage(ctx, tx, r.ID, store.Page{Listed: 3, Written: 2, Next: "c1", Recent: []string{"a", "b", "c"}}); err != nil {
			return err
		}
		listed, err = st.Runs.RecordPage(ctx, tx, r.ID, store.Page{Listed: 2, Written: 0, Next: "c2", Recent: []string{"d", "e"}, Restarted: true})
		return err
	})
	if listed != 5 {
		t.Errorf("RecordPage listed = %d, want 5", listed)
	}
	if err := st.Runs.RecordError(ctx, pool, r.ID, "boom", false); err != nil {
		t.Fatal(err)
	}
	got, err := st.Runs.Get(ctx, pool, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.RunRunning || got.Pages != 2 || got.Listed != 5 || got.Written != 2 || got.Restarts != 1 ||
		len(got.RecentUserIDs) != 2 || got.RecentUserIDs[1] != "e" || got.LastError == nil || *got.LastError != "boom" || !got.StartedAt.Equal(start) {
		t.Errorf("run after two pages and an error = %+v", got)
	}
	if cur, err := st.Runs.Latest(ctx, pool, "clerk", store.RunRunning); err != nil || cur == nil || cur.ID != r.ID {
		t.Errorf("Latest running = %+v (%v), want run %d", cur, err, r.ID)
	}
	if ok, err := st.Runs.StartedByJob(ctx, pool, 8); err != nil || !ok {
		t.Errorf("StartedByJob(8) = %v (%v), want true", ok, err)
	}
	if ok, err := st.Runs.StartedByJob(ctx, pool, 9); err != nil || ok {
		t.Errorf("StartedByJob(9) = %v (%v), want false", ok, err)
	}
	if byJob, err := st.Runs.ForJob(ctx, pool, 8); err != nil || byJob == nil || byJob.ID != r.ID {
		t.Errorf("ForJob(8) = %+v (%v), want run %d", byJob, err, r.ID)
	}

	inTx(t, pool, func(tx pgx.Tx) error { return st.Runs.Hold(ctx, tx, r.ID, 40, 50) })
	held, err := st.Runs.Held(ctx, pool, "clerk", false)
	if err != nil || held == nil || held.ID != r.ID || held.Status != store.RunHeld || *held.HeldDeletions != 40 || *held.HeldLive != 50 || held.FinishedAt == nil {
		t.Fatalf("Held = %+v (%v)", held, err)
	}
	if other, err := st.Runs.Held(ctx, pool, "workos", false); err != nil || other != nil {
		t.Errorf("Held(workos) = %+v (%v), want none", other, err)
	}
	inTx(t, pool, func(tx pgx.Tx) error {
		h, err := st.Runs.Held(ctx, tx, "clerk", true)
		if err != nil || h == nil {
			t.Fatalf("Held with lock = %+v (%v)", h, err)
		}
		return st.Runs.ConfirmHeld(ctx, tx, h.ID, 38)
	})
	done, err := st.Runs.Latest(ctx, pool, "clerk", store.RunCompleted)
	if err != nil || done == nil || done.ID != r.ID || done.Deleted != 38 {
		t.Errorf("after confirm, Latest completed = %+v (%v), want run %d with 38 deleted", done, err, r.ID)
	}
	if h, err := st.Runs.Held(ctx, pool, "clerk", false); err != nil || h != nil {
		t.Errorf("after confirm, Held = %+v (%v), want none", h, err)
	}
	all, err := st.Runs.All(ctx, pool, "clerk")
	if err != nil || len(all) != 2 || all[0].ID != first.ID || all[1].ID != r.ID {
		t.Errorf("All = %+v (%v)", all, err)
	}
	// A final error ends a running run failed.
	var third *store.Run
	inTx(t, pool, func(tx pgx.Tx) (err error) { third, err = st.Runs.Start(ctx, tx, "clerk", time.Now(), 10); return err })
	if err := st.Runs.RecordError(ctx, pool, third.ID, "bad credentials", true); err != nil {
		t.Fatal(err)
	}
	if f, err := st.Runs.Latest(ctx, pool, "clerk", store.RunFailed); err != nil || f == nil || f.ID != third.ID || f.FinishedAt == nil {
		t.Errorf("Latest failed = %+v (%v), want run %d, finished", f, err, third.ID)
	}
}

// TestSkipScheduled: a scheduled backfill skips its run after a recent
// complete one, unless an operator asked for a backfill since it started.
func TestSkipScheduled(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", time.Hour); err != nil || skip {
		t.Fatalf("no run: SkipScheduled = %v (%v), want false", skip, err)
	}
	inTx(t, pool, func(tx pgx.Tx) error {
		r, err := st.Runs.Start(ctx, tx, "clerk", time.Now().Add(-10*time.Minute), 1)
		if err != nil {
			return err
		}
		return st.Runs.Complete(ctx, tx, r.ID, 0)
	})
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", time.Hour); err != nil || !skip {
		t.Errorf("recent complete run: SkipScheduled = %v (%v), want true", skip, err)
	}
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", 5*time.Minute); err != nil || skip {
		t.Errorf("complete run older than the window: SkipScheduled = %v (%v), want false", skip, err)
	}
	if err := st.Runs.RequestBackfill(ctx, pool, "clerk"); err != nil {
		t.Fatal(err)
	}
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", time.Hour); err != nil || skip {
		t.Errorf("requested since the run: SkipScheduled = %v (%v), want false", skip, err)
	}
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "workos", time.Hour); err != nil || skip {
		t.Errorf("other provider: SkipScheduled = %v (%v), want false", skip, err)
	}
	// A run started after the request answers it.
	inTx(t, pool, func(tx pgx.Tx) error {
		r, err := st.Runs.Start(ctx, tx, "clerk", time.Now().Add(time.Second), 2)
		if err != nil {
			return err
		}
		return st.Runs.Complete(ctx, tx, r.ID, 0)
	})
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", time.Hour); err != nil || !skip {
		t.Errorf("run after the request: SkipScheduled = %v (%v), want true", skip, err)
	}
}

// TestStatusFlushAndGet: flushes merge into the provider's row, keeping the
// later time of each and the error of the later one.
func TestStatusFlushAndGet(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	if got, err := st.Status.Get(ctx, pool, "clerk"); err != nil || got != nil {
		t.Fatalf("nothing recorded: Get = %+v (%v), want nil", got, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	e1, e0 := "later error", "earlier error"
	if err := st.Status.Flush(ctx, pool, store.ProviderStatus{Provider: "clerk", LastWebhookAt: &t1, LastError: &e1, LastErrorAt: &t1, BadCredentialsAt: &t0}); err != nil {
		t.Fatal(err)
	}
	if err := st.Status.Flush(ctx, pool, store.ProviderStatus{Provider: "clerk", LastWebhookAt: &t0, LastSyncAt: &t0, LastError: &e0, LastErrorAt: &t0, CredentialsOKAt: &t1}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Status.Get(ctx, pool, "clerk")
	if err != nil || got == nil {
		t.Fatalf("Get = %+v (%v)", got, err)
	}
	eq := func(a *time.Time, b time.Time) bool { return a != nil && a.Equal(b) }
	if !eq(got.LastWebhookAt, t1) || !eq(got.LastSyncAt, t0) || !eq(got.LastErrorAt, t1) || got.LastError == nil || *got.LastError != e1 ||
		!eq(got.BadCredentialsAt, t0) || !eq(got.CredentialsOKAt, t1) {
		t.Errorf("merged status = %+v", got)
	}
}

// TestBreakers: the count stops at the limit, a reset starts it again, a
// pause stops counting until a resume.
func TestBreakers(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	count := func() bool {
		var ok bool
		inTx(t, pool, func(tx pgx.Tx) (err error) { ok, err = st.Breakers.Count(ctx, tx, "clerk", 3); return err })
		return ok
	}
	for i := range 3 {
		if !count() {
			t.Fatalf("count %d refused under the limit", i+1)
		}
	}
	if count() {
		t.Error("count past the limit allowed")
	}
	inTx(t, pool, func(tx pgx.Tx) error { return st.Breakers.Reset(ctx, tx, "clerk") })
	if b, err := st.Breakers.Get(ctx, pool, "clerk"); err != nil || b == nil || b.UnexpectedNotFound != 0 || b.PausedAt != nil {
		t.Fatalf("after reset: %+v (%v)", b, err)
	}
	if !count() {
		t.Error("count after reset refused")
	}
	if paused, err := st.Breakers.Pause(ctx, pool, "clerk", "user_1"); err != nil || !paused {
		t.Fatalf("Pause = %v (%v), want true", paused, err)
	}
	if paused, err := st.Breakers.Pause(ctx, pool, "clerk", "user_2"); err != nil || paused {
		t.Errorf("second Pause = %v (%v), want false (already paused)", paused, err)
	}
	if count() {
		t.Error("count while paused allowed")
	}
	b, err := st.Breakers.Get(ctx, pool, "clerk")
	if err != nil || b == nil || b.PausedAt == nil || b.PausedUserID == nil || *b.PausedUserID != "user_1" || b.UnexpectedNotFound != 1 {
		t.Fatalf("paused breaker = %+v (%v)", b, err)
	}
	if resumed, err := st.Breakers.Resume(ctx, pool, "clerk"); err != nil || !resumed {
		t.Fatalf("Resume = %v (%v), want true", resumed, err)
	}
	if resumed, err := st.Breakers.Resume(ctx, pool, "clerk"); err != nil || resumed {
		t.Errorf("second Resume = %v (%v), want false", resumed, err)
	}
	if b, err := st.Breakers.Get(ctx, pool, "clerk"); err != nil || b.PausedAt != nil || b.ResumedAt == nil || b.UnexpectedNotFound != 0 {
		t.Errorf("resumed breaker = %+v (%v)", b, err)
	}
	if b, err := st.Breakers.Get(ctx, pool, "workos"); err != nil || b != nil {
		t.Errorf("untouched breaker = %+v (%v), want nil", b, err)
	}
}

// TestJobsInRiverSchema: the statements on river_job work in a River schema
// that is not the internal one.
func TestJobsInRiverSchema(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	rc := riverClient(t, pool)
	ins := func(args river.JobArgs) int64 {
		res, err := rc.Insert(ctx, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Job.ID
	}
	a := ins(jobs.SyncUserArgs{Provider: "clerk", UserID: "a"})
	b := ins(jobs.SyncUserArgs{Provider: "clerk", UserID: "b"})
	c := ins(jobs.BackfillPageArgs{Provider: "clerk"})
	// a runs; b waits for deletions to resume.
	if _, err := pool.Exec(ctx, `UPDATE app_river.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1`, a); err != nil {
		t.Fatal(err)
	}
	if err := st.Jobs.MarkPaused(ctx, pool, a); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE app_river.river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour' WHERE id = $1`, a); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE app_river.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1`, b); err != nil {
		t.Fatal(err)
	}
	inTx(t, pool, func(tx pgx.Tx) error {
		if err := st.Jobs.MarkDirty(ctx, tx, []int64{b, c}); err != nil {
			return err
		}
		return st.Jobs.MarkLastEvent(ctx, tx, []int64{b}, []string{store.LastEventDeleted})
	})
	meta := func(id int64) map[string]any {
		var m map[string]any
		if err := pool.QueryRow(ctx, `SELECT metadata FROM app_river.river_job WHERE id = $1`, id).Scan(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := meta(b); m[store.DirtyKey] == nil || m[store.LastEventKey] != store.LastEventDeleted {
		t.Errorf("running job's metadata = %v, want dirty and last event deleted", m)
	}
	if m := meta(c); m[store.DirtyKey] != nil {
		t.Errorf("waiting job marked dirty: %v", m)
	}
	if n, err := st.Jobs.CountPaused(ctx, pool, jobs.KindSyncUser, jobs.SyncQueue("clerk")); err != nil || n != 1 {
		t.Errorf("CountPaused = %d (%v), want 1", n, err)
	}
	byState, err := st.Jobs.CountByState(ctx, pool, []string{jobs.SyncQueue("clerk"), jobs.BackfillQueue("clerk")})
	if err != nil || byState["running"] != 1 || byState["scheduled"] != 1 || byState["available"] != 1 {
		t.Errorf("CountByState = %v (%v)", byState, err)
	}
	byQueue, err := st.Jobs.CountByQueue(ctx, pool)
	if err != nil || len(byQueue) != 3 {
		t.Errorf("CountByQueue = %+v (%v), want 3 queue/state pairs", byQueue, err)
	}
	if woken, err := st.Jobs.WakePaused(ctx, pool, jobs.KindSyncUser, jobs.SyncQueue("clerk")); err != nil || woken != 1 {
		t.Errorf("WakePaused = %d (%v), want 1", woken, err)
	}
	if s, err := st.Jobs.State(ctx, pool, a); err != nil || s == nil || s.State != "available" {
		t.Errorf("woken job state = %+v (%v), want available", s, err)
	}
	if s, err := st.Jobs.State(ctx, pool, 999999); err != nil || s != nil {
		t.Errorf("missing job state = %+v (%v), want nil", s, err)
	}
	if at, err := st.Jobs.OldestWaiting(ctx, pool, []string{jobs.SyncQueue("clerk")}); err != nil || at == nil {
		t.Errorf("OldestWaiting = %v (%v), want a time", at, err)
	}
	// ForJob finds the run a job continues by the run id in its args.
	var r *store.Run
	inTx(t, pool, func(tx pgx.Tx) (err error) { r, err = st.Runs.Start(ctx, tx, "clerk", time.Now(), c); return err })
	next := ins(jobs.BackfillPageArgs{Provider: "workos", RunID: strconv.FormatInt(r.ID, 10), Cursor: "x"})
	if got, err := st.Runs.ForJob(ctx, pool, next); err != nil || got == nil || got.ID != r.ID {
		t.Errorf("ForJob(continuing job) = %+v (%v), want run %d", got, err, r.ID)
	}
}

// TestSample: the sampled figures of metrics.
func TestSample(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	inTx(t, pool, func(tx pgx.Tx) error {
		r, err := st.Runs.Start(ctx, tx, "clerk", time.Now(), 1)
		if err != nil {
			return err
		}
		if err := st.Runs.Complete(ctx, tx, r.ID, 0); err != nil {
			return err
		}
		h, err := st.Runs.Start(ctx, tx, "workos", time.Now(), 2)
		if err != nil {
			return err
		}
		return st.Runs.Hold(ctx, tx, h.ID, 12, 20)
	})
	if _, err := st.Breakers.Pause(ctx, pool, "stackauth", "u"); err != nil {
		t.Fatal(err)
	}
	inTx(t, pool, func(tx pgx.Tx) error { _, err := st.Breakers.Count(ctx, tx, "stackauth", 5); return err })
	if _, err := st.Breakers.Pause(ctx, pool, "stackauth", "u"); err != nil {
		t.Fatal(err)
	}
	ages, err := st.Runs.LastCompleteAges(ctx, pool)
	if err != nil || len(ages) != 1 || ages["clerk"] < 0 || ages["clerk"] > 60 {
		t.Errorf("LastCompleteAges = %v (%v), want clerk only, just finished", ages, err)
	}
	guard, err := st.SampleGuard(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.GuardState{}
	for _, g := range guard {
		got[g.Provider] = g
	}
	if len(got) != 3 || got["clerk"].HeldDeletions != -1 || got["clerk"].Paused ||
		got["workos"].HeldDeletions != 12 || got["workos"].Paused || !got["stackauth"].Paused || got["stackauth"].HeldDeletions != -1 {
		t.Errorf("SampleGuard = %+v", guard)
	}
}

// TestForceBackfillJoinsWaitingJob: `usersync backfill` joins a scheduled
// job already waiting, and records the request so that the job runs even
// after a recent complete run; a forced job it inserts itself needs none.
func TestForceBackfillJoinsWaitingJob(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	rc := riverClient(t, pool)
	inTx(t, pool, func(tx pgx.Tx) error {
		r, err := st.Runs.Start(ctx, tx, "clerk", time.Now().Add(-time.Minute), 1)
		if err != nil {
			return err
		}
		return st.Runs.Complete(ctx, tx, r.ID, 0)
	})
	waiting, err := rc.Insert(ctx, jobs.BackfillPageArgs{Provider: "clerk"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", time.Hour); err != nil || !skip {
		t.Fatalf("before the request: SkipScheduled = %v (%v), want true", skip, err)
	}
	id, joined, err := jobs.ForceBackfill(ctx, rc, pool, st.Runs, "clerk")
	if err != nil || !joined || id != waiting.Job.ID {
		t.Fatalf("ForceBackfill = job %d, joined %v (%v); want job %d joined", id, joined, err, waiting.Job.ID)
	}
	if skip, err := st.Runs.SkipScheduled(ctx, pool, "clerk", time.Hour); err != nil || skip {
		t.Errorf("after the request: SkipScheduled = %v (%v), want false", skip, err)
	}
	var args jobs.BackfillPageArgs
	if err := pool.QueryRow(ctx, `SELECT args FROM app_river.river_job WHERE id = $1`, id).Scan(&args); err != nil {
		t.Fatal(err)
	}
	if args.Force {
		t.Errorf("the waiting job's args were rewritten: %+v", args)
	}
	id, joined, err = jobs.ForceBackfill(ctx, rc, pool, st.Runs, "workos")
	if err != nil || joined || id == 0 {
		t.Errorf("ForceBackfill(workos) = job %d, joined %v (%v); want a new job", id, joined, err)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM usersync.backfill_request WHERE provider = 'workos'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a new forced job recorded a request (%d, %v)", n, err)
	}
}

// TestReport: a provider's report gathers its rows: users, status (a
// rejection cleared by a later success), runs, the held run and the pause.
func TestReport(t *testing.T) {
	t.Parallel()
	pool, st := newStore(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO neon_identity.users_sync (raw_json, id) VALUES ('{}', 'a'), ('{}', 'b');
		UPDATE neon_identity.users_sync SET deleted_at = now() WHERE id = 'b'`); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute)
	t1 := time.Now()
	if err := st.Status.Flush(ctx, pool, store.ProviderStatus{Provider: "clerk", BadCredentialsAt: &t0, CredentialsOKAt: &t1, LastSyncAt: &t1}); err != nil {
		t.Fatal(err)
	}
	inTx(t, pool, func(tx pgx.Tx) error {
		r, err := st.Runs.Start(ctx, tx, "clerk", t0, 1)
		if err != nil {
			return err
		}
		return st.Runs.Hold(ctx, tx, r.ID, 30, 40)
	})
	inTx(t, pool, func(tx pgx.Tx) error { _, err := st.Breakers.Count(ctx, tx, "clerk", 5); return err })
	if _, err := st.Breakers.Pause(ctx, pool, "clerk", "u9"); err != nil {
		t.Fatal(err)
	}
	q := store.ReportQuery{Provider: "clerk", TargetSchema: "neon_identity", Queues: []string{jobs.SyncQueue("clerk"), jobs.BackfillQueue("clerk")},
		SyncKind: jobs.KindSyncUser, SyncQueue: jobs.SyncQueue("clerk")}
	pr, err := st.Report(ctx, pool, q)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Users != 1 || pr.DeletedUsers != 1 || pr.BadCredentialsAt != nil || pr.LastSyncAt == nil || pr.LastCompleteRun != nil ||
		pr.HeldRun == nil || *pr.HeldRun.HeldDeletions != 30 || pr.DeletionsPaused == nil || pr.DeletionsPaused.UserID != "u9" ||
		pr.DeletionsPaused.UnexpectedNotFound != 1 || len(pr.Jobs) != 0 || pr.RecentErrors == nil {
		t.Errorf("report = %+v", pr)
	}
}
