package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// TestBackfillInitialLoad: `usersync backfill --wait` loads tens of thousands
// of users as a chain of backfill_page jobs, one page per job, and returns
// once the run is complete (README "Commands"; docs/jobs.md, guarantee 5).
//
// Tens of thousands for Stack Auth (26 pages of 1000); for the others about
// twenty pages of their page size: the chain of page jobs is the same for
// every provider, and 25,000 users at WorkOS's 100 a page would only spend
// the CPU the other tests share.
func TestBackfillInitialLoad(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			s.Serve(nil)
			n := 25_250
			if prov != "stackauth" {
				n = 20*bfPageSize(prov) + bfPageSize(prov)/4
			}
			s.Fake.Seed(n)
			pages := s.bfListPages()

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code, out := s.Backfill(ctx, "--wait")
			if code != 0 {
				t.Fatalf("backfill --wait exited %d:\n%s", code, tail(out, 3000))
			}
			if !strings.Contains(out, "backfill enqueued") || !strings.Contains(out, "completed") {
				t.Errorf("backfill --wait output does not say it enqueued and completed a run:\n%s", tail(out, 3000))
			}
			runs := s.bfRuns()
			if len(runs) != 1 {
				t.Fatalf("want exactly 1 backfill run, got %+v", runs)
			}
			r := runs[0]
			if r.Status != "completed" || r.Listed != int64(n) || r.Pages != pages || r.Written != int64(n) || r.Deleted != 0 || r.LastError != nil {
				t.Errorf("run = %+v; want completed, %d listed, %d pages, %d written, 0 deleted, no error", r, n, pages, n)
			}
			// One job per page, all completed, nothing left over.
			jc := s.JobCounts("backfill_page")
			if jc["completed"] != pages || len(jc) != 1 {
				t.Errorf("backfill_page jobs by state = %v; want only completed = %d (one job per page)", jc, pages)
			}
			if d := s.Diff(); d != "" {
				t.Fatalf("users_sync differs from the provider after backfill --wait returned:\n%s", d)
			}
		})
	}
}

// TestBackfillInfersDeletions: a second complete run marks exactly the users
// it never saw as deleted (soft) or removes them (hard), writes exactly the
// users that changed, and leaves every other row untouched (same xmin).
func TestBackfillInfersDeletions(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"soft", "hard"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				s := NewSystem(t, prov, map[string]string{"USERSYNC_DELETE_MODE": mode})
				s.Serve(nil)
				ps := bfPageSize(prov)
				n := 4*ps + ps/3
				ids := s.Fake.Seed(n)
				r1 := s.bfBackfillWait(t, time.Minute)
				if r1.Listed != int64(n) || r1.Written != int64(n) || r1.Deleted != 0 {
					t.Fatalf("first run = %+v; want %d listed and written, 0 deleted", r1, n)
				}
				if d := s.Diff(); d != "" {
					t.Fatalf("not converged after the first run:\n%s", d)
				}
				before := s.bfXmins()

				// Deleted at the provider with no webhook: first and last user,
				// users either side of page boundaries, one in the middle.
				deleted := map[string]bool{}
				for _, i := range []int{0, ps - 1, ps, 2*ps + 7, 3 * ps, 3*ps + 1, n - 1} {
					if !s.Fake.DeleteUser(ids[i]) {
						t.Fatalf("fake: delete %s failed", ids[i])
					}
					deleted[ids[i]] = true
				}
				updated := map[string]bool{}
				for _, i := range []int{1, ps + 1, 2 * ps, 3*ps + 5, n - 2} {
					if !s.Fake.UpdateUser(ids[i]) {
						t.Fatalf("fake: update %s failed", ids[i])
					}
					updated[ids[i]] = true
				}

				r2 := s.bfBackfillWait(t, time.Minute)
				if r2.ID == r1.ID {
					t.Fatalf("second backfill did not start a new run")
				}
				if want := int64(n - len(deleted)); r2.Listed != want || r2.Written != int64(len(updated)) || r2.Deleted != int64(len(deleted)) {
					t.Errorf("second run = %+v; want %d listed, %d written, %d deleted", r2, want, len(updated), len(deleted))
				}
				if d := s.Diff(); d != "" {
					t.Fatalf("not converged after the second run:\n%s", d)
				}
				rows := s.Rows()
				after := s.bfXmins()
				for id := range deleted {
					row, ok := rows[id]
					switch {
					case mode == "hard" && ok:
						t.Errorf("hard mode: row of deleted user %s still present", id)
					case mode == "soft" && (!ok || row.DeletedAt == nil):
						t.Errorf("soft mode: deleted user %s not marked deleted (row present: %v)", id, ok)
					}
				}
				untouched, rewritten := 0, 0
				for id, x := range before {
					if deleted[id] || updated[id] {
						if updated[id] && after[id] == x {
							t.Errorf("updated user %s: row not rewritten", id)
						}
						continue
					}
					untouched++
					if after[id] != x {
						if rewritten++; rewritten <= 5 {
							t.Errorf("unchanged user %s was rewritten (xmin %s → %s)", id, x, after[id])
						}
					}
				}
				if rewritten > 0 {
					t.Errorf("%d of %d unchanged rows were rewritten by the second run", rewritten, n-len(deleted)-len(updated))
				}
				if untouched != n-len(deleted)-len(updated) {
					t.Errorf("checked %d untouched rows, want %d", untouched, n-len(deleted)-len(updated))
				}

				// A third run with nothing changed writes and deletes nothing.
				r3 := s.bfBackfillWait(t, time.Minute)
				if r3.Written != 0 || r3.Deleted != 0 || r3.Listed != int64(n-len(deleted)) {
					t.Errorf("third run (no changes) = %+v; want 0 written, 0 deleted, %d listed", r3, n-len(deleted))
				}
				final, rewritten := s.bfXmins(), 0
				for id, x := range after {
					if final[id] != x {
						rewritten++
					}
				}
				if rewritten > 0 {
					t.Errorf("a run with no changes rewrote %d rows", rewritten)
				}
			})
		}
	}
}

// TestBackfillProviderFaults: a run that hits a long 5xx window or 429s is
// reported as running and failing (status exits non-zero), infers no
// deletion and is not reported complete while it fails; 5xx is retried with
// growing delays, 429 snoozes without spending attempts; once the provider
// recovers the run completes from where it stopped and then infers deletions.
func TestBackfillProviderFaults(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, fault := range []int{503, 429} {
			t.Run(fmt.Sprintf("%s/%d", prov, fault), func(t *testing.T) {
				t.Parallel()
				s := NewSystem(t, prov, nil)
				s.Serve(nil)
				ps := bfPageSize(prov)
				n := 6 * ps
				ids := s.Fake.Seed(n)
				r1 := s.bfBackfillWait(t, time.Minute)

				// Users deleted at the provider (no webhooks): only a complete
				// second run may mark them deleted.
				gone := []string{ids[3], ids[n/2], ids[n-1]}
				for _, id := range gone {
					s.Fake.DeleteUser(id)
				}
				pages := s.bfListPages()
				s.Fake.SetLatency(300 * time.Millisecond)
				done := s.bfBackfillAsync(2*time.Minute, "--wait")
				var r2 *bfRun
				Eventually(t, 30*time.Second, "second run commits its first page", func() string {
					r2 = s.bfLastRun()
					if r2 == nil || r2.ID == r1.ID || r2.Pages < 1 {
						return fmt.Sprintf("newest run: %+v", r2)
					}
					return ""
				})
				s.Fake.FailNext(-1, fault, time.Second)

				var j *bfJob
				switch fault {
				case 503:
					// Retried with backoff: wait for the third failed attempt.
					Eventually(t, 40*time.Second, "the page job fails 3 times", func() string {
						j = s.bfActiveJob()
						r := s.bfLastRun()
						if j == nil || j.Errors < 3 || j.Attempt != j.Errors || r.LastError == nil {
							return fmt.Sprintf("job %+v, run %+v", j, r)
						}
						return ""
					})
					if j.LastErrorAt == nil {
						t.Fatalf("job has errors but no error time: %+v", j)
					}
					if d := j.ScheduledAt.Sub(*j.LastErrorAt); d < 2500*time.Millisecond {
						t.Errorf("after attempt %d the retry is scheduled %s after the error; want a growing backoff (≈4s)", j.Attempt, d)
					}
				case 429:
					// Snoozed per Retry-After without spending attempts.
					Eventually(t, 40*time.Second, "the page job is snoozed 3 times", func() string {
						j = s.bfActiveJob()
						r := s.bfLastRun()
						if j == nil || j.Snoozes < 3 || r.LastError == nil {
							return fmt.Sprintf("job %+v, run %+v", j, r)
						}
						return ""
					})
					if j.Attempt > 1 || j.Errors != 0 {
						t.Errorf("429: job %+v spent attempts (attempt %d, %d errors) while snoozed %d times", j, j.Attempt, j.Errors, j.Snoozes)
					}
				}
				r := s.bfLastRun()
				want := map[int]string{503: "503", 429: "rate limited"}[fault]
				if r.ID != r2.ID || r.Status != "running" || r.LastError == nil || !strings.Contains(*r.LastError, want) {
					t.Errorf("failing run = %+v; want the same run, running, last_error mentioning %q", r, want)
				}
				if r.Pages >= pages {
					t.Errorf("run has %d pages while every request fails", r.Pages)
				}
				code, out := s.bfStatus()
				if code == 0 || !strings.Contains(out, "failing") || !strings.Contains(out, "running backfill") {
					t.Errorf("usersync status exited %d while the backfill fails; want non-zero, mentioning the failing run:\n%s", code, out)
				}
				rows := s.Rows()
				for _, id := range gone {
					if rows[id].DeletedAt != nil {
						t.Errorf("user %s marked deleted by a run that has not completed", id)
					}
				}
				if c := s.bfCount(`SELECT count(*) FROM `+pgx.Identifier{s.Internal}.Sanitize()+`.backfill_run WHERE status = 'completed' AND id = $1`, r2.ID); c != 0 {
					t.Errorf("failing run reported complete")
				}
				select {
				case res := <-done:
					t.Fatalf("backfill --wait returned (exit %d) while the run was failing:\n%s", res.code, res.out)
				default:
				}

				s.Fake.ClearFaults()
				res := bfAwait(t, done, 90*time.Second)
				if res.code != 0 {
					t.Fatalf("backfill --wait exited %d after the provider recovered:\n%s", res.code, tail(res.out, 3000))
				}
				r = s.bfLastRun()
				if r.ID != r2.ID || r.Status != "completed" || r.Deleted != int64(len(gone)) || r.Listed != int64(n-len(gone)) ||
					r.Pages != pages || r.LastError != nil {
					t.Errorf("recovered run = %+v; want run %d completed with %d listed, %d pages, %d deleted, no error",
						r, r2.ID, n-len(gone), pages, len(gone))
				}
				if d := s.Diff(); d != "" {
					t.Errorf("not converged after the run completed:\n%s", d)
				}
				if code, out := s.bfStatus(); code != 0 {
					t.Errorf("usersync status exited %d after the run completed:\n%s", code, out)
				}
			})
		}
	}
}

// TestBackfillWebhookRace: a webhook-driven sync that commits newer data
// while a backfill page holding older data is in flight wins; the page does
// not overwrite it (guarantee 3), whether the row is new or already there.
func TestBackfillWebhookRace(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			proxy := newHoldProxy(t, s.Fake.URL())
			s.Env[s.apiURLVar()] = proxy.URL
			sv := s.Serve(nil)
			const n = 50 // one page for every provider
			ids := s.Fake.Seed(n)

			race := func(id string) *bfRun {
				t.Helper()
				held, release := proxy.Arm(t)
				done := s.bfBackfillAsync(time.Minute, "--wait")
				select {
				case <-held:
				case res := <-done:
					t.Fatalf("backfill returned before listing: %d %s", res.code, res.out)
				case <-time.After(30 * time.Second):
					t.Fatal("the backfill never listed users")
				}
				// The page is fetched (old data), not yet written. Now the
				// user changes and its webhook's sync commits first.
				if !s.Fake.UpdateUser(id) {
					t.Fatalf("fake: update %s failed", id)
				}
				if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
					t.Fatalf("webhook answered %d", code)
				}
				newest := s.Fake.Snapshot()[id]
				Eventually(t, 15*time.Second, "the webhook's sync writes the newer data", func() string {
					row, ok := s.Rows()[id]
					if !ok || !jsonEqual(row.Raw, newest, nil) {
						return fmt.Sprintf("row present %v: %s", ok, row.Raw)
					}
					return ""
				})
				release()
				res := bfAwait(t, done, time.Minute)
				if res.code != 0 {
					t.Fatalf("backfill --wait exited %d:\n%s", res.code, tail(res.out, 3000))
				}
				if row := s.Rows()[id]; !jsonEqual(row.Raw, newest, nil) || row.DeletedAt != nil {
					t.Errorf("the backfill page overwrote user %s's newer data with what it fetched before:\n got %s\nwant %s", id, row.Raw, newest)
				}
				if d := s.Diff(); d != "" {
					t.Errorf("not converged:\n%s", d)
				}
				return s.bfLastRun()
			}

			// The row does not exist yet: the sync inserts it, the page skips it.
			r1 := race(ids[10])
			if r1.Status != "completed" || r1.Listed != n || r1.Written != n-1 {
				t.Errorf("first run = %+v; want completed, %d listed, %d written (the user synced meanwhile skipped)", r1, n, n-1)
			}
			// The row exists: the page's older copy must not replace the sync's.
			r2 := race(ids[20])
			if r2.ID == r1.ID || r2.Status != "completed" || r2.Listed != n || r2.Written != 0 || r2.Deleted != 0 {
				t.Errorf("second run = %+v; want a new run, completed, %d listed, nothing written or deleted", r2, n)
			}
		})
	}
}

// TestBackfillCursorUserDeleted (Stack Auth): the inclusive cursor names the
// first user of the next page; when that user is deleted between pages the
// run carries on from the last user it saw, and when that one is gone too it
// lists again from the start. Either way it never ends early, rewrites
// nothing unchanged, and infers no false deletion (guarantee 5).
func TestBackfillCursorUserDeleted(t *testing.T) {
	if _, ok := fakes["stackauth"]; !ok {
		t.Skip("no Stack Auth fake")
	}
	t.Parallel()
	s := NewSystem(t, "stackauth", nil)
	s.Serve(nil)
	const n = 5_500
	s.Fake.Seed(n)
	r1 := s.bfBackfillWait(t, time.Minute)

	s.Fake.SetLatency(time.Second)
	done := s.bfBackfillAsync(2*time.Minute, "--wait")
	atPages := func(p int) bfRun {
		var r *bfRun
		Eventually(t, 30*time.Second, fmt.Sprintf("second run commits page %d", p), func() string {
			r = s.bfLastRun()
			if r == nil || r.ID == r1.ID || r.Pages != p {
				return fmt.Sprintf("newest run: %+v", r)
			}
			return ""
		})
		if r.Pages != p || r.NextCursor == "" {
			t.Fatalf("missed page %d (the chain went on): %+v", p, r)
		}
		return *r
	}
	// Between pages 1 and 2: the cursor's user and the last user listed are
	// deleted; the run resumes from a user listed just before them.
	ra := atPages(1)
	if !s.Fake.DeleteUser(ra.NextCursor) || !s.Fake.DeleteUser(ra.LastUserID) {
		t.Fatalf("fake: delete users %s, %s failed", ra.NextCursor, ra.LastUserID)
	}
	// Between pages 3 and 4: the cursor's user and every user the run keeps
	// to resume from: it must list again from the start.
	rb := atPages(3)
	if len(rb.Recent) == 0 || rb.Recent[len(rb.Recent)-1] != rb.LastUserID {
		t.Fatalf("run keeps no users to resume from: %+v", rb)
	}
	for _, id := range append([]string{rb.NextCursor}, rb.Recent...) {
		if !s.Fake.DeleteUser(id) {
			t.Fatalf("fake: delete user %s failed", id)
		}
	}
	res := bfAwait(t, done, 90*time.Second)
	if res.code != 0 {
		t.Fatalf("backfill --wait exited %d:\n%s", res.code, tail(res.out, 3000))
	}
	r := s.bfLastRun()
	if r.ID != ra.ID || r.Status != "completed" || r.Restarts != 1 {
		t.Errorf("run = %+v; want run %d completed with exactly 1 restart from the start (page 1→2 resumes without one)", r, ra.ID)
	}
	if r.Written != 0 {
		t.Errorf("run rewrote %d unchanged users (relisting must write nothing)", r.Written)
	}
	// The two cursor users were never listed by the run: inferred deleted.
	// The others were listed before their deletion: only their webhooks can
	// tell (none sent here), so they are the only differences.
	if r.Deleted != 2 {
		t.Errorf("run marked %d users deleted; want 2 (the cursor users)", r.Deleted)
	}
	listedThenDeleted := map[string]bool{ra.LastUserID: true}
	for _, id := range rb.Recent {
		listedThenDeleted[id] = true
	}
	live, rows := s.Fake.Snapshot(), s.Rows()
	for id, row := range rows {
		_, isLive := live[id]
		switch {
		case isLive && row.DeletedAt != nil:
			t.Errorf("live user %s marked deleted", id)
		case !isLive && listedThenDeleted[id] && row.DeletedAt != nil:
			t.Errorf("user %s was listed by the run, yet its deletion was inferred", id)
		case !isLive && !listedThenDeleted[id] && row.DeletedAt == nil:
			t.Errorf("user %s never listed by the complete run but not marked deleted", id)
		}
	}
	for id := range live {
		if _, ok := rows[id]; !ok {
			t.Errorf("live user %s missing", id)
			break
		}
	}
}

// TestBackfillSchedule: with USERSYNC_BACKFILL_INTERVAL set, a service on a
// database that never had a complete run starts one at once; restarting it
// right after a complete run starts none; once the last complete run is
// older than half the interval, a restart starts one again.
func TestBackfillSchedule(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_BACKFILL_INTERVAL": "1h"})
			const n = 1_500
			s.Fake.Seed(n)
			is := pgx.Identifier{s.Internal}.Sanitize()
			periodicDone := func(want int) func() string {
				return func() string {
					c := s.bfCount(`SELECT count(*) FROM ` + is + `.river_job WHERE kind = 'backfill_page' AND state = 'completed'
						AND (metadata->>'periodic')::boolean AND coalesce(args->>'run_id', '') = ''`)
					if c < want {
						return fmt.Sprintf("%d scheduled backfill jobs completed, want %d", c, want)
					}
					return ""
				}
			}

			sv := s.Serve(nil)
			Eventually(t, time.Minute, "the scheduled backfill runs on start", func() string {
				if r := s.bfLastRun(); r == nil || r.Status != "completed" {
					return fmt.Sprintf("newest run: %+v", r)
				}
				return ""
			})
			if r := s.bfLastRun(); r.Listed != n {
				t.Errorf("scheduled run listed %d users, want %d", r.Listed, n)
			}
			if d := s.Diff(); d != "" {
				t.Errorf("not converged after the scheduled run:\n%s", d)
			}
			sv.Stop()

			// A deploy right after: the scheduled job runs and skips.
			sv = s.Serve(nil)
			Eventually(t, 30*time.Second, "the restarted service's scheduled job ran", periodicDone(2))
			if runs := s.bfRuns(); len(runs) != 1 {
				t.Errorf("restart right after a complete run started a new run: %+v", runs)
			}
			sv.Stop()

			// The last complete run started more than half an interval ago.
			if _, err := s.Pool.Exec(context.Background(), `UPDATE `+is+`.backfill_run SET started_at = started_at - interval '40 minutes'`); err != nil {
				t.Fatal(err)
			}
			s.Serve(nil)
			Eventually(t, time.Minute, "a restart after half an interval starts a new run", func() string {
				if runs := s.bfRuns(); len(runs) != 2 || runs[1].Status != "completed" {
					return fmt.Sprintf("runs: %+v", runs)
				}
				return ""
			})
		})
	}
}

// TestBackfillAlreadyRunning: `usersync backfill` while a run is going says
// it follows that run instead of starting another; both commands wait for
// the one run and exit 0.
func TestBackfillAlreadyRunning(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			s.Serve(nil)
			ps := bfPageSize(prov)
			n := 4 * ps
			s.Fake.Seed(n)
			s.Fake.SetLatency(400 * time.Millisecond)
			first := s.bfBackfillAsync(time.Minute, "--wait")
			Eventually(t, 30*time.Second, "the run commits its first page", func() string {
				if r := s.bfLastRun(); r == nil || r.Pages < 1 {
					return fmt.Sprintf("newest run: %+v", r)
				}
				return ""
			})
			if r := s.bfLastRun(); r.Status != "running" {
				t.Fatalf("run already %s; the test needs it running", r.Status)
			}
			code, out := s.bfStatus()
			if !strings.Contains(out, "running backfill") || !strings.Contains(out, "pages") {
				t.Errorf("usersync status (exit %d) does not show the running backfill's progress:\n%s", code, out)
			}
			second := bfAwait(t, s.bfBackfillAsync(time.Minute, "--wait"), time.Minute)
			one := bfAwait(t, first, time.Minute)
			if one.code != 0 || second.code != 0 {
				t.Fatalf("exit codes %d and %d:\n%s\n---\n%s", one.code, second.code, one.out, second.out)
			}
			if !strings.Contains(second.out, "already") {
				t.Errorf("second backfill does not say a run is already going:\n%s", second.out)
			}
			if !strings.Contains(second.out, "completed") {
				t.Errorf("second backfill --wait did not follow the run to completion:\n%s", second.out)
			}
			runs := s.bfRuns()
			if len(runs) != 1 || runs[0].Status != "completed" || runs[0].Listed != int64(n) {
				t.Errorf("runs = %+v; want exactly one, completed, %d listed", runs, n)
			}
		})
	}
}

// TestBackfillCommandJoinsScheduledJob: `usersync backfill` run while a
// scheduled backfill job is still waiting (workers down, or a deploy's
// RunOnStart job) joins that job; the operator asked for a backfill, so it
// must happen even though a complete run started recently, and --wait must
// return once it completed.
func TestBackfillCommandJoinsScheduledJob(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, wait := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wait=%v", prov, wait), func(t *testing.T) {
				t.Parallel()
				s := NewSystem(t, prov, map[string]string{"USERSYNC_BACKFILL_INTERVAL": "1h"})
				const n = 1_200
				ids := s.Fake.Seed(n)
				sv := s.Serve(nil)
				Eventually(t, time.Minute, "the scheduled backfill runs on start", func() string {
					if r := s.bfLastRun(); r == nil || r.Status != "completed" {
						return fmt.Sprintf("newest run: %+v", r)
					}
					return ""
				})
				sv.Stop()

				// No worker is running; a scheduled job is waiting, as the
				// periodic enqueuer inserts it.
				rc, err := river.NewClient(riverpgxv5.New(s.Pool), &river.Config{Schema: s.Internal, SkipUnknownJobCheck: true})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := rc.Insert(context.Background(), jobs.BackfillPageArgs{Provider: prov}, nil); err != nil {
					t.Fatal(err)
				}
				s.Fake.DeleteUser(ids[5])
				args := []string{}
				if wait {
					args = append(args, "--wait")
				}
				done, out := s.bfBackfillAsyncOut(time.Minute, args...)
				Eventually(t, 10*time.Second, "the backfill command joins the waiting job", func() string {
					if o := out.String(); !strings.Contains(o, "already") {
						return "output so far: " + o
					}
					return ""
				})
				s.Serve(nil)
				res := bfAwait(t, done, 45*time.Second)
				if res.code != 0 {
					t.Fatalf("backfill exited %d:\n%s", res.code, tail(res.out, 3000))
				}
				Eventually(t, 30*time.Second, "the requested backfill runs", func() string {
					if runs := s.bfRuns(); len(runs) != 2 || runs[1].Status != "completed" || runs[1].Deleted != 1 {
						return fmt.Sprintf("runs = %+v; want a second, complete run that marked 1 user deleted", runs)
					}
					return ""
				})
				if d := s.Diff(); d != "" {
					t.Errorf("not converged:\n%s", d)
				}
			})
		}
	}
}

// TestBackfillCursorUserDeletedWorkOS: WorkOS's cursor is the last user of
// the previous page (exclusive `after`); when that user is deleted between
// pages, the run resumes from the user listed just before it — no restart,
// no false deletion.
func TestBackfillCursorUserDeletedWorkOS(t *testing.T) {
	if _, ok := fakes["workos"]; !ok {
		t.Skip("no WorkOS fake")
	}
	t.Parallel()
	s := NewSystem(t, "workos", nil)
	s.Serve(nil)
	s.Fake.Seed(350)
	r1 := s.bfBackfillWait(t, time.Minute)
	s.Fake.SetLatency(500 * time.Millisecond)
	done := s.bfBackfillAsync(time.Minute, "--wait")
	var ra *bfRun
	Eventually(t, 30*time.Second, "second run commits page 1", func() string {
		ra = s.bfLastRun()
		if ra == nil || ra.ID == r1.ID || ra.Pages != 1 {
			return fmt.Sprintf("newest run: %+v", ra)
		}
		return ""
	})
	if ra.NextCursor == "" || ra.NextCursor != ra.LastUserID {
		t.Fatalf("WorkOS cursor should be the page's last user: %+v", ra)
	}
	if !s.Fake.DeleteUser(ra.NextCursor) {
		t.Fatalf("fake: delete cursor user %s failed", ra.NextCursor)
	}
	res := bfAwait(t, done, time.Minute)
	if res.code != 0 {
		t.Fatalf("backfill --wait exited %d:\n%s", res.code, tail(res.out, 3000))
	}
	r := s.bfLastRun()
	if r.ID != ra.ID || r.Status != "completed" || r.Restarts != 0 || r.Deleted != 0 || r.Written != 0 {
		t.Errorf("run = %+v; want it completed from the previous user: no restart, nothing written or inferred deleted", r)
	}
	// The cursor user was listed before its deletion: only its webhook can tell.
	if d, want := s.Diff(), "deleted user not marked deleted "+ra.NextCursor; d != want {
		t.Errorf("users_sync vs provider:\n%s\nwant only:\n%s", d, want)
	}
}

// TestBackfillBadCredentialsFailsFast: a provider rejecting the credentials
// fails the backfill at once — `backfill --wait` exits non-zero naming the
// credentials instead of retrying for hours — both before the run's first
// page and in the middle of a run; no deletion is inferred.
func TestBackfillBadCredentialsFailsFast(t *testing.T) {
	if _, ok := fakes["stackauth"]; !ok {
		t.Skip("no Stack Auth fake")
	}
	t.Parallel()
	s := NewSystem(t, "stackauth", nil)
	s.Fake.Seed(2500)
	good := s.Env["STACK_SECRET_SERVER_KEY"]
	s.Env["STACK_SECRET_SERVER_KEY"] = good + "-revoked"
	sv := s.Serve(nil)
	code, out := s.Backfill(t.Context(), "--wait")
	if code == 0 || !strings.Contains(out, "credentials") {
		t.Fatalf("backfill --wait with bad credentials exited %d:\n%s", code, out)
	}
	sv.Stop()
	if n := len(s.Rows()); n != 0 {
		t.Fatalf("%d rows written with rejected credentials", n)
	}

	// Mid-run: page 1 commits, then the key is revoked at the fake (every
	// request fails 401 from then on).
	s.Env["STACK_SECRET_SERVER_KEY"] = good
	s.Serve(nil)
	s.Fake.SetLatency(300 * time.Millisecond)
	done := s.bfBackfillAsync(time.Minute, "--wait")
	Eventually(t, 30*time.Second, "page 1 committed", func() string {
		if r := s.bfLastRun(); r == nil || r.Pages < 1 {
			return fmt.Sprintf("run: %+v", r)
		}
		return ""
	})
	s.Fake.FailNext(-1, 401, 0)
	res := bfAwait(t, done, time.Minute)
	if res.code == 0 {
		t.Fatalf("backfill --wait exited 0 after the credentials were rejected:\n%s", res.out)
	}
	r := s.bfLastRun()
	if r.Status != "failed" || r.LastError == nil || !strings.Contains(*r.LastError, "credentials") || r.Deleted != 0 {
		t.Fatalf("run = %+v; want failed with a credentials error and no inferred deletion", r)
	}
}
