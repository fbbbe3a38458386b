package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// TestNewRejectsBadConfig: each bad configuration gets an error naming the
// field, and creates nothing in the database.
func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	stack := stackClient(fake)
	one := []engine.Provider{{Client: stack}}
	for _, tc := range []struct {
		name string
		cfg  engine.Config
		want string
	}{
		{"no provider", engine.Config{}, "Config.Providers is empty"},
		{"nil client", engine.Config{Providers: []engine.Provider{{}}}, "Client is nil"},
		{"twice", engine.Config{Providers: []engine.Provider{{Client: stack}, {Client: stack, Schema: "other"}}}, "configured twice"},
		{"bad River schema", engine.Config{Providers: one, RiverSchema: "river-x"}, "Config.RiverSchema"},
		{"target is River's", engine.Config{Providers: one, RiverSchema: "neon_identity"}, "is Config.RiverSchema"},
		{"bad internal schema", engine.Config{Providers: one, InternalSchema: "a-b"}, "Config.InternalSchema"},
		{"bad provider schema", engine.Config{Providers: []engine.Provider{{Client: stack, Schema: "x;drop"}}}, "not a valid schema name"},
		{"target is internal", engine.Config{Providers: []engine.Provider{{Client: stack, Schema: "usersync"}}}, "is Config.InternalSchema"},
		{"guard above 1", engine.Config{Providers: one, DeleteGuard: 1.5}, "Config.DeleteGuard"},
		{"negative workers", engine.Config{Providers: one, Workers: -1}, "Config.Workers"},
	} {
		_, err := engine.New(t.Context(), pool, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname IN ('usersync', 'neon_identity', 'river', 'other')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("bad configurations created %d schemas", n)
	}
	// The same schema named twice is accepted.
	e, err := engine.New(t.Context(), pool, engine.Config{Providers: one, InternalSchema: "usersync", RiverSchema: "usersync"})
	if err != nil {
		t.Fatalf("New with RiverSchema = InternalSchema: %v", err)
	}
	e.Close()
}

// TestConfigureRiverRefuses: before Migrate, with River in another schema,
// or with a queue name usersync needs already taken, ConfigureRiver returns
// an error and leaves the River config as it was.
func TestConfigureRiverRefuses(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	e, err := engine.New(t.Context(), pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)

	var nm *engine.NotMigratedError
	if err := e.ConfigureRiver(&river.Config{Schema: "usersync"}); !errors.As(err, &nm) {
		t.Errorf("ConfigureRiver before Migrate: %v, want a NotMigratedError", err)
	}
	if err := e.Check(t.Context()); !errors.As(err, &nm) {
		t.Errorf("Check before Migrate: %v, want a NotMigratedError", err)
	}
	if err := e.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.Check(t.Context()); err != nil {
		t.Errorf("Check after Migrate: %v", err)
	}
	if err := e.ConfigureRiver(&river.Config{Schema: ""}); err == nil || !strings.Contains(err.Error(), "river.Config.Schema") {
		t.Errorf("ConfigureRiver with River in the search path: %v, want an error naming river.Config.Schema", err)
	}
	taken := &river.Config{Schema: "usersync", Queues: map[string]river.QueueConfig{"sync_stackauth": {MaxWorkers: 1}}}
	if err := e.ConfigureRiver(taken); err == nil || !strings.Contains(err.Error(), `"sync_stackauth"`) {
		t.Errorf("ConfigureRiver with a taken queue: %v, want an error naming it", err)
	}
	if taken.Workers != nil || len(taken.PeriodicJobs) != 0 {
		t.Errorf("a refused ConfigureRiver changed the config: %+v", taken)
	}

	// A worker kind the application already registered is an error, not a panic.
	ws := river.NewWorkers()
	first := &river.Config{Schema: "usersync", Workers: ws}
	if err := e.ConfigureRiver(first); err != nil {
		t.Fatalf("ConfigureRiver: %v", err)
	}
	if err := e.ConfigureRiver(&river.Config{Schema: "usersync", Workers: ws}); err == nil || !strings.Contains(err.Error(), "add workers") {
		t.Errorf("ConfigureRiver on workers that already have usersync's: %v", err)
	}
	// The configured client is valid and has usersync's queues.
	if _, err := river.NewClient(riverpgxv5.New(pool), first); err != nil {
		t.Fatalf("river.NewClient on the configured config: %v", err)
	}
	for _, q := range []string{"sync_stackauth", "backfill_stackauth", river.QueueDefault} {
		if _, ok := first.Queues[q]; !ok {
			t.Errorf("queue %s missing after ConfigureRiver: %v", q, first.Queues)
		}
	}
}

// TestCloseRefusesNewHandlers: after Close, WebhookHandler and Start return
// errors.
func TestCloseRefusesNewHandlers(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	e, err := engine.New(t.Context(), pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := &river.Config{Schema: "usersync"}
	e.ConfigureRiverInserts(rc)
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close() // idempotent
	if _, err := e.WebhookHandler(client); err == nil {
		t.Error("WebhookHandler after Close: no error")
	}
	if err := e.Start(t.Context()); err == nil {
		t.Error("Start after Close: no error")
	}
}

// TestSeparateRiverSchema: with River's tables in the application's schema
// app_river and usersync's in usersync, Migrate puts each where it belongs,
// a webhook is synced end to end, a backfill completes, and Status counts
// the jobs in app_river.
func TestSeparateRiverSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 8)
	fake := stackfake.New(stackfake.Options{Seed: 3})
	t.Cleanup(fake.Close)
	fake.Seed(5)
	var logs syncBuffer
	cfg := engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}, RiverSchema: "app_river",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	// The application manages River but has not migrated it yet: Check says so.
	skip := cfg
	skip.SkipRiverMigrations = true
	e0, err := engine.New(ctx, pool, skip)
	if err != nil {
		t.Fatal(err)
	}
	if err := e0.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var nm *engine.NotMigratedError
	if err := e0.Check(ctx); !errors.As(err, &nm) || !strings.Contains(err.Error(), "app_river") {
		t.Errorf("Check with River left to the application, not migrated: %v, want a NotMigratedError naming app_river", err)
	}
	e0.Close()
	regclass := func(name string) bool {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if regclass("app_river.river_job") {
		t.Fatal("Migrate with SkipRiverMigrations created River's tables")
	}

	e, err := engine.New(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Check(ctx); err != nil {
		t.Fatalf("Check after Migrate: %v", err)
	}
	if !regclass("app_river.river_job") || regclass("usersync.river_job") || !regclass("usersync.backfill_run") {
		t.Fatal("River's tables are not (only) in app_river, or usersync's not in usersync")
	}
	if err := e.ConfigureRiver(&river.Config{Schema: "usersync"}); err == nil {
		t.Error("ConfigureRiver with river.Config.Schema usersync while Config.RiverSchema is app_river: no error")
	}
	rc := &river.Config{Schema: "app_river"}
	if err := e.ConfigureRiver(rc); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := e.WebhookHandler(client)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/{provider}", hooks)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(kind provider.EventKind, id string) {
		t.Helper()
		body, header := fake.Webhook(kind, id)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/webhooks/stackauth", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook %v of %s: %d, want 200", kind, id, resp.StatusCode)
		}
	}
	// Before River works jobs: a user's deletion coalesces into the job of
	// its creation, which records the latest event on the job's row in
	// app_river.
	gone := fake.CreateUser()
	post(provider.EventUserChanged, gone)
	fake.DeleteUser(gone)
	post(provider.EventUserDeleted, gone)
	var lastEvent *string
	if err := pool.QueryRow(ctx, "SELECT metadata->>'usersync_last_event' FROM app_river.river_job WHERE kind = 'sync_user' AND args->>'user_id' = $1", gone).Scan(&lastEvent); err != nil {
		t.Fatalf("read the coalesced job: %v", err)
	}
	if lastEvent == nil || *lastEvent != "deleted" {
		t.Errorf("coalesced job's latest event: %v, want deleted", lastEvent)
	}

	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.WithoutCancel(ctx)) })
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN neon_identity_users_sync"); err != nil {
		t.Fatal(err)
	}
	id := fake.CreateUser()
	post(provider.EventUserChanged, id)
	n, err := conn.Conn().WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(n.Payload, id) {
		t.Errorf("notification %q does not name user %s", n.Payload, id)
	}

	b, err := e.StartBackfill(ctx, "stackauth")
	if err != nil {
		t.Fatal(err)
	}
	run, err := b.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != engine.RunCompleted || run.Listed != 6 || run.Deleted != 0 {
		t.Errorf("backfill run: %s, %d listed, %d deleted; want completed, 6, 0", run.Status, run.Listed, run.Deleted)
	}
	// The status record reaches the database within a second or so, and
	// jobs keep coming (the periodic prune job, resyncs): compare Status's
	// job counts with app_river.river_job read just after it, until they
	// agree.
	var (
		st        *engine.Status
		p         engine.ProviderStatus
		riverJobs int64
		counted   int64
	)
	deadline := time.Now().Add(30 * time.Second)
	for tick := time.NewTicker(50 * time.Millisecond); ; <-tick.C {
		if st, err = e.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if len(st.Providers) != 1 {
			t.Fatalf("Status: %d providers, want 1", len(st.Providers))
		}
		p = st.Providers[0]
		counted = 0
		for _, c := range p.Jobs {
			counted += c
		}
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM app_river.river_job WHERE queue IN ('sync_stackauth', 'backfill_stackauth')").Scan(&riverJobs); err != nil {
			t.Fatal(err)
		}
		if (p.LastWebhookAt != nil && riverJobs > 0 && counted == riverJobs) || time.Now().After(deadline) {
			tick.Stop()
			break
		}
	}
	if riverJobs == 0 || counted != riverJobs {
		t.Errorf("Status counts %d jobs (%v); app_river.river_job has %d of the provider's queues", counted, p.Jobs, riverJobs)
	}
	if p.Users != 6 || p.LastCompleteRun == nil || p.LastCompleteRun.ID != run.ID || p.LastWebhookAt == nil {
		t.Errorf("Status: %d users, last complete run %v, last webhook %v; want 6, run %d, a time", p.Users, p.LastCompleteRun, p.LastWebhookAt, run.ID)
	}
	if !st.Healthy() {
		t.Errorf("Status needs attention: %v", st.Attention)
	}
	// The metrics sampler read River's jobs from app_river (at Start).
	if strings.Contains(logs.String(), "metrics sample failed") {
		t.Errorf("the metrics sampler failed:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBackfillJoinFollowNoRun: with no River client working usersync's
// jobs, StartBackfill enqueues one job and a second call joins it; Follow
// yields its waiting state and stops when the loop breaks; once the job is
// cancelled, Follow ends Done with no run and Wait returns ErrNoRun.
func TestBackfillJoinFollowNoRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	e, err := engine.New(ctx, pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := e.StartBackfill(ctx, "stackauth")
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.StartBackfill(ctx, "stackauth")
	if err != nil {
		t.Fatal(err)
	}
	if b.Joined() || !again.Joined() || again.JobID() != b.JobID() || b.Provider() != "stackauth" {
		t.Errorf("StartBackfill twice: jobs %d (joined %v), %d (joined %v); want one job, joined the second time",
			b.JobID(), b.Joined(), again.JobID(), again.Joined())
	}
	reads := 0
	for p, err := range b.Follow(ctx, time.Millisecond) {
		if err != nil {
			t.Fatal(err)
		}
		if p.Done || p.Run != nil || p.JobID != b.JobID() || p.JobState != "available" {
			t.Errorf("progress of a waiting job: %+v", p)
		}
		if reads++; reads == 3 {
			break
		}
	}
	if reads != 3 {
		t.Errorf("Follow yielded %d reads before the loop broke, want 3", reads)
	}

	rc := &river.Config{Schema: "usersync"}
	e.ConfigureRiverInserts(rc)
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.JobCancel(ctx, b.JobID()); err != nil {
		t.Fatal(err)
	}
	var last engine.BackfillProgress
	for p, err := range b.Follow(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	if !last.Done || last.Run != nil || last.JobState != "cancelled" || last.Completed() {
		t.Errorf("last progress of a cancelled job: %+v", last)
	}
	if _, err := b.Wait(ctx); !errors.Is(err, engine.ErrNoRun) {
		t.Errorf("Wait on a cancelled job: %v, want ErrNoRun", err)
	}
}

// TestHeldBackfillConfirm: a backfill that would delete too many users
// ends held with the count, Status says so, ConfirmHeld refuses another
// run id and then applies the deletions; ResumeDeletions reports nothing
// paused; an unknown provider is an error.
func TestHeldBackfillConfirm(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 8)
	fake := stackfake.New(stackfake.Options{Seed: 4})
	t.Cleanup(fake.Close)
	ids := fake.Seed(12)
	e, err := engine.New(ctx, pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rc := &river.Config{Schema: "usersync"}
	if err := e.ConfigureRiver(rc); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.WithoutCancel(ctx)) })

	if _, err := e.StartBackfill(ctx, "clerk"); err == nil {
		t.Error("StartBackfill of a provider not configured: no error")
	}
	backfill := func() *engine.Run {
		t.Helper()
		b, err := e.StartBackfill(ctx, "stackauth")
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := backfill(); r.Status != engine.RunCompleted || r.Written != 12 {
		t.Fatalf("first backfill: %s, %d written; want completed, 12", r.Status, r.Written)
	}
	for _, id := range ids[:11] {
		fake.DeleteUser(id)
	}
	held := backfill()
	if held.Status != engine.RunHeld || held.HeldDeletions == nil || *held.HeldDeletions != 11 || held.HeldLive == nil || *held.HeldLive != 12 {
		t.Fatalf("second backfill: %+v; want held, 11 of 12", held)
	}
	st, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Healthy() || st.Providers[0].HeldRun == nil || st.Providers[0].HeldRun.ID != held.ID ||
		!strings.Contains(strings.Join(st.Attention, "\n"), fmt.Sprintf("backfill run %d is held", held.ID)) {
		t.Errorf("Status after a held run: held %v, attention %v", st.Providers[0].HeldRun, st.Attention)
	}
	if _, err := e.ConfirmHeld(ctx, "stackauth", held.ID+100); err == nil || !strings.Contains(err.Error(), "not stackauth's current held run") {
		t.Errorf("ConfirmHeld of another run: %v", err)
	}
	if live, _ := countUsers(t, pool); live != 12 {
		t.Errorf("a refused confirmation changed users_sync: %d live, want 12", live)
	}
	c, err := e.ConfirmHeld(ctx, "stackauth", held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.RunID != held.ID || c.Deleted != 11 || c.Held != 11 {
		t.Errorf("ConfirmHeld: %+v, want run %d, 11 deleted of 11 held", c, held.ID)
	}
	if live, deleted := countUsers(t, pool); live != 1 || deleted != 11 {
		t.Errorf("after ConfirmHeld: %d live, %d deleted; want 1, 11", live, deleted)
	}
	if _, err := e.ConfirmHeld(ctx, "stackauth", 0); err == nil || !strings.Contains(err.Error(), "no held backfill run") {
		t.Errorf("ConfirmHeld again: %v", err)
	}
	if resumed, woken, err := e.ResumeDeletions(ctx, "stackauth"); err != nil || resumed || woken != 0 {
		t.Errorf("ResumeDeletions with nothing paused: %v, %d, %v", resumed, woken, err)
	}
}

func countUsers(t *testing.T, pool *pgxpool.Pool) (live, deleted int64) {
	t.Helper()
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM neon_identity.users_sync").Scan(&live, &deleted); err != nil {
		t.Fatal(err)
	}
	return live, deleted
}

// TestCloseJoinsBackgroundWork: Close returns only once the background work
// that Start began has ended, including the last flush of the status record,
// so nothing it holds is lost and nothing still runs when the app closes
// its pool. A webhook accepted just before Close is in provider_status when
// Close returns (the timed flush, every second, has not come yet).
func TestCloseJoinsBackgroundWork(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 4)
	fake := stackfake.New(stackfake.Options{Seed: 5})
	t.Cleanup(fake.Close)
	e, err := engine.New(ctx, pool, engine.Config{Providers: []engine.Provider{{Client: stackClient(fake)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rc := &river.Config{Schema: engine.DefaultInternalSchema}
	e.ConfigureRiverInserts(rc)
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hooks, err := e.WebhookHandler(client)
	if err != nil {
		t.Fatal(err)
	}
	body, header := fake.Webhook(provider.EventUserChanged, fake.CreateUser())
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stackauth", bytes.NewReader(body))
	req.Header = header
	req.SetPathValue("provider", "stackauth")
	rec := httptest.NewRecorder()
	hooks.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("webhook answered %d: %s", rec.Code, rec.Body)
	}
	e.Close()
	var last *time.Time
	err = pool.QueryRow(ctx, `SELECT last_webhook_at FROM usersync.provider_status WHERE provider = 'stackauth'`).Scan(&last)
	if err != nil || last == nil {
		t.Errorf("after Close, provider_status.last_webhook_at = %v (err %v): the last flush had not run", last, err)
	}
}
