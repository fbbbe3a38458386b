package integration_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// TestCrashRecovery (docs/guarantees.md §7): a `worker` process SIGKILLed while it works a
// sync job has that job re-run by another worker within about a minute.
//
// SLOW (~30–60 s, River's rescuer runs every 30 s): with
// TestBackfillResumesAfterSIGKILL, the only tests that wait for a stuck-job
// rescue; keep it that way. It runs in parallel with the others and is not
// skipped by -short. It runs for one provider only: the rescue is River's and
// does not depend on the provider (see slowTestProvider).
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	for _, prov := range slowTestProvider("stackauth") {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			sv := s.Serve(map[string]string{"USERSYNC_WORKERS": "0"}) // HTTP only
			w1 := s.Start(map[string]string{"USERSYNC_WORKERS": "2"}, "worker")
			id := s.Fake.CreateUser()
			s.Fake.SetLatency(10 * time.Second)
			before := s.Fake.Requests()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			Eventually(t, 15*time.Second, "the job is running and its fetch in flight", func() string {
				j, _ := s.JobOf(id)
				if j.State != "running" || s.Fake.Requests() == before {
					return fmt.Sprintf("job %+v, provider requests %d", j, s.Fake.Requests()-before)
				}
				return ""
			})
			w1.Kill()
			killed := time.Now()
			s.Fake.ClearFaults()
			s.Start(map[string]string{"USERSYNC_WORKERS": "2"}, "worker")
			Eventually(t, 75*time.Second, "the killed worker's job re-run and its row written", func() string {
				if _, ok := s.Rows()[id]; !ok {
					return "no row yet; job " + fmt.Sprint(s.JobOf(id))
				}
				return ""
			})
			t.Logf("row written %s after SIGKILL", time.Since(killed).Round(time.Second))
			s.WaitConverged(5 * time.Second)
			j, _ := s.JobOf(id)
			if j.State != "completed" || j.Attempt < 2 {
				t.Errorf("job after recovery: %+v, want completed on a later attempt", j)
			}
		})
	}
}
