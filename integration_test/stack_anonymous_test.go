package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/internal/stacksnap"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// Stack Auth's list endpoint leaves anonymous and restricted users out
// unless the request asks for them, while GET /users/{id} and the webhooks
// show every user. These tests run the built binary against a fake that
// filters its list exactly so (stackfake), in a project that requires
// email verification (so users with an unverified email are restricted
// too): a client that asked for no flag would not list those users, and
// every backfill would mark them deleted.

// newStackSystem is NewSystem for Stack Auth with a fake built from opts.
func newStackSystem(t *testing.T, opts stackfake.Options, extra map[string]string) (*System, *stackfake.Fake) {
	t.Helper()
	s := NewSystem(t, "stackauth", extra)
	f := stackfake.New(opts)
	t.Cleanup(f.Close)
	s.Fake = f
	for k, v := range f.Env() {
		s.Env[k] = v
	}
	return s, f
}

// stackKinds sorts the fake's users by what Stack Auth's list filters look
// at.
type stackKinds struct {
	anonymous, restricted, regular []string
	reasons                        map[string]int // restricted_reason type → users
}

func kindsOf(t *testing.T, f *stackfake.Fake) stackKinds {
	t.Helper()
	k := stackKinds{reasons: map[string]int{}}
	for id, raw := range f.Snapshot() {
		var p struct {
			IsAnonymous      bool                   `json:"is_anonymous"`
			IsRestricted     bool                   `json:"is_restricted"`
			RestrictedReason *struct{ Type string } `json:"restricted_reason"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		switch {
		case p.IsAnonymous:
			k.anonymous = append(k.anonymous, id)
		case p.IsRestricted:
			k.restricted = append(k.restricted, id)
		default:
			k.regular = append(k.regular, id)
		}
		if p.RestrictedReason != nil {
			k.reasons[p.RestrictedReason.Type]++
		}
	}
	return k
}

// backfillBinary runs `usersync backfill --wait` with the binary and returns
// the run it completed.
func (s *System) backfillBinary(t *testing.T, extra map[string]string) *bfRun {
	t.Helper()
	code, out := s.Run(extra, "backfill", "--wait")
	if code != 0 {
		t.Fatalf("usersync backfill --wait exited %d:\n%s", code, tail(out, 3000))
	}
	r := s.bfLastRun()
	if r == nil || r.Status != "completed" {
		t.Fatalf("backfill run after --wait: %+v", r)
	}
	return r
}

// diffExcluded is Diff for USERSYNC_ANONYMOUS=exclude: anonymous users of the
// fake must have no live row (no row at all, or one marked deleted in soft
// mode); every other user is as Diff wants it.
func (s *System) diffExcluded(anonymous map[string]bool) string {
	s.t.Helper()
	hard := s.Env["USERSYNC_DELETE_MODE"] == "hard"
	var diffs []string
	rows := s.Rows()
	for id, raw := range s.Fake.Snapshot() {
		r, ok := rows[id]
		switch {
		case anonymous[id] && ok && (hard || r.DeletedAt == nil):
			diffs = append(diffs, "excluded anonymous user has a row "+id)
		case anonymous[id]:
		case !ok:
			diffs = append(diffs, "missing "+id)
		case r.DeletedAt != nil:
			diffs = append(diffs, "marked deleted but live "+id)
		case !jsonEqual(r.Raw, raw, nil):
			diffs = append(diffs, "stale "+id)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

// stateRows counts usersync's per-user state rows of id.
func (s *System) stateRows(id string) int {
	s.t.Helper()
	return s.Int(`SELECT count(*) FROM `+s.is()+`.user_state WHERE provider = 'stackauth' AND user_id = $1`, id)
}

// waitJobDone waits until the newest sync_user job of id completed.
func (s *System) waitJobDone(t *testing.T, id string) {
	t.Helper()
	Eventually(t, 15*time.Second, "sync_user job of "+id+" completes", func() string {
		j, ok := s.JobOf(id)
		if !ok || j.State != "completed" {
			return fmt.Sprintf("job %+v (found %v)", j, ok)
		}
		return ""
	})
}

// TestStackBackfillKeepsAnonymousAndRestricted: a backfill lists Stack Auth's
// anonymous and restricted users (restricted by an administrator, or with
// an unverified email in a project that requires verification): a fresh
// backfill loads them, and no backfill marks deleted (or removes) one that
// a webhook synced.
func TestStackBackfillKeepsAnonymousAndRestricted(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"soft", "hard"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s, f := newStackSystem(t, stackfake.Options{Seed: 11, RequireEmailVerification: true},
				map[string]string{"USERSYNC_DELETE_MODE": mode})
			f.Seed(250)
			var anon, restricted []string
			for range 6 {
				anon = append(anon, f.CreateAnonymousUser())
				restricted = append(restricted, f.CreateRestrictedUser())
			}
			f.Seed(50)
			k := kindsOf(t, f)
			if len(k.anonymous) != 6 || k.reasons["restricted_by_administrator"] == 0 || k.reasons["email_not_verified"] == 0 {
				t.Fatalf("fake data lacks a kind of user: %d anonymous, restricted by reason %v", len(k.anonymous), k.reasons)
			}
			p := s.Start(nil, "serve")

			// A webhook syncs an anonymous and a restricted user first.
			for _, id := range []string{anon[0], restricted[0]} {
				if code := s.Send(p.Addr, provider.EventUserChanged, id); code != 200 {
					t.Fatalf("webhook for %s answered %d", id, code)
				}
			}
			Eventually(t, 15*time.Second, "webhook rows", func() string {
				rows := s.Rows()
				for _, id := range []string{anon[0], restricted[0]} {
					if r, ok := rows[id]; !ok || r.DeletedAt != nil {
						return "no live row for " + id
					}
				}
				return ""
			})

			// A fresh backfill loads everyone and deletes no one; so does the next.
			for i := range 2 {
				r := s.backfillBinary(t, nil)
				if r.Deleted != 0 || r.Listed != int64(f.Len()) {
					t.Errorf("backfill %d: %+v; want %d listed, 0 deleted", i+1, r, f.Len())
				}
				if d := s.Diff(); d != "" {
					t.Fatalf("after backfill %d users_sync differs from the provider:\n%s", i+1, d)
				}
			}
			rows := s.Rows()
			for _, id := range append(append([]string{}, k.anonymous...), k.restricted...) {
				if r, ok := rows[id]; !ok || r.DeletedAt != nil {
					t.Errorf("user %s has no live row", id)
				}
			}
		})
	}
}

// TestStackAnonymousExcluded: with USERSYNC_ANONYMOUS=exclude, anonymous
// users are left out of both paths alike: a webhook for one writes nothing
// (no row, no per-user state), the backfill does not list them, rows kept
// from before the switch are handled as users absent at the provider
// (marked deleted, or removed in hard mode), restricted users stay, and an
// anonymous user who signs up appears on the next event or backfill.
func TestStackAnonymousExcluded(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"soft", "hard"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s, f := newStackSystem(t, stackfake.Options{Seed: 12, RequireEmailVerification: true},
				map[string]string{"USERSYNC_DELETE_MODE": mode})
			f.Seed(150)
			var before []string // anonymous users synced before the switch
			for range 4 {
				before = append(before, f.CreateAnonymousUser())
				f.CreateRestrictedUser()
			}
			f.Seed(20)

			// Until now, anonymous users were included.
			p := s.Start(nil, "serve")
			s.backfillBinary(t, nil)
			if d := s.Diff(); d != "" {
				t.Fatalf("include mode: users_sync differs from the provider:\n%s", d)
			}
			p.Terminate(t)

			exclude := map[string]string{"USERSYNC_ANONYMOUS": "exclude"}
			p = s.Start(exclude, "serve")
			anonymous := func() map[string]bool {
				m := map[string]bool{}
				for _, id := range kindsOf(t, f).anonymous {
					m[id] = true
				}
				return m
			}

			// A webhook for an anonymous user usersync never had writes nothing.
			fresh := f.CreateAnonymousUser()
			if code := s.Send(p.Addr, provider.EventUserChanged, fresh); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			s.waitJobDone(t, fresh)
			if _, ok := s.Rows()[fresh]; ok || s.stateRows(fresh) != 0 {
				t.Fatalf("excluded anonymous user %s: row present %v, %d state rows; want none", fresh, ok, s.stateRows(fresh))
			}

			// A webhook for an anonymous user kept from before is a deletion.
			if code := s.Send(p.Addr, provider.EventUserChanged, before[0]); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			s.waitJobDone(t, before[0])
			if r, ok := s.Rows()[before[0]]; ok && (mode == "hard" || r.DeletedAt == nil) {
				t.Fatalf("anonymous user %s kept from include mode still has a live row after its webhook", before[0])
			}

			// The backfill lists no anonymous user: the rest kept from before go.
			r := s.backfillBinary(t, exclude)
			if want := f.Len() - len(anonymous()); r.Listed != int64(want) {
				t.Errorf("backfill listed %d users, want %d (all but the anonymous)", r.Listed, want)
			}
			if d := s.diffExcluded(anonymous()); d != "" {
				t.Fatalf("exclude mode after backfill:\n%s", d)
			}
			if s.stateRows(fresh) != 0 {
				t.Errorf("the backfill left state for excluded anonymous user %s", fresh)
			}

			// Anonymous users who sign up appear: on their next event ...
			if !f.UpgradeAnonymousUser(fresh) || !f.UpgradeAnonymousUser(before[0]) {
				t.Fatal("UpgradeAnonymousUser failed")
			}
			for _, id := range []string{fresh, before[0]} {
				if code := s.Send(p.Addr, provider.EventUserChanged, id); code != 200 {
					t.Fatalf("webhook answered %d", code)
				}
			}
			Eventually(t, 15*time.Second, "upgraded users appear on their event", func() string {
				return s.diffExcluded(anonymous())
			})
			if r, ok := s.Rows()[fresh]; !ok || r.DeletedAt != nil {
				t.Fatalf("upgraded user %s has no live row", fresh)
			}
			// ... or on the next backfill.
			if !f.UpgradeAnonymousUser(before[1]) {
				t.Fatal("UpgradeAnonymousUser failed")
			}
			s.backfillBinary(t, exclude)
			if d := s.diffExcluded(anonymous()); d != "" {
				t.Fatalf("exclude mode after the second backfill:\n%s", d)
			}
			if r, ok := s.Rows()[before[1]]; !ok || r.DeletedAt != nil {
				t.Fatalf("user %s, upgraded without an event, has no live row after the backfill", before[1])
			}
		})
	}
}

// TestStackUpperCaseIDs: Stack Auth compares ids without regard to case. An
// API that answers a lower-case request with the id in upper case (in the
// user object and in list cursors) must not make a second row: the webhook
// and the backfill both store the user under its lower-case id.
func TestStackUpperCaseIDs(t *testing.T) {
	t.Parallel()
	s, f := newStackSystem(t, stackfake.Options{Seed: 13, UpperCaseIDs: true}, nil)
	ids := f.Seed(30)
	p := s.Start(nil, "serve")
	for _, id := range ids[:5] {
		if code := s.Send(p.Addr, provider.EventUserChanged, id); code != 200 {
			t.Fatalf("webhook answered %d", code)
		}
	}
	for _, id := range ids[:5] {
		s.waitJobDone(t, id)
	}
	s.backfillBinary(t, nil)
	for _, id := range ids[:5] {
		if code := s.Send(p.Addr, provider.EventUserChanged, strings.ToUpper(id)); code != 200 {
			t.Fatalf("webhook answered %d", code)
		}
	}
	Eventually(t, 15*time.Second, "syncs done", s.Idle)
	rows := s.Rows()
	if len(rows) != len(ids) {
		t.Errorf("%d rows for %d users", len(rows), len(ids))
	}
	for _, id := range ids {
		r, ok := rows[id]
		if !ok || r.DeletedAt != nil {
			t.Errorf("no live row under the lower-case id %s", id)
			continue
		}
		var obj struct{ ID string }
		if err := json.Unmarshal(r.Raw, &obj); err != nil || obj.ID != id {
			t.Errorf("row %s: raw_json id %q", id, obj.ID)
		}
	}
	if n := s.Int(`SELECT count(*) FROM ` + s.is() + `.user_state WHERE user_id <> lower(user_id)`); n != 0 {
		t.Errorf("%d per-user state rows under an upper-case id", n)
	}
}

// stackRealPayload reads the webhook body of one of Stack Auth's own e2e
// snapshots of a Svix message, with the user id it names replaced by id;
// the test is skipped when the snapshots are not available.
func stackRealPayload(t *testing.T, file, id string) []byte {
	t.Helper()
	dir, err := stacksnap.Dir("stackauth")
	if err != nil {
		t.Skipf("Stack Auth's own e2e snapshots are not available: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	p, err := stacksnap.ParseWebhookMessage(b, nil)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return withDataID(t, p, id)
}

// withDataID returns body with data.id set to id (the rest unchanged).
func withDataID(t *testing.T, body []byte, id string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(m["data"], &data); err != nil {
		t.Fatal(err)
	}
	data["id"], _ = json.Marshal(id)
	m["data"], _ = json.Marshal(data)
	out, _ := json.Marshal(m)
	return out
}

// TestStackRealWebhookBodies: each webhook body Stack Auth itself sent,
// signed afresh with Svix, is accepted by the webhook endpoint and leads to
// the row of the user it names, as the provider serves that user; the
// dashboard's stack.test event is answered 2xx and enqueues nothing.
func TestStackRealWebhookBodies(t *testing.T) {
	t.Parallel()
	s, f := newStackSystem(t, stackfake.Options{Seed: 14}, nil)
	p := s.Start(nil, "serve")
	post := func(body []byte) {
		t.Helper()
		if code := s.Post(p.Addr, body, f.SignWebhook(body, time.Now())); code < 200 || code > 299 {
			t.Fatalf("webhook %s answered %d", body, code)
		}
	}
	rowIs := func(id string, deleted bool) func() string {
		return func() string {
			r, ok := s.Rows()[id]
			switch {
			case !ok:
				return "no row for " + id
			case deleted && r.DeletedAt == nil:
				return "not marked deleted: " + id
			case !deleted && (r.DeletedAt != nil || !jsonEqual(r.Raw, f.Snapshot()[id], nil)):
				return fmt.Sprintf("row of %s differs from the provider: %s", id, r.Raw)
			}
			return ""
		}
	}

	id := f.CreateUser()
	post(stackRealPayload(t, "webhook_user.created.svix-message.e2e-inline-snapshot.txt", id))
	Eventually(t, 15*time.Second, "user.created leads to the row", rowIs(id, false))

	f.UpdateUser(id)
	post(stackRealPayload(t, "webhook_user.updated.svix-message.e2e-inline-snapshot.txt", id))
	Eventually(t, 15*time.Second, "user.updated leads to the new row", rowIs(id, false))

	// Stack Auth's own anonymous user object, sent as a user.created event.
	dir, _ := stacksnap.Dir("stackauth")
	b, err := os.ReadFile(filepath.Join(dir, "POST_users.anonymous_user.server.e2e-inline-snapshot.txt"))
	if err != nil {
		t.Fatal(err)
	}
	anonObj, err := stacksnap.ParseResponse(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	anon := f.CreateAnonymousUser()
	post(withDataID(t, []byte(`{"type":"user.created","data":`+string(anonObj.Body)+`}`), anon))
	Eventually(t, 15*time.Second, "an anonymous user's user.created leads to its row", rowIs(anon, false))

	f.DeleteUser(id)
	post(stackRealPayload(t, "webhook_user.deleted.svix-message.e2e-inline-snapshot.txt", id))
	Eventually(t, 15*time.Second, "user.deleted marks the row deleted", rowIs(id, true))

	Eventually(t, 15*time.Second, "syncs done", s.Idle)
	jobs := s.AllJobs()
	post([]byte(`{"type":"stack.test","data":{"message":"Stack webhook test event triggered from the Stack dashboard.","endpointUrl":"https://example.com/webhooks/stackauth"}}`))
	if n := s.AllJobs(); n != jobs {
		t.Errorf("stack.test enqueued %d jobs", n-jobs)
	}
}

// TestAnonymousConfigError: a bad USERSYNC_ANONYMOUS stops the binary at
// start with one line naming the variable.
func TestAnonymousConfigError(t *testing.T) {
	t.Parallel()
	s := NewSystem(t, "stackauth", map[string]string{"_NO_MIGRATE": "1"})
	for _, cmd := range []string{"serve", "worker", "backfill"} {
		code, out := s.Run(map[string]string{"USERSYNC_ANONYMOUS": "sometimes"}, cmd)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(out, "USERSYNC_ANONYMOUS") {
			t.Errorf("%s with USERSYNC_ANONYMOUS=sometimes: exit %d, output %q; want non-zero and one line naming the variable", cmd, code, out)
		}
	}
}
