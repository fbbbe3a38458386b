package integration_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// schemas lists the non-system schemas of the test database.
func (s *System) schemas() string {
	s.t.Helper()
	var out string
	if err := s.Pool.QueryRow(s.t.Context(), `SELECT coalesce(string_agg(nspname, ',' ORDER BY nspname), '') FROM pg_namespace
		WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'public')`).Scan(&out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// TestMigrate (README "Commands"): on a never-migrated database serve and worker refuse to
// start and name `usersync migrate`; `migrate --print-sql` prints SQL and
// creates nothing; two `migrate` processes at once both succeed (and a
// third run is a no-op); then the service works.
func TestMigrate(t *testing.T) {
	prov := providerNames()[0]
	t.Parallel()
	s := NewSystem(t, prov, map[string]string{"_NO_MIGRATE": "1", "USERSYNC_DB_MAX_CONNS": "4"})

	for _, cmd := range []string{"serve", "worker"} {
		code, out := s.Run(nil, cmd)
		if code == 0 || !strings.Contains(out, "usersync migrate") {
			t.Errorf("%s on an unmigrated database: exit %d, output %q; want non-zero and a message naming `usersync migrate`", cmd, code, out)
		}
	}

	code, out := s.Run(nil, "migrate", "--print-sql")
	if code != 0 {
		t.Fatalf("migrate --print-sql exited %d: %s", code, out)
	}
	for _, want := range []string{"CREATE TABLE", "users_sync", "river_job", s.Schema} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate --print-sql output lacks %q", want)
		}
	}
	if got := s.schemas(); got != "" {
		t.Errorf("migrate --print-sql created schemas %q", got)
	}

	var wg sync.WaitGroup
	codes, outs := make([]int, 2), make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i], outs[i] = s.Run(nil, "migrate") }()
	}
	wg.Wait()
	for i := range 2 {
		if codes[i] != 0 {
			t.Errorf("concurrent migrate %d exited %d: %s", i, codes[i], outs[i])
		}
	}
	if code, out := s.Run(nil, "migrate"); code != 0 {
		t.Errorf("third migrate exited %d: %s", code, out)
	}
	if got := s.schemas(); !strings.Contains(got, s.Schema) || !strings.Contains(got, s.Internal) {
		t.Errorf("after migrate the schemas are %q", got)
	}
	if code, out := s.Run(nil, "migrate", "--print-sql"); code != 0 {
		t.Errorf("migrate --print-sql on a migrated database exited %d: %s", code, out)
	}

	sv := s.Start(nil, "serve")
	id := s.Fake.CreateUser()
	if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	s.WaitConverged(15 * time.Second)
	if code, body := httpGet(t, "http://"+sv.Addr+"/readyz", nil); code != 200 {
		t.Errorf("/readyz answered %d: %s", code, body)
	}
}

// TestConfigErrors (README "Configuration"): a malformed value stops the process at start with
// exit non-zero and one line naming the variable.
func TestConfigErrors(t *testing.T) {
	prov := providerNames()[0]
	t.Parallel()
	s := NewSystem(t, prov, map[string]string{"_NO_MIGRATE": "1"})
	for k, v := range map[string]string{
		"USERSYNC_WORKERS":           "abc",
		"USERSYNC_DB_MAX_CONNS":      "-3",
		"USERSYNC_DELETE_MODE":       "sometimes",
		"USERSYNC_BACKFILL_INTERVAL": "often",
		"USERSYNC_SCHEMA":            "bad schema;",
		"USERSYNC_LOG_FORMAT":        "xml",
		rateLimitVar[prov]:           "fast",
		"WORKOS_RATE_LIMIT":          "0",
		"DATABASE_URL":               unset,
	} {
		for _, cmd := range []string{"serve", "worker"} {
			code, out := s.Run(map[string]string{k: v}, cmd)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(out, k) {
				t.Errorf("%s with %s=%q: exit %d, output %q; want non-zero and one line naming %s", cmd, k, v, code, out, k)
			}
		}
	}
}
