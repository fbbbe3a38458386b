package integration_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// Tests of the deletion guard (docs/guarantees.md §10): a backfill run that would infer
// too many users deleted is held; a run of not-found answers on the sync
// path pauses deletions; operators see both and confirm or resume.

// emptyTwin starts a fake of s's provider that accepts the same credentials
// and has no users: a wrong server (say, another project or environment of
// the same provider) that lists nobody and answers every lookup with the
// provider's own not-found answer.
func (s *System) emptyTwin() fakekit.Fake {
	s.t.Helper()
	e := s.Fake.Env()
	var f fakekit.Fake
	switch s.Provider {
	case "stackauth":
		f = stackfake.New(stackfake.Options{ProjectID: e["STACK_PROJECT_ID"], SecretServerKey: e["STACK_SECRET_SERVER_KEY"], WebhookSecret: e["STACK_WEBHOOK_SECRET"]})
	case "clerk":
		f = clerkfake.New(clerkfake.Options{SecretKey: e["CLERK_SECRET_KEY"], WebhookSecret: e["CLERK_WEBHOOK_SECRET"]})
	case "workos":
		f = workosfake.New(workosfake.Options{APIKey: e["WORKOS_API_KEY"], WebhookSecret: e["WORKOS_WEBHOOK_SECRET"]})
	default:
		s.t.Fatalf("no twin for provider %q", s.Provider)
	}
	s.t.Cleanup(f.Close)
	return f
}

// switchProxy forwards every API request to one of two servers, switchable
// at any time: the real fake, or a wrong server (as if an operator pointed
// the API URL elsewhere and later fixed it).
type switchProxy struct {
	URL   string // the API base URL to configure usersync with
	wrong atomic.Bool
}

func newSwitchProxy(t testing.TB, right, wrong string) *switchProxy {
	t.Helper()
	ru, err := url.Parse(right)
	if err != nil {
		t.Fatal(err)
	}
	wu, err := url.Parse(wrong)
	if err != nil {
		t.Fatal(err)
	}
	if ru.Path != wu.Path {
		t.Fatalf("the two servers' base paths differ: %q, %q", ru.Path, wu.Path)
	}
	p := &switchProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		target := ru
		if p.wrong.Load() {
			target = wu
		}
		r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
		r.Out.Host = target.Host
	}}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p.URL = srv.URL + ru.Path
	return p
}

// guardSystem is a System whose usersync reaches the provider through a
// switchProxy (right: the fake; wrong: its empty twin), served by the
// binary.
type guardSystem struct {
	*System
	proxy *switchProxy
	sv    *Proc
}

func newGuardSystem(t *testing.T, prov string, extra map[string]string) *guardSystem {
	t.Helper()
	s := NewSystem(t, prov, extra)
	twin := s.emptyTwin()
	g := &guardSystem{System: s, proxy: newSwitchProxy(t, s.Fake.URL(), twin.URL())}
	for k, v := range s.WithAPI(g.proxy.URL) {
		s.Env[k] = v
	}
	g.sv = s.Start(nil, "serve")
	return g
}

// restart stops the service and starts it again with extra settings.
func (g *guardSystem) restart(t *testing.T, extra map[string]string) {
	t.Helper()
	g.sv.Terminate(t)
	g.sv = g.Start(extra, "serve")
}

// backfill runs `usersync backfill --wait` (the binary).
func (g *guardSystem) backfill() (int, string) {
	g.t.Helper()
	return g.Run(nil, "backfill", "--wait")
}

// mustComplete runs a backfill that must complete; it returns the run.
func (g *guardSystem) mustComplete(t *testing.T) *bfRun {
	t.Helper()
	code, out := g.backfill()
	r := g.bfLastRun()
	if code != 0 || r == nil || r.Status != "completed" {
		t.Fatalf("backfill --wait exited %d, newest run %+v; want a completed run:\n%s", code, r, tail(out, 3000))
	}
	return r
}

// heldDeletions reads the held count of run id.
func (g *guardSystem) heldDeletions(id int64) int {
	g.t.Helper()
	return g.Int(`SELECT coalesce(held_deletions, -1) FROM `+g.is()+`.backfill_run WHERE id = $1`, id)
}

// liveRows counts users_sync rows not marked deleted.
func (g *guardSystem) liveRows() int {
	g.t.Helper()
	return g.Int(`SELECT count(*) FROM ` + g.table() + ` WHERE deleted_at IS NULL`)
}

// mustHold runs a backfill that must end held, deleting nothing, with would
// held deletions; it checks what --wait, status, the log and the metrics
// say, and returns the run.
func (g *guardSystem) mustHold(t *testing.T, would int) *bfRun {
	t.Helper()
	live, total := g.liveRows(), len(g.Rows())
	code, out := g.backfill()
	r := g.bfLastRun()
	if r == nil || r.Status != "held" {
		t.Fatalf("newest run = %+v; want held\n%s", r, tail(out, 3000))
	}
	confirm := fmt.Sprintf("usersync backfill --confirm-deletions --provider %s --run %d", g.Provider, r.ID)
	if code == 0 || !strings.Contains(out, "held") || !strings.Contains(out, confirm) {
		t.Errorf("backfill --wait on a held run exited %d; want non-zero, saying it is held and naming %q:\n%s", code, confirm, tail(out, 3000))
	}
	if got := g.heldDeletions(r.ID); got != would {
		t.Errorf("run %d holds %d deletions, want %d", r.ID, got, would)
	}
	if r.Deleted != 0 || g.liveRows() != live || len(g.Rows()) != total {
		t.Errorf("held run deleted something: run %+v, live rows %d → %d, rows %d → %d", r, live, g.liveRows(), total, len(g.Rows()))
	}
	code, out = g.Run(nil, "status")
	if code != 1 || !strings.Contains(out, g.Provider+": backfill run "+strconv.FormatInt(r.ID, 10)+" is held") ||
		!strings.Contains(out, fmt.Sprintf("would mark %d of", would)) || !strings.Contains(out, confirm) {
		t.Errorf("status exited %d; want 1, naming %s, run %d held with %d deletions and %q:\n%s", code, g.Provider, r.ID, would, confirm, out)
	}
	Eventually(t, 10*time.Second, "ERROR line for the held run", func() string {
		for _, rec := range logRecords(g.sv.Logs()) {
			if rec["level"] == "ERROR" && strings.Contains(fmt.Sprint(rec["msg"]), "backfill run held") &&
				fmt.Sprint(rec["would_delete"]) == strconv.Itoa(would) && rec["confirm"] == confirm {
				return ""
			}
		}
		return "no ERROR log line about the held run with would_delete and confirm"
	})
	g.wantMetric(t, fmt.Sprintf(`usersync_backfill_held{provider=%q} 1`, g.Provider))
	g.wantMetric(t, fmt.Sprintf(`usersync_backfill_held_deletions{provider=%q} %d`, g.Provider, would))
	return r
}

// wantMetric waits until /metrics has a line starting with line.
func (g *guardSystem) wantMetric(t *testing.T, line string) {
	t.Helper()
	Eventually(t, 40*time.Second, "metric "+line, func() string { // the sampler runs every 15 s
		code, body := httpGet(t, "http://"+g.sv.Addr+"/metrics", nil)
		if code != 200 {
			return fmt.Sprintf("/metrics answered %d", code)
		}
		for l := range strings.Lines(body) {
			if strings.TrimSpace(l) == line {
				return ""
			}
		}
		return "no line " + line + " in /metrics:\n" + grepLines(body, strings.SplitN(line, "{", 2)[0])
	})
}

// TestDeleteGuardEmptyList (docs/guarantees.md §10): pointed at a server whose user list is
// empty, a backfill deletes nothing and ends held; status exits 1 naming it
// and the command that confirms it, an ERROR line and the metrics report
// it. Fixed, the next backfill completes and status is healthy again.
func TestDeleteGuardEmptyList(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"hard", "soft"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				g := newGuardSystem(t, prov, map[string]string{"USERSYNC_DELETE_MODE": mode})
				n := 40
				g.Fake.Seed(n)
				g.mustComplete(t)
				if d := g.Diff(); d != "" {
					t.Fatalf("not converged after the first backfill:\n%s", d)
				}

				g.proxy.wrong.Store(true)
				g.mustHold(t, n)
				if d := g.Diff(); d != "" {
					t.Fatalf("users_sync changed while the backfill was held:\n%s", d)
				}

				g.proxy.wrong.Store(false)
				r := g.mustComplete(t)
				if r.Deleted != 0 {
					t.Errorf("the backfill after the fix deleted %d users", r.Deleted)
				}
				if code, out := g.Run(nil, "status"); code != 0 || strings.Contains(out, "held") {
					t.Errorf("status after a complete run exited %d; want 0 and no held run:\n%s", code, out)
				}
				g.wantMetric(t, fmt.Sprintf(`usersync_backfill_held{provider=%q} 0`, prov))
				if d := g.Diff(); d != "" {
					t.Fatalf("not converged after the fix:\n%s", d)
				}
			})
		}
	}
}

// TestDeleteGuardShare (docs/guarantees.md §10): a run that would delete 5% of the live rows
// is applied, one that would delete 30% is held and applies once confirmed,
// with the exact command status names.
func TestDeleteGuardShare(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"hard", "soft"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			g := newGuardSystem(t, "stackauth", map[string]string{"USERSYNC_DELETE_MODE": mode})
			ids := g.Fake.Seed(300)
			g.mustComplete(t)

			// 5%: 15 of 300, more than 10 but not more than a tenth.
			for _, id := range ids[:15] {
				g.Fake.DeleteUser(id)
			}
			if r := g.mustComplete(t); r.Deleted != 15 {
				t.Fatalf("run deleting 5%% = %+v; want 15 deleted", r)
			}
			if d := g.Diff(); d != "" {
				t.Fatalf("not converged after the 5%% run:\n%s", d)
			}

			// 30%: 85 of the 285 left.
			for _, id := range ids[15:100] {
				g.Fake.DeleteUser(id)
			}
			r := g.mustHold(t, 85)
			code, out := g.Run(nil, "backfill", "--confirm-deletions", "--provider", "stackauth", "--run", strconv.FormatInt(r.ID+1, 10))
			if code == 0 || !strings.Contains(out, "is not stackauth's current held run") {
				t.Errorf("confirming a run that is not the held one exited %d:\n%s", code, out)
			}
			code, out = g.Run(nil, "backfill", "--confirm-deletions", "--provider", "stackauth", "--run", strconv.FormatInt(r.ID, 10))
			if code != 0 || !strings.Contains(out, "85 users marked deleted") {
				t.Fatalf("confirm exited %d; want 0 and 85 deleted:\n%s", code, out)
			}
			if d := g.Diff(); d != "" {
				t.Fatalf("not converged after the confirmation:\n%s", d)
			}
			runs := g.bfRuns()
			if last := runs[len(runs)-1]; last.ID != r.ID || last.Status != "completed" || last.Deleted != 85 {
				t.Errorf("confirmed run = %+v; want run %d completed with 85 deleted", last, r.ID)
			}
			if code, out := g.Run(nil, "status"); code != 0 {
				t.Errorf("status after the confirmation exited %d:\n%s", code, out)
			}
			code, out = g.Run(nil, "backfill", "--confirm-deletions", "--provider", "stackauth")
			if code == 0 || !strings.Contains(out, "no held backfill run") {
				t.Errorf("a second confirmation exited %d; want non-zero, nothing to confirm:\n%s", code, out)
			}
		})
	}
}

// TestDeleteGuardConfirmKeepsUsersWrittenSince: the confirmation recomputes
// the held run's deletions: users written since the run started (here by a
// sync after the API URL was fixed) are kept.
func TestDeleteGuardConfirmKeepsUsersWrittenSince(t *testing.T) {
	t.Parallel()
	g := newGuardSystem(t, "clerk", map[string]string{"USERSYNC_DELETE_MODE": "hard"})
	ids := g.Fake.Seed(30)
	g.mustComplete(t)
	g.proxy.wrong.Store(true)
	r := g.mustHold(t, 30)
	g.proxy.wrong.Store(false)
	g.SendAll(g.sv.Addr, provider.EventUserChanged, ids[:5], 5)
	Eventually(t, 15*time.Second, "syncs of 5 users", g.Idle)
	code, out := g.Run(nil, "backfill", "--confirm-deletions", "--provider", "clerk", "--run", strconv.FormatInt(r.ID, 10))
	if code != 0 || !strings.Contains(out, "25 users marked deleted (it held 30") {
		t.Fatalf("confirm exited %d; want 0 and 25 of the 30 deleted:\n%s", code, out)
	}
	rows := g.Rows()
	for _, id := range ids[:5] {
		if _, ok := rows[id]; !ok {
			t.Errorf("user %s, written after the held run started, was deleted by the confirmation", id)
		}
	}
	if len(rows) != 5 {
		t.Errorf("%d rows left, want the 5 written since", len(rows))
	}
}

// TestDeleteGuardEdges (docs/guarantees.md §10): with USERSYNC_DELETE_GUARD=0 only the
// 10-row floor lets a run delete: exactly 10 are applied, 11 are held;
// restarted with a larger guard, the next run applies them.
func TestDeleteGuardEdges(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"hard", "soft"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			g := newGuardSystem(t, "stackauth", map[string]string{"USERSYNC_DELETE_MODE": mode, "USERSYNC_DELETE_GUARD": "0"})
			ids := g.Fake.Seed(60)
			g.mustComplete(t)
			for _, args := range [][]string{
				{"--confirm-deletions", "--resume-deletions"}, {"--run", "1"}, {"--confirm-deletions", "--wait"},
				{"--confirm-deletions", "--provider", "clerk"},
			} {
				if code, out := g.Run(nil, append([]string{"backfill"}, args...)...); code != 2 {
					t.Errorf("backfill %v exited %d, want 2 (usage):\n%s", args, code, out)
				}
			}
			if code, out := g.Run(nil, "backfill", "--resume-deletions"); code != 0 || !strings.Contains(out, "not paused") {
				t.Errorf("resume with nothing paused exited %d:\n%s", code, out)
			}
			for _, id := range ids[:10] {
				g.Fake.DeleteUser(id)
			}
			if r := g.mustComplete(t); r.Deleted != 10 {
				t.Fatalf("run deleting exactly 10 = %+v; want 10 deleted", r)
			}
			for _, id := range ids[10:21] {
				g.Fake.DeleteUser(id)
			}
			g.mustHold(t, 11)

			g.restart(t, map[string]string{"USERSYNC_DELETE_GUARD": "0.25"})
			if r := g.mustComplete(t); r.Deleted != 11 {
				t.Fatalf("run after raising the guard = %+v; want 11 deleted", r)
			}
			if d := g.Diff(); d != "" {
				t.Fatalf("not converged after raising the guard:\n%s", d)
			}
			if code, out := g.Run(nil, "status"); code != 0 {
				t.Errorf("status after raising the guard exited %d:\n%s", code, out)
			}
		})
	}
}

var pausedRe = regexp.MustCompile(`deletions by sync jobs are paused .*: (\d+) users in a row were not found`)

// TestDeletionBreaker (docs/guarantees.md §10): pointed at a server that answers every lookup
// with the provider's own not-found, 50 users' user.updated events delete
// at most 10 rows, then deletions pause: status exits 1 naming the pause
// and the command that resumes, an ERROR line and a metric report it. The
// user.deleted events of 50 other users still delete all 50. Once the URL
// is fixed and deletions resumed, the waiting syncs converge.
func TestDeletionBreaker(t *testing.T) {
	t.Parallel()
	type tc struct{ prov, mode string }
	cases := []tc{{"stackauth", "soft"}}
	for _, p := range providerNames() {
		cases = append(cases, tc{p, "hard"})
	}
	for _, c := range cases {
		t.Run(c.prov+"/"+c.mode, func(t *testing.T) {
			t.Parallel()
			g := newGuardSystem(t, c.prov, map[string]string{"USERSYNC_DELETE_MODE": c.mode})
			ids := g.Fake.Seed(100)
			g.mustComplete(t)
			updated, deleted := ids[:50], ids[50:]

			g.proxy.wrong.Store(true)
			g.SendAll(g.sv.Addr, provider.EventUserChanged, updated, 8)
			waiting := func() int {
				return g.Int(`SELECT count(*) FROM `+g.is()+`.river_job WHERE kind = 'sync_user' AND state = 'scheduled'
					AND metadata ? 'usersync_deletion_paused_at' AND args->>'user_id' = ANY($1)`, updated)
			}
			var gone int
			Eventually(t, 30*time.Second, "the updated users' syncs either deleted or wait", func() string {
				live := g.Int(`SELECT count(*) FROM `+g.table()+` WHERE deleted_at IS NULL AND id = ANY($1)`, updated)
				gone = 50 - live
				if w := waiting(); w != live {
					return fmt.Sprintf("%d rows deleted, %d syncs waiting, want %d waiting", gone, w, live)
				}
				return ""
			})
			if gone > 10 || gone < 1 {
				t.Fatalf("the wrong server's not-found answers deleted %d rows; want 1..10", gone)
			}
			code, out := g.Run(nil, "status")
			resume := "usersync backfill --resume-deletions --provider " + c.prov
			if m := pausedRe.FindStringSubmatch(out); code != 1 || m == nil || !strings.Contains(out, resume) {
				t.Errorf("status exited %d; want 1, naming the pause and %q:\n%s", code, resume, out)
			}
			if !strings.Contains(grepLines(g.sv.Logs(), `"level":"ERROR"`), "deletions by sync paused") {
				t.Errorf("no ERROR line about the paused deletions:\n%s", tail(grepLines(g.sv.Logs(), `"level"`), 3000))
			}
			g.wantMetric(t, fmt.Sprintf(`usersync_sync_deletions_paused{provider=%q} 1`, c.prov))

			// Deletion events are the provider's word: they delete while paused.
			for _, id := range deleted {
				g.Fake.DeleteUser(id)
			}
			g.SendAll(g.sv.Addr, provider.EventUserDeleted, deleted, 8)
			Eventually(t, 30*time.Second, "all 50 deleted users deleted", func() string {
				if n := g.Int(`SELECT count(*) FROM `+g.table()+` WHERE deleted_at IS NULL AND id = ANY($1)`, deleted); n > 0 {
					return fmt.Sprintf("%d of the 50 users with a user.deleted event still live", n)
				}
				return ""
			})
			if w := waiting(); w != 50-gone {
				t.Errorf("%d syncs wait after the deletion events, want %d", w, 50-gone)
			}

			// A deletion event for a user whose sync waits coalesces into that
			// job (no second job) and records that the latest event was a
			// deletion: once resumed, its not-found is expected.
			var late []string
			jr, err := g.Pool.Query(context.Background(), `SELECT args->>'user_id' FROM `+g.is()+`.river_job
				WHERE kind = 'sync_user' AND state = 'scheduled' AND metadata ? 'usersync_deletion_paused_at' ORDER BY id LIMIT 3`)
			if err != nil {
				t.Fatal(err)
			}
			for jr.Next() {
				var id string
				if err := jr.Scan(&id); err != nil {
					t.Fatal(err)
				}
				late = append(late, id)
			}
			if jr.Err() != nil || len(late) != 3 {
				t.Fatalf("waiting syncs: %v %v", late, jr.Err())
			}
			for _, id := range late {
				g.Fake.DeleteUser(id)
			}
			g.SendAll(g.sv.Addr, provider.EventUserDeleted, late, 3)
			for _, id := range late {
				if n, kind := g.JobsOf(id), g.Int(`SELECT count(*) FROM `+g.is()+`.river_job WHERE kind = 'sync_user' AND args->>'user_id' = $1
					AND state = 'scheduled' AND metadata->>'usersync_last_event' = 'deleted'`, id); n != 1 || kind != 1 {
					t.Errorf("user %s: %d sync jobs, %d waiting with the deletion recorded; want the one waiting job, marked", id, n, kind)
				}
			}

			// Fixed and resumed: the waiting syncs fetch their users again.
			g.proxy.wrong.Store(false)
			code, out = g.Run(nil, "backfill", "--resume-deletions", "--provider", c.prov)
			if code != 0 || !strings.Contains(out, "resumed") {
				t.Fatalf("resume exited %d:\n%s", code, out)
			}
			Eventually(t, 30*time.Second, "the waiting syncs finish", g.Idle)
			rows := g.Rows()
			live := 0
			for _, id := range updated {
				if r, ok := rows[id]; ok && r.DeletedAt == nil {
					live++
				}
			}
			if want := 50 - gone - len(late); live != want {
				t.Errorf("%d of the updated users live after the resumed syncs, want %d", live, want)
			}
			for _, id := range late {
				if r, ok := rows[id]; ok && r.DeletedAt == nil {
					t.Errorf("user %s, whose latest event was a deletion, is live after the resumed sync", id)
				}
			}
			g.wantMetric(t, fmt.Sprintf(`usersync_sync_deletions_paused{provider=%q} 0`, c.prov))
			// The rows wrongly deleted before the breaker paused come back
			// with the next backfill.
			g.mustComplete(t)
			if d := g.Diff(); d != "" {
				t.Fatalf("not converged after the fix:\n%s", d)
			}
			if code, out := g.Run(nil, "status"); code != 0 {
				t.Errorf("status after the fix exited %d:\n%s", code, out)
			}
		})
	}
}

// TestDeletionBreakerCountsAcrossProcesses: the breaker's count lives in
// the database, so two worker processes together still delete at most 10.
func TestDeletionBreakerCountsAcrossProcesses(t *testing.T) {
	t.Parallel()
	g := newGuardSystem(t, "workos", map[string]string{"USERSYNC_DELETE_MODE": "hard"})
	ids := g.Fake.Seed(60)
	g.mustComplete(t)
	g.Start(nil, "worker")
	g.proxy.wrong.Store(true)
	g.SendAll(g.sv.Addr, provider.EventUserChanged, ids, 8)
	Eventually(t, 30*time.Second, "every sync deleted or waits", func() string {
		n := g.Int(`SELECT count(*) FROM ` + g.is() + `.river_job WHERE kind = 'sync_user' AND state NOT IN ('completed', 'scheduled')`)
		if n > 0 {
			return fmt.Sprintf("%d sync_user jobs neither completed nor waiting", n)
		}
		return ""
	})
	if gone := 60 - len(g.Rows()); gone > 10 || gone < 1 {
		t.Fatalf("two processes deleted %d rows; want 1..10", gone)
	}
}

// TestDeleteGuardScheduledRunAtStart: the case of the report. Restarted with
// the API URL pointing at a server whose list is empty, with a backfill
// interval set (so a scheduled run starts at once), usersync in hard mode
// deletes nothing: the run at start is held.
func TestDeleteGuardScheduledRunAtStart(t *testing.T) {
	t.Parallel()
	g := newGuardSystem(t, "workos", map[string]string{"USERSYNC_DELETE_MODE": "hard"})
	g.Fake.Seed(60)
	first := g.mustComplete(t)
	// That complete run is a day old: the scheduled run at start is due.
	g.Exec(`UPDATE `+g.is()+`.backfill_run SET started_at = started_at - interval '1 day', finished_at = finished_at - interval '1 day' WHERE id = $1`, first.ID)
	g.proxy.wrong.Store(true)
	g.restart(t, map[string]string{"USERSYNC_BACKFILL_INTERVAL": "1h"})
	Eventually(t, 30*time.Second, "the scheduled run at start ends", func() string {
		if r := g.bfLastRun(); r == nil || r.ID == first.ID || r.Status == "running" {
			return fmt.Sprintf("newest run %+v", r)
		}
		return ""
	})
	if r := g.bfLastRun(); r.Status != "held" || g.heldDeletions(r.ID) != 60 || len(g.Rows()) != 60 {
		t.Fatalf("run at start = %+v, holding %d; %d rows left; want held, 60 held, 60 rows", r, g.heldDeletions(r.ID), len(g.Rows()))
	}
	if code, out := g.Run(nil, "status"); code != 1 || !strings.Contains(out, "would mark 60 of 60 live users deleted") {
		t.Errorf("status exited %d; want 1 naming the held run:\n%s", code, out)
	}
}
