package integration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// TestAtomicity (docs/guarantees.md §4): a row change and its job's completion commit
// together or not at all. A test trigger makes one side fail inside the
// worker's transaction: the other side must not commit either. Once the
// trigger is gone, the retried job converges. Finally, every completed job
// has its row written with a fetch token at least as new as the job's.
func TestAtomicity(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, failing := range []string{"row write", "job completion"} {
			t.Run(prov+"/"+failing, func(t *testing.T) {
				t.Parallel()
				s := NewSystem(t, prov, nil)
				good, bad := s.Fake.CreateUser(), s.Fake.CreateUser()
				switch failing {
				case "row write":
					s.Exec(fmt.Sprintf(`CREATE FUNCTION public.fail_row() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NEW.id = %s THEN RAISE EXCEPTION 'test: users_sync write refused'; END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER fail_row BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION public.fail_row();`, quoteLit(bad), s.table()))
				case "job completion":
					s.Exec(fmt.Sprintf(`CREATE FUNCTION public.fail_complete() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NEW.state = 'completed' AND NEW.kind = 'sync_user' AND NEW.args->>'user_id' = %s THEN
    RAISE EXCEPTION 'test: job completion refused';
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER fail_complete BEFORE UPDATE ON %s.river_job FOR EACH ROW EXECUTE FUNCTION public.fail_complete();`, quoteLit(bad), s.is()))
				}
				sv := s.Serve(nil)
				for _, id := range []string{good, bad} {
					if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
						t.Fatalf("webhook answered %d", code)
					}
				}
				Eventually(t, 20*time.Second, "the failing job records errors", func() string {
					j, ok := s.JobOf(bad)
					if !ok || j.Errors < 2 {
						return fmt.Sprintf("job %+v", j)
					}
					return ""
				})
				if j, _ := s.JobOf(bad); j.State == "completed" {
					t.Fatalf("job of %s completed although its transaction failed: %+v", bad, j)
				}
				rows := s.Rows()
				if _, ok := rows[bad]; ok {
					t.Fatalf("row of %s written although its job's transaction failed", bad)
				}
				if _, ok := rows[good]; !ok {
					t.Fatalf("row of %s (unaffected) not written", good)
				}
				if n := s.Int(`SELECT count(*) FROM `+s.is()+`.user_state WHERE user_id = $1 AND fetched_at IS NOT NULL`, bad); n != 0 {
					t.Errorf("user_state of %s has a fetch token although nothing committed", bad)
				}

				s.Exec(`DROP TRIGGER IF EXISTS fail_row ON ` + s.table() + `; DROP TRIGGER IF EXISTS fail_complete ON ` + s.is() + `.river_job`)
				s.WaitConverged(30 * time.Second)
				Eventually(t, 10*time.Second, "no sync job left", s.Idle)
				if j, _ := s.JobOf(bad); j.State != "completed" || j.Errors < 2 {
					t.Errorf("job of %s after recovery: %+v, want completed after its errors", bad, j)
				}
				s.checkCompletedJobsHaveRows()
			})
		}
	}
}

// checkCompletedJobsHaveRows asserts that every completed sync_user job of a
// live user left a row with a fetch token no older than its attempt.
func (s *System) checkCompletedJobsHaveRows() {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT j.id, j.args->>'user_id', (u.id IS NOT NULL), coalesce(st.fetched_at >= j.attempted_at, false)
		FROM `+s.is()+`.river_job j
		LEFT JOIN `+s.table()+` u ON u.id = j.args->>'user_id'
		LEFT JOIN `+s.is()+`.user_state st ON st.provider = j.args->>'provider' AND st.user_id = j.args->>'user_id'
		WHERE j.kind = 'sync_user' AND j.state = 'completed'`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	live := s.Fake.Snapshot()
	n := 0
	for rows.Next() {
		var id int64
		var user string
		var hasRow, tokenOK bool
		if err := rows.Scan(&id, &user, &hasRow, &tokenOK); err != nil {
			s.t.Fatal(err)
		}
		n++
		if _, ok := live[user]; ok && !hasRow {
			s.t.Errorf("job %d (user %s) completed but no row was written", id, user)
		}
		if !tokenOK {
			s.t.Errorf("job %d (user %s) completed but user_state holds no token as new as its attempt", id, user)
		}
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	if n == 0 {
		s.t.Error("no completed sync_user job to check")
	}
}
