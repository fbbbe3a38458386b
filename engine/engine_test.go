package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/pgtest"
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
		{"separate River schema", engine.Config{Providers: one, RiverSchema: "river"}, "not supported yet"},
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
