package integration_test

import (
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// TestProvidersIsolated: Stack Auth and Clerk sync into their own schemas
// of one database; a Clerk outage never stalls Stack Auth (separate queues),
// and Clerk catches up once it recovers.
func TestProvidersIsolated(t *testing.T) {
	t.Parallel()
	cf := clerkfake.New(clerkfake.Options{})
	t.Cleanup(cf.Close)
	extra := map[string]string{"STACK_SCHEMA": "stack_users", "CLERK_SCHEMA": "clerk_users", "USERSYNC_SCHEMA": "stack_users"}
	for k, v := range cf.Env() {
		extra[k] = v
	}
	stack := NewSystem(t, "stackauth", extra)
	clerk := &System{t: t, Provider: "clerk", Fake: cf, DBURL: stack.DBURL, Pool: stack.Pool, Env: stack.Env, Schema: "clerk_users", Internal: "usersync"}
	sv := stack.Serve(nil)

	send := func(s *System, n int) {
		for range n {
			id := s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("%s webhook answered %d", s.Provider, code)
			}
		}
	}
	send(stack, 10)
	send(clerk, 10)
	stack.WaitConverged(15 * time.Second)
	clerk.WaitConverged(15 * time.Second)

	cf.FailNext(-1, 503, 0)
	send(clerk, 10)
	send(stack, 10)
	stack.WaitConverged(15 * time.Second)
	if clerk.Diff() == "" {
		t.Fatal("Clerk converged during its outage: the outage was not exercised")
	}
	// Clerk's failures are retried with backoff, not lost.
	Eventually(t, 15*time.Second, "clerk sync jobs retrying", func() string {
		var n int
		if err := stack.Pool.QueryRow(t.Context(), `SELECT count(*) FROM usersync.river_job WHERE queue = 'sync_clerk' AND cardinality(errors) > 0 AND state <> 'completed'`).Scan(&n); err != nil {
			return err.Error()
		}
		if n == 0 {
			return "no clerk job has an error yet"
		}
		return ""
	})
	cf.ClearFaults()
	clerk.WaitConverged(60 * time.Second)
	stack.WaitConverged(5 * time.Second)
}
