package integration_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestBackfillResumesAfterSIGKILL: a worker process SIGKILLed while a page of
// a run is being fetched leaves the run at its last committed page; a new
// worker resumes it there and completes it: no page skipped or counted twice,
// the same run, the same chain (guarantees 5 and 7). Slow: the killed job is
// rescued after about a minute. It runs for one provider only: the rescue is
// River's, and the rescued job re-fetches its page from the cursor stored in
// its args whatever the provider (see slowTestProvider). Clerk's, whose
// opaque cursor carries the most state, is the one exercised.
func TestBackfillResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	for _, prov := range slowTestProvider("clerk") {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			ps := bfPageSize(prov)
			n := 5*ps + ps/2
			s.Fake.Seed(n)
			pages := s.bfListPages()
			const latency = time.Second
			s.Fake.SetLatency(latency)

			w1 := s.Start(nil, "worker")
			done := s.bfBackfillAsync(3*time.Minute, "--wait")

			// Kill while a page after the second is being fetched: its job is
			// running and its request is still inside the fake's latency.
			var r *bfRun
			var j *bfJob
			Eventually(t, 60*time.Second, "a page after the 2nd is being fetched", func() string {
				r, j = s.bfLastRun(), s.bfActiveJob()
				if r == nil || r.Pages < 2 || j == nil || j.State != "running" || j.RunID != fmt.Sprint(r.ID) ||
					j.Cursor != r.NextCursor || j.RunningFor < 100*time.Millisecond || j.RunningFor > latency/2 {
					return fmt.Sprintf("run %+v, job %+v", r, j)
				}
				return ""
			})
			w1.Kill()
			killed := s.bfLastRun()
			if killed.Pages != r.Pages || killed.Pages >= pages || killed.Status != "running" {
				t.Fatalf("after SIGKILL the run is %+v; want it running at page %d of %d", killed, r.Pages, pages)
			}
			if jj := s.bfActiveJob(); jj == nil || jj.ID != j.ID || jj.State != "running" {
				t.Fatalf("after SIGKILL the page job is %+v; want job %d still marked running", jj, j.ID)
			}
			s.Fake.SetLatency(0)

			s.Start(nil, "worker")
			res := bfAwait(t, done, 150*time.Second)
			if res.code != 0 {
				t.Fatalf("backfill --wait exited %d:\n%s", res.code, tail(res.out, 3000))
			}
			runs := s.bfRuns()
			if len(runs) != 1 {
				t.Fatalf("want the one run resumed, got runs %+v", runs)
			}
			fin := runs[0]
			if fin.Status != "completed" || fin.Pages != pages || fin.Listed != int64(n) || fin.Written != int64(n) ||
				fin.Restarts != 0 || fin.Deleted != 0 {
				t.Errorf("run = %+v; want completed, %d pages, %d listed and written, no restart, no deletion", fin, pages, n)
			}
			// The killed page's job was rescued and re-run: one job per page.
			if jc := s.JobCounts("backfill_page"); jc["completed"] != pages || len(jc) != 1 {
				t.Errorf("backfill_page jobs by state = %v; want only completed = %d", jc, pages)
			}
			if c := s.bfCount(`SELECT count(*) FROM `+pgx.Identifier{s.Internal}.Sanitize()+`.river_job WHERE id = $1 AND attempt = 2 AND state = 'completed'`, j.ID); c != 1 {
				t.Errorf("the page job running at the kill (%d) was not rescued and completed on its second attempt", j.ID)
			}
			if d := s.Diff(); d != "" {
				t.Errorf("users missing or wrong after the resumed run:\n%s", d)
			}
		})
	}
}
