package integration_test

import (
	"testing"
	"time"
)

// TestJobsInsertedBySQL: docs/jobs.md lets operators insert jobs with SQL; a
// sync_user job inserted with only kind and args (River's default queue)
// and a backfill_page job are both worked.
func TestJobsInsertedBySQL(t *testing.T) {
	t.Parallel()
	s := NewSystem(t, "stackauth", nil)
	existing := s.Fake.Seed(5)
	s.Serve(nil)
	id := s.Fake.CreateUser()
	if _, err := s.Pool.Exec(t.Context(), `INSERT INTO usersync.river_job (kind, args) VALUES ('sync_user', jsonb_build_object('provider', 'stackauth', 'user_id', $1::text))`, id); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 15*time.Second, "SQL-inserted sync_user job worked", func() string {
		if _, ok := s.Rows()[id]; !ok {
			return "row missing"
		}
		return ""
	})
	if _, err := s.Pool.Exec(t.Context(), `INSERT INTO usersync.river_job (kind, queue, args) VALUES ('backfill_page', 'backfill_stackauth', '{"provider": "stackauth", "run_id": "", "cursor": "", "force": true}')`); err != nil {
		t.Fatal(err)
	}
	s.WaitConverged(15 * time.Second)
	if len(s.Rows()) != len(existing)+1 {
		t.Fatalf("rows = %d, want %d", len(s.Rows()), len(existing)+1)
	}
}
