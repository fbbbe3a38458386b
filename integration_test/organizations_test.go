package integration_test

// End-to-end tests of organizations and memberships (USERSYNC_ORGANIZATIONS=on;
// docs/data-model.md, "Organizations and memberships"; docs/guarantees.md):
// the real binary and in-process service against each provider's fake.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// membershipStatusSetter is a fake whose memberships have a status
// (WorkOS: active, inactive, pending).
type membershipStatusSetter interface {
	SetMembershipStatus(orgID, userID, status string) bool
}

// TestOrgMigrate (docs/data-model.md): with USERSYNC_ORGANIZATIONS=on,
// `usersync migrate` creates organizations_sync and memberships_sync with
// exactly the documented columns, keys and the user_id index; a second run
// changes nothing; a database first migrated with the option off gets them
// once migrate runs with it on.
func TestOrgMigrate(t *testing.T) {
	t.Parallel()
	prov := providerNames()[0]
	s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
	if s.TableExists("organizations_sync") || s.TableExists("memberships_sync") {
		t.Fatal("migrate with USERSYNC_ORGANIZATIONS unset created the organization tables")
	}
	code, out := s.Run(map[string]string{"USERSYNC_ORGANIZATIONS": "on"}, "migrate", "--print-sql")
	if code != 0 || !strings.Contains(out, "organizations_sync") || !strings.Contains(out, "memberships_sync") {
		t.Errorf("migrate --print-sql with organizations on exited %d and does not print both tables:\n%s", code, tail(out, 2000))
	}
	if s.TableExists("organizations_sync") {
		t.Fatal("migrate --print-sql created organizations_sync")
	}
	s.Env["USERSYNC_ORGANIZATIONS"] = "on"
	s.Migrate()
	type col struct {
		Name, Type string
		NotNull    bool
	}
	columns := func(table string) []col {
		rows, err := s.Pool.Query(context.Background(), `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
			FROM pg_attribute a WHERE a.attrelid = ($1 || '.' || $2)::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
			s.Schema, table)
		if err != nil {
			t.Fatalf("columns of %s: %v", table, err)
		}
		defer rows.Close()
		var out []col
		for rows.Next() {
			var c col
			if err := rows.Scan(&c.Name, &c.Type, &c.NotNull); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	ts := "timestamp with time zone"
	wantOrgs := []col{{"raw_json", "jsonb", true}, {"id", "text", true}, {"name", "text", false},
		{"created_at", ts, false}, {"updated_at", ts, false}, {"deleted_at", ts, false}}
	wantMembers := []col{{"raw_json", "jsonb", true}, {"organization_id", "text", true}, {"user_id", "text", true}, {"role", "text", false},
		{"created_at", ts, false}, {"updated_at", ts, false}, {"deleted_at", ts, false}}
	if got := columns("organizations_sync"); !reflect.DeepEqual(got, wantOrgs) {
		t.Errorf("organizations_sync columns:\n got %v\nwant %v", got, wantOrgs)
	}
	if got := columns("memberships_sync"); !reflect.DeepEqual(got, wantMembers) {
		t.Errorf("memberships_sync columns:\n got %v\nwant %v", got, wantMembers)
	}
	pk := func(table string) string {
		var def string
		if err := s.Pool.QueryRow(context.Background(), `SELECT pg_get_constraintdef(oid) FROM pg_constraint
			WHERE conrelid = ($1 || '.' || $2)::regclass AND contype = 'p'`, s.Schema, table).Scan(&def); err != nil {
			t.Fatalf("primary key of %s: %v", table, err)
		}
		return def
	}
	if got := pk("organizations_sync"); got != "PRIMARY KEY (id)" {
		t.Errorf("organizations_sync primary key: %s", got)
	}
	if got := pk("memberships_sync"); got != "PRIMARY KEY (organization_id, user_id)" {
		t.Errorf("memberships_sync primary key: %s", got)
	}
	// An index that leads with user_id serves "the organizations of this
	// user" (joins, row-level security).
	if n := s.Int(`SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = ($1 || '.memberships_sync')::regclass AND a.attname = 'user_id'`, s.Schema); n == 0 {
		t.Error("memberships_sync has no index leading with user_id")
	}

	// Idempotent: a second migrate (and two at once) changes no table.
	before := s.Int(`SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace`, s.Schema)
	var wg sync.WaitGroup
	codes, outs := make([]int, 2), make([]string, 2)
	for i := range 2 {
		wg.Go(func() { codes[i], outs[i] = s.Run(nil, "migrate") })
	}
	wg.Wait()
	for i := range 2 {
		if codes[i] != 0 {
			t.Errorf("concurrent migrate %d exited %d: %s", i, codes[i], tail(outs[i], 2000))
		}
	}
	s.Migrate()
	if after := s.Int(`SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace`, s.Schema); after != before {
		t.Errorf("re-running migrate changed the number of relations in %s: %d → %d", s.Schema, before, after)
	}

	// A malformed value stops the process with a line naming the variable.
	code, out = s.Run(map[string]string{"USERSYNC_ORGANIZATIONS": "maybe"}, "migrate")
	if code == 0 || !strings.Contains(out, "USERSYNC_ORGANIZATIONS") {
		t.Errorf("USERSYNC_ORGANIZATIONS=maybe: exit %d, output %q; want non-zero, naming the variable", code, tail(out, 500))
	}
}

// TestOrgOptionOff (docs/data-model.md): with USERSYNC_ORGANIZATIONS unset or
// off, nothing changes for users: no organization tables, organization and
// membership webhooks answered 2xx and ignored (no job), backfills list no
// organizations, and users sync as before.
func TestOrgOptionOff(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, val := range []string{"", "off"} {
			name := prov + "/unset"
			if val != "" {
				name = prov + "/" + val
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				extra := map[string]string{"USERSYNC_DB_MAX_CONNS": "4"}
				if val != "" {
					extra["USERSYNC_ORGANIZATIONS"] = val
				}
				s := NewSystem(t, prov, extra)
				for _, tb := range []string{"organizations_sync", "memberships_sync"} {
					if s.TableExists(tb) {
						t.Errorf("migrate created %s with the option off", tb)
					}
				}
				f := s.Orgs()
				sv := s.Serve(nil)
				users := s.Fake.Seed(3)
				org := f.CreateOrganization(users[0])
				f.AddMember(org, users[1], "")
				gone := f.CreateOrganization("")
				f.DeleteOrganization(gone)
				s.SendOrg(sv.Addr, provider.EventOrganizationChanged, org)
				s.SendMember(sv.Addr, org, users[1], false)
				f.RemoveMember(org, users[1])
				s.SendMember(sv.Addr, org, users[1], true)
				s.SendOrg(sv.Addr, provider.EventOrganizationDeleted, gone)
				// Users still sync.
				s.SendAll(sv.Addr, provider.EventUserChanged, users, 3)
				s.WaitConverged(15 * time.Second)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if code, out := s.Backfill(ctx, "--wait"); code != 0 {
					t.Fatalf("backfill --wait exited %d:\n%s", code, tail(out, 2000))
				}
				var kinds []string
				rows, err := s.Pool.Query(context.Background(), `SELECT DISTINCT kind FROM `+s.is()+`.river_job ORDER BY 1`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var k string
					if err := rows.Scan(&k); err != nil {
						t.Fatal(err)
					}
					kinds = append(kinds, k)
				}
				for _, k := range kinds {
					if k != "sync_user" && k != "backfill_page" && k != "prune_user_state" {
						t.Errorf("a %s job exists with organizations off (job kinds: %v)", k, kinds)
					}
				}
				if s.TableExists("organizations_sync") || s.TableExists("memberships_sync") {
					t.Error("the organization tables appeared with the option off")
				}
			})
		}
	}
}

// orgScenario drives one provider's organizations through every kind of
// change, each announced by the webhooks the provider sends (Stack Auth:
// none for a team's creator joining, none for the memberships of a deleted
// team; none for the memberships of a deleted user), and waits for both
// tables to converge after each step.
func orgScenario(t *testing.T, s *System, addr string) (deletedOrg, deletedUser string) {
	t.Helper()
	f := s.Orgs()
	users := s.Fake.Seed(10)
	s.SendAll(addr, provider.EventUserChanged, users, 4)
	s.WaitConverged(15 * time.Second)
	step := func(what string) {
		t.Helper()
		Eventually(t, 20*time.Second, what+": the organization tables converge", s.OrgDiff)
	}

	// Create: with a creator (who joins as the provider does it) and without.
	a, b, c := f.CreateOrganization(users[0]), f.CreateOrganization(""), f.CreateOrganization(users[1])
	for _, o := range []string{a, b, c} {
		s.SendOrg(addr, provider.EventOrganizationChanged, o)
	}
	if s.CreatorSendsMembershipEvent() {
		s.SendMember(addr, a, users[0], false)
		s.SendMember(addr, c, users[1], false)
	}
	for _, u := range users[2:6] {
		if !f.AddMember(a, u, "") {
			t.Fatalf("fake: AddMember(%s, %s) failed", a, u)
		}
		s.SendMember(addr, a, u, false)
	}
	for _, u := range users[4:8] {
		f.AddMember(b, u, "")
		s.SendMember(addr, b, u, false)
	}
	f.AddMember(c, users[2], "")
	s.SendMember(addr, c, users[2], false)
	step("organizations created, members added")
	if _, ok := s.MemberRows()[memberKey(a, users[0])]; !ok {
		t.Errorf("the creator's membership of %s is missing", a)
	}

	// Rename (where memberships embed the organization, they change too),
	// change a role, remove a member.
	f.UpdateOrganization(a)
	f.UpdateOrganization(b)
	s.SendOrg(addr, provider.EventOrganizationChanged, a)
	s.SendOrg(addr, provider.EventOrganizationChanged, b)
	if !f.UpdateMember(a, users[2], orgRoles[s.Provider]) {
		t.Fatalf("fake: UpdateMember(%s, %s) failed", a, users[2])
	}
	s.SendMember(addr, a, users[2], false)
	f.RemoveMember(a, users[3])
	s.SendMember(addr, a, users[3], true)
	step("organizations renamed, a role changed, a member removed")

	// WorkOS: memberships of every status are kept (raw_json->>'status').
	if st, ok := s.Fake.(membershipStatusSetter); ok {
		for _, m := range []struct{ org, user, status string }{{a, users[4], "inactive"}, {b, users[6], "pending"}} {
			if !st.SetMembershipStatus(m.org, m.user, m.status) {
				t.Fatalf("fake: SetMembershipStatus(%s, %s, %s) failed", m.org, m.user, m.status)
			}
			s.SendMember(addr, m.org, m.user, false)
		}
		step("memberships made inactive and pending")
		for _, k := range []string{memberKey(a, users[4]), memberKey(b, users[6])} {
			if r, ok := s.MemberRows()[k]; !ok || r.DeletedAt != nil {
				t.Errorf("membership %s that is not active is missing or marked deleted", k)
			}
		}
	}
	// Stack Auth: anonymous and restricted users are members too, although
	// the member list hides them unless asked.
	if hf, ok := s.Fake.(fakekit.HiddenUsersFake); ok {
		for _, u := range hf.CreateHiddenUsers() {
			if !f.AddMember(b, u, "") {
				t.Fatalf("fake: AddMember(%s, hidden user %s) failed", b, u)
			}
			s.SendMember(addr, b, u, false)
		}
		step("anonymous and restricted members added")
	}

	// Delete an organization (no membership events) and a user who is a
	// member of two (only the user's own deletion event is sent).
	f.DeleteOrganization(c)
	s.SendOrg(addr, provider.EventOrganizationDeleted, c)
	s.Fake.DeleteUser(users[5])
	s.Send(addr, provider.EventUserDeleted, users[5])
	step("an organization and a member deleted")

	// The removed member joins again.
	f.AddMember(a, users[3], "")
	s.SendMember(addr, a, users[3], false)
	step("a removed member joins again")
	return c, users[5]
}

// orgRedactKeys are, per provider, top-level keys of organization and
// membership objects that the redaction test drops with USERSYNC_REDACT:
// the source of the name column among them, to show that it comes from the
// full object, and the metadata an app may not want copied.
var orgRedactKeys = map[string]string{
	"stackauth": "display_name,server_metadata",
	"clerk":     "name,private_metadata",
	"workos":    "name,metadata",
}

// TestOrgConvergenceWebhooks (docs/guarantees.md §2): after organizations are
// created, renamed and deleted, members added, changed and removed, and a
// member user deleted, each with the provider's webhooks, both tables equal
// the provider, in soft and hard delete mode and with USERSYNC_REDACT (the
// keys dropped from raw_json, the columns still derived from the full
// objects); the derived columns come from the provider's objects.
func TestOrgConvergenceWebhooks(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"soft", "hard", "redact"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				extra := map[string]string{"USERSYNC_DELETE_MODE": mode}
				if mode == "redact" {
					extra = map[string]string{"USERSYNC_DELETE_MODE": "soft", "USERSYNC_REDACT": orgRedactKeys[prov]}
				}
				s := NewOrgSystem(t, prov, extra)
				sv := s.Serve(nil)
				org, user := orgScenario(t, s, sv.Addr)
				orgs, members := s.OrgRows(), s.MemberRows()
				r, ok := orgs[org]
				switch {
				case mode == "hard" && ok:
					t.Errorf("hard mode: row of deleted organization %s still present", org)
				case mode != "hard" && (!ok || r.DeletedAt == nil):
					t.Errorf("soft mode: deleted organization %s not marked deleted (row present %v)", org, ok)
				}
				if mode == "redact" {
					var raws []json.RawMessage
					for _, r := range orgs {
						raws = append(raws, r.Raw)
					}
					for _, r := range members {
						raws = append(raws, r.Raw)
					}
					for _, raw := range raws {
						var m map[string]json.RawMessage
						if err := json.Unmarshal(raw, &m); err != nil {
							t.Fatal(err)
						}
						for k := range strings.SplitSeq(orgRedactKeys[prov], ",") {
							if _, ok := m[k]; ok {
								t.Errorf("raw_json %s still has the redacted key %q", tail(string(raw), 200), k)
							}
						}
					}
				}
				for k, m := range members {
					if (m.OrganizationID == org || m.UserID == user) && m.DeletedAt == nil {
						t.Errorf("membership %s of a deleted organization or user is live", k)
					}
				}
				s.CheckOrgColumns(t)
			})
		}
	}
}

// TestOrgBackfillConverges (docs/guarantees.md §2, §5): with no webhook at
// all, `usersync backfill --wait` loads every organization and membership,
// then, after changes at the provider (organizations renamed and deleted,
// members added, changed and removed, a member user deleted), a second
// complete run writes exactly those and infers the deletions; a third run
// with nothing changed rewrites no row. status reports the organizations.
func TestOrgBackfillConverges(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"soft", "hard"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				s := NewOrgSystem(t, prov, map[string]string{"USERSYNC_DELETE_MODE": mode})
				s.Serve(nil)
				f := s.Orgs()
				users := s.Fake.Seed(60)
				// More organizations than one page of WorkOS's list (100).
				orgs := f.SeedOrganizations(130, 4)
				creator := users[0]
				withCreator := f.CreateOrganization(creator)
				orgs = append(orgs, withCreator)
				s.bfBackfillWait(t, 2*time.Minute)
				if d := s.OrgDiff(); d != "" {
					t.Fatalf("organization tables differ from the provider after backfill --wait returned:\n%s", d)
				}
				if _, ok := s.MemberRows()[memberKey(withCreator, creator)]; !ok {
					t.Errorf("the creator's membership of %s was not listed", withCreator)
				}
				if jc := s.JobCounts(kindBackfillOrganizations); jc["completed"] == 0 {
					t.Errorf("backfill_organizations jobs by state = %v; want completed ones", jc)
				}
				before := s.orgXmins()

				// Changes without webhooks.
				members := f.MembershipsSnapshot()
				var keys []string
				for k := range members {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				f.DeleteOrganization(orgs[0])
				f.DeleteOrganization(orgs[101])
				f.UpdateOrganization(orgs[1])
				f.UpdateOrganization(orgs[120])
				removed := 0
				for _, k := range keys {
					org, user, _ := strings.Cut(k, ":")
					if org == orgs[0] || org == orgs[101] || org == orgs[1] || org == orgs[120] {
						continue
					}
					if removed < 3 {
						f.RemoveMember(org, user)
						removed++
					} else if removed == 3 {
						f.UpdateMember(org, user, orgRoles[prov])
						removed++
					}
				}
				f.AddMember(orgs[5], users[59], "")
				s.Fake.DeleteUser(users[1])
				after := f.MembershipsSnapshot()

				s.bfBackfillWait(t, 2*time.Minute)
				if d := s.OrgDiff(); d != "" {
					t.Fatalf("organization tables differ from the provider after the second run:\n%s", d)
				}
				// Rows of objects that did not change at the provider were not rewritten.
				wantOrgs := f.OrganizationsSnapshot()
				xm := s.orgXmins()
				rewritten := 0
				for id := range wantOrgs {
					k := "org:" + id
					if id != orgs[1] && id != orgs[120] && before[k] != "" && xm[k] != before[k] {
						rewritten++
					}
				}
				for k, raw := range after {
					if old, ok := members[k]; ok && canonical(old) == canonical(raw) && before["member:"+k] != "" && xm["member:"+k] != before["member:"+k] {
						rewritten++
					}
				}
				if rewritten > 0 {
					t.Errorf("the second run rewrote %d rows whose provider object did not change", rewritten)
				}

				r3 := s.bfBackfillWait(t, 2*time.Minute)
				if d := s.OrgDiff(); d != "" {
					t.Fatalf("organization tables differ from the provider after the third run:\n%s", d)
				}
				final := s.orgXmins()
				rewritten = 0
				for k, x := range xm {
					if final[k] != x {
						rewritten++
					}
				}
				if rewritten > 0 {
					t.Errorf("a run with no change at the provider rewrote %d organization or membership rows (run %+v)", rewritten, r3)
				}
				s.CheckOrgColumns(t)
				code, out := s.bfStatus()
				if code != 0 || !strings.Contains(strings.ToLower(out), "organization") {
					t.Errorf("usersync status exited %d and does not mention organizations:\n%s", code, out)
				}
			})
		}
	}
}

// TestOrgBackfillResumesAfterSIGKILL (docs/guarantees.md §5, §7): a worker
// SIGKILLed in the middle of an organization backfill chain leaves it at
// its last committed page; until the chain completes, nothing is inferred
// deleted from it (an organization deleted at the provider without a
// webhook stays live, and so do its memberships); a new worker resumes the
// chain, it completes, and then the deletions are inferred. Slow (River rescues the killed job
// after about a minute): one provider (see slowTestProvider).
func TestOrgBackfillResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	for _, prov := range slowTestProvider("workos") {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, nil)
			f := s.Orgs()
			s.Fake.Seed(40)
			orgs := f.SeedOrganizations(250, 3)
			w1 := s.Start(nil, "worker")
			s.bfBackfillWait(t, 2*time.Minute)
			if d := s.OrgDiff(); d != "" {
				t.Fatalf("not converged after the first run:\n%s", d)
			}
			firstDone := s.JobCounts(kindBackfillOrganizations)["completed"]

			// Deleted at the provider without webhooks: an organization near
			// the end of the list (only the list's absence tells), and a
			// member of the first organization (its page lists the
			// organization's complete membership, which may say so at once).
			goneOrg := orgs[len(orgs)-1]
			var goneOrgMembers []string
			for k := range f.MembershipsSnapshot() {
				if strings.HasPrefix(k, goneOrg+":") {
					goneOrgMembers = append(goneOrgMembers, k)
				}
			}
			if len(goneOrgMembers) == 0 {
				t.Fatalf("organization %s has no members", goneOrg)
			}
			f.DeleteOrganization(goneOrg)
			for k := range f.MembershipsSnapshot() {
				if org, user, _ := strings.Cut(k, ":"); org == orgs[0] {
					f.RemoveMember(org, user)
					break
				}
			}

			s.Fake.SetLatency(150 * time.Millisecond)
			done := s.bfBackfillAsync(4*time.Minute, "--wait")
			var running int64
			Eventually(t, 90*time.Second, "an organization backfill job is running after one of this run has committed", func() string {
				c := s.JobCounts(kindBackfillOrganizations)
				if c["completed"] <= firstDone || c["running"] == 0 {
					return fmt.Sprintf("backfill_organizations jobs by state: %v (first run: %d completed)", c, firstDone)
				}
				running = int64(s.Int(`SELECT id FROM `+s.is()+`.river_job WHERE kind = $1 AND state = 'running' ORDER BY id DESC LIMIT 1`,
					kindBackfillOrganizations))
				return ""
			})
			w1.Kill()
			s.Fake.SetLatency(0)
			check := func(when string) {
				t.Helper()
				orgRows, members := s.OrgRows(), s.MemberRows()
				if r, ok := orgRows[goneOrg]; !ok || r.DeletedAt != nil {
					t.Errorf("%s: organization %s inferred deleted by a run that has not completed", when, goneOrg)
				}
				for _, k := range goneOrgMembers {
					if r, ok := members[k]; !ok || r.DeletedAt != nil {
						t.Errorf("%s: membership %s of an organization absent from the list inferred deleted by a run that has not completed", when, k)
					}
				}
			}
			check("right after the SIGKILL")
			if jc := s.JobCounts(kindBackfillOrganizations); jc["running"] == 0 {
				t.Fatalf("after SIGKILL no backfill_organizations job is left running: %v", jc)
			}
			select {
			case res := <-done:
				t.Fatalf("backfill --wait returned (exit %d) while its chain was interrupted:\n%s", res.code, tail(res.out, 2000))
			default:
			}
			check("before a worker resumes the run")

			s.Start(nil, "worker")
			res := bfAwait(t, done, 200*time.Second)
			if res.code != 0 {
				t.Fatalf("backfill --wait exited %d:\n%s", res.code, tail(res.out, 3000))
			}
			if d := s.OrgDiff(); d != "" {
				t.Errorf("organization tables differ from the provider after the resumed run:\n%s", d)
			}
			if c := s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE id = $1 AND state = 'completed' AND attempt >= 2`, running); c != 1 {
				t.Errorf("the organization backfill job running at the kill (%d) was not rescued and completed", running)
			}
			if jc := s.JobCounts(kindBackfillOrganizations); jc["discarded"]+jc["cancelled"] > 0 {
				t.Errorf("backfill_organizations jobs by state: %v", jc)
			}
		})
	}
}

// TestOrgDurableAckSurvivesSIGKILL (docs/guarantees.md §1): organization and
// membership webhooks answered 2xx by a `serve` process SIGKILLed right
// after the answers are not lost: a worker started afterwards brings both
// tables to the provider's state.
func TestOrgDurableAckSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			f := s.Orgs()
			users := s.Fake.Seed(12)
			// A first state, synced.
			w := s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			sv := s.Start(map[string]string{"USERSYNC_WORKERS": "0"}, "serve")
			var orgs []string
			for i := range 6 {
				o := f.CreateOrganization(users[i])
				orgs = append(orgs, o)
				s.SendOrg(sv.Addr, provider.EventOrganizationChanged, o)
				if s.CreatorSendsMembershipEvent() {
					s.SendMember(sv.Addr, o, users[i], false)
				}
			}
			s.WaitOrgsConverged(20 * time.Second)
			Eventually(t, 20*time.Second, "no organization job left", s.OrgJobsIdle)
			w.Kill()

			// Changes whose webhooks are acknowledged while no worker runs.
			for i, o := range orgs[:3] {
				f.AddMember(o, users[6+i], "")
				s.SendMember(sv.Addr, o, users[6+i], false)
				f.UpdateOrganization(o)
				s.SendOrg(sv.Addr, provider.EventOrganizationChanged, o)
			}
			f.DeleteOrganization(orgs[3])
			s.SendOrg(sv.Addr, provider.EventOrganizationDeleted, orgs[3])
			f.RemoveMember(orgs[4], users[4])
			s.SendMember(sv.Addr, orgs[4], users[4], true)
			fresh := f.CreateOrganization("")
			s.SendOrg(sv.Addr, provider.EventOrganizationChanged, fresh)
			sv.Kill()

			for _, o := range []string{orgs[0], orgs[1], orgs[2], orgs[3], orgs[4], fresh} {
				if n := s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = $1 AND args->>'organization_id' = $2 AND finalized_at IS NULL`,
					kindSyncOrganization, o); n == 0 {
					t.Errorf("acknowledged webhook about organization %s has no waiting sync_organization job after SIGKILL", o)
				}
			}
			if d := s.OrgDiff(); d == "" {
				t.Fatal("organization tables already converged before any worker ran: the test proves nothing")
			}
			s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			s.WaitOrgsConverged(30 * time.Second)
		})
	}
}

// TestOrgNoStaleOverwriteAcrossProcesses (docs/guarantees.md §3): two
// `worker` processes and a `serve` with workers race on the same
// organizations while the provider renames them, changes, removes and
// re-adds members and deletes organizations, webhooks flow with duplicates,
// and jobs are also inserted with SQL (bypassing uniqueness). Triggers audit
// every row version of both tables: no row ever holds content the provider
// never had, goes back to an older state, reappears after a deletion the
// provider did not undo, or is rewritten unchanged; both tables converge.
func TestOrgNoStaleOverwriteAcrossProcesses(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			s.addOrgAudit()
			f := s.Orgs()
			users := s.Fake.Seed(10)
			var orgs []string
			for i := range 6 {
				orgs = append(orgs, f.CreateOrganization(users[i]))
			}
			orgHist, memberHist := newObjectHistory(nil), newObjectHistory(nil)
			observe := func() {
				orgHist.observe(f.OrganizationsSnapshot())
				memberHist.observe(f.MembershipsSnapshot())
			}
			observe()
			s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			sv := s.Start(map[string]string{"USERSYNC_WORKERS": "2"}, "serve")
			s.Fake.SetLatency(5 * time.Millisecond)

			var (
				mu      sync.Mutex // serialises a change at the fake with recording it
				deleted = map[string]bool{}
				wg      sync.WaitGroup
				stop    = time.Now().Add(6 * time.Second)
				done    atomic.Bool
				bad     = make(chan string, 100)
			)
			for g := range 8 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 11))
					for !done.Load() {
						org := orgs[rng.IntN(len(orgs))]
						user := users[rng.IntN(len(users))]
						mu.Lock()
						var body []byte
						var h http.Header
						switch n := rng.IntN(100); {
						case deleted[org]:
							body, h = f.OrganizationWebhook(provider.EventOrganizationDeleted, org)
						case n < 35:
							f.UpdateOrganization(org)
							body, h = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
						case n < 55:
							f.AddMember(org, user, "")
							body, h = f.MembershipWebhook(org, user, false)
						case n < 70:
							f.UpdateMember(org, user, orgRoles[prov])
							body, h = f.MembershipWebhook(org, user, false)
						case n < 90:
							f.RemoveMember(org, user)
							body, h = f.MembershipWebhook(org, user, true)
						case n < 91 && len(deleted) < 2:
							f.DeleteOrganization(org)
							deleted[org] = true
							body, h = f.OrganizationWebhook(provider.EventOrganizationDeleted, org)
						default:
							body, h = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
						}
						observe()
						mu.Unlock()
						for range 1 + rng.IntN(2) {
							code := s.Post(sv.Addr, body, h)
							for try := 0; code == 503 && try < 5; try++ {
								time.Sleep(100 * time.Millisecond) // the provider's retry delay
								code = s.Post(sv.Addr, body, h)
							}
							if code != 200 {
								select {
								case bad <- fmt.Sprintf("webhook about %s answered %d", org, code):
								default:
								}
							}
						}
					}
				})
			}
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(99, 11))
				for !done.Load() {
					org := orgs[rng.IntN(len(orgs))]
					if _, err := s.Pool.Exec(context.Background(), `INSERT INTO `+s.is()+`.river_job (kind, queue, args, max_attempts)
						SELECT $1, $2, json_build_object('provider', $3::text, 'organization_id', $4::text), 30 FROM generate_series(1, 3)`,
						kindSyncOrganization, "sync_"+s.Provider, s.Provider, org); err != nil {
						select {
						case bad <- "insert jobs with SQL: " + err.Error():
						default:
						}
						return
					}
					time.Sleep(20 * time.Millisecond) // pacing of the load, not synchronisation
				}
			})
			for time.Now().Before(stop) || s.Int(`SELECT count(*) FROM public.org_audit`) < 6*len(orgs) {
				if time.Now().After(stop.Add(time.Minute)) {
					break
				}
				time.Sleep(100 * time.Millisecond) // polling interval of the condition above
			}
			done.Store(true)
			wg.Wait()
			close(bad)
			for msg := range bad {
				t.Fatal(msg)
			}
			s.Fake.ClearFaults()
			s.WaitOrgsConverged(45 * time.Second)
			Eventually(t, 30*time.Second, "no organization job left", s.OrgJobsIdle)
			var procs int
			if err := s.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT a) FROM `+s.is()+`.river_job, unnest(attempted_by) a
				WHERE kind = $1`, kindSyncOrganization).Scan(&procs); err != nil {
				t.Fatal(err)
			}
			if procs < 2 {
				t.Errorf("organization jobs were worked by %d process(es); the race needs several", procs)
			}
			if n := s.checkOrgAudit(t, orgHist, memberHist); n < 6*len(orgs) {
				t.Errorf("only %d row versions: the race did not exercise the tables", n)
			}
		})
	}
}

// TestOrgEventDuringRunningSyncNotLost (docs/guarantees.md §3): an
// organization event that arrives while a sync of the same organization is
// running (its provider response already read) is not lost.
func TestOrgEventDuringRunningSyncNotLost(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, nil)
			f := s.Orgs()
			gate := NewGateProxy(t, s.Fake.URL())
			sv := s.Serve(s.WithAPI(gate.URL))
			users := s.Fake.Seed(3)
			org := f.CreateOrganization(users[0])
			s.SendOrg(sv.Addr, provider.EventOrganizationChanged, org)
			s.WaitOrgsConverged(15 * time.Second)
			Eventually(t, 15*time.Second, "no organization job left", s.OrgJobsIdle)

			gate.Hold()
			f.UpdateOrganization(org)
			s.SendOrg(sv.Addr, provider.EventOrganizationChanged, org)
			gate.WaitHeld(t, 10*time.Second)
			f.UpdateOrganization(org)
			f.AddMember(org, users[1], "")
			s.SendOrg(sv.Addr, provider.EventOrganizationChanged, org)
			s.SendMember(sv.Addr, org, users[1], false)
			if j, _ := s.OrgJobOf(org); j.State != "running" {
				t.Logf("the newest sync_organization job is %q", j.State)
			}
			if n := s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = $1 AND state = 'running'`, kindSyncOrganization); n == 0 {
				t.Fatal("no organization sync is running: the test would prove nothing")
			}
			gate.Release()
			s.WaitOrgsConverged(20 * time.Second)
			Eventually(t, 15*time.Second, "no organization job left", s.OrgJobsIdle)
		})
	}
}

// TestOrgBurstCoalesces (docs/guarantees.md §3): 100 webhooks about one
// organization cost far fewer than 100 jobs and provider requests, and the
// last change lands.
func TestOrgBurstCoalesces(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, nil)
			f := s.Orgs()
			sv := s.Serve(nil)
			users := s.Fake.Seed(2)
			org := f.CreateOrganization(users[0])
			s.Fake.SetLatency(200 * time.Millisecond)
			before := s.Fake.Requests()
			burst := func() {
				var wg sync.WaitGroup
				for range 50 {
					wg.Go(func() {
						body, h := f.OrganizationWebhook(provider.EventOrganizationChanged, org)
						if code := s.Post(sv.Addr, body, h); code != 200 {
							t.Errorf("webhook answered %d", code)
						}
					})
				}
				wg.Wait()
			}
			burst()
			f.UpdateOrganization(org)
			burst()
			s.WaitOrgsConverged(30 * time.Second)
			Eventually(t, 20*time.Second, "no organization job left", s.OrgJobsIdle)
			reqs, jobs := s.Fake.Requests()-before, s.OrgJobsOf(org)
			t.Logf("100 webhooks → %d sync_organization jobs, %d provider requests", jobs, reqs)
			if jobs > 10 || reqs > 30 {
				t.Errorf("100 webhooks about one organization cost %d jobs and %d provider requests; want at most 10 jobs, 30 requests", jobs, reqs)
			}
		})
	}
}

// TestOrgProviderFaults (docs/guarantees.md §6): while the provider answers
// 5xx, drops connections or times out, organization syncs fail and are
// retried with backoff, writing nothing; once it recovers, both tables
// converge. A 429 with Retry-After makes the job wait without spending an
// attempt.
func TestOrgProviderFaults(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, fault := range []string{"503", "500", "connection-reset", "timeout", "429"} {
			t.Run(prov+"/"+fault, func(t *testing.T) {
				t.Parallel()
				s := NewOrgSystem(t, prov, nil)
				f := s.Orgs()
				sv := s.Serve(nil)
				users := s.Fake.Seed(6)
				var orgs []string
				n := 3
				if fault == "429" {
					n = 1
				}
				for i := range n {
					o := f.CreateOrganization(users[i])
					f.AddMember(o, users[3+i], "")
					orgs = append(orgs, o)
				}
				start := time.Now()
				switch fault {
				case "503":
					s.Fake.FailNext(-1, 503, 0)
				case "500":
					s.Fake.FailNext(-1, 500, 0)
				case "connection-reset":
					s.Fake.FailNext(-1, 0, 0)
				case "timeout":
					// Longer than the client's request timeout (15 s).
					s.Fake.SetLatency(17 * time.Second)
				case "429":
					s.Fake.FailNext(3, 429, time.Second)
				}
				for _, o := range orgs {
					s.SendOrg(sv.Addr, provider.EventOrganizationChanged, o)
				}
				if fault == "429" {
					s.WaitOrgsConverged(30 * time.Second)
					Eventually(t, 10*time.Second, "no organization job left", s.OrgJobsIdle)
					j, _ := s.OrgJobOf(orgs[0])
					if j.State != "completed" || j.Attempt != 1 || j.Errors != 0 || j.Snoozes < 3 {
						t.Errorf("job after three 429s: %+v; want completed at attempt 1, no errors, ≥3 snoozes", j)
					}
					if el := time.Since(start); el < 2500*time.Millisecond {
						t.Errorf("converged after %s: the Retry-After of 1s (three times) was not honoured", el)
					}
					return
				}
				Eventually(t, 40*time.Second, "every organization job has failed at least once", func() string {
					for _, o := range orgs {
						if j, _ := s.OrgJobOf(o); j.Errors < 1 {
							return fmt.Sprintf("job of %s: %+v", o, j)
						}
					}
					return ""
				})
				if n := len(s.OrgRows()) + len(s.MemberRows()); n != 0 {
					t.Fatalf("%d rows written while the provider failed every request", n)
				}
				for _, o := range orgs {
					if j, _ := s.OrgJobOf(o); j.State == "discarded" || j.State == "cancelled" {
						t.Fatalf("job of %s gave up during a short outage: %+v", o, j)
					}
				}
				s.Fake.ClearFaults()
				s.WaitOrgsConverged(60 * time.Second)
			})
		}
	}
}

// TestOrgBackfillRateLimited (docs/guarantees.md §6: "for every job kind"): 429s
// during a backfill with organizations snooze its jobs without spending
// attempts, and the run completes with both tables converged.
func TestOrgBackfillRateLimited(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, nil)
			s.Serve(nil)
			f := s.Orgs()
			s.Fake.Seed(20)
			f.SeedOrganizations(15, 3)
			s.Fake.FailNext(4, 429, time.Second)
			s.bfBackfillWait(t, 90*time.Second)
			if d := s.OrgDiff(); d != "" {
				t.Fatalf("organization tables differ after backfill --wait:\n%s", d)
			}
			var attempts, errs, snoozes int
			if err := s.Pool.QueryRow(context.Background(), `SELECT coalesce(max(attempt), 0), coalesce(sum(coalesce(array_length(errors, 1), 0)), 0),
				coalesce(sum(coalesce((metadata->>'snoozes')::int, 0)), 0) FROM `+s.is()+`.river_job WHERE kind = ANY($1)`,
				[]string{"backfill_page", kindBackfillOrganizations}).Scan(&attempts, &errs, &snoozes); err != nil {
				t.Fatal(err)
			}
			if attempts != 1 || errs != 0 || snoozes < 4 {
				t.Errorf("backfill jobs after four 429s: max attempt %d, %d errors, %d snoozes; want 1, 0, ≥4", attempts, errs, snoozes)
			}
		})
	}
}

// TestOrgChangeNotifications (docs/data-model.md): each real change to the
// organization tables sends exactly one notification {"id","op"} on
// <schema>_organizations_sync or <schema>_memberships_sync (a membership's
// id is "<organization_id>:<user_id>"); a re-sync that changes nothing
// sends none.
func TestOrgChangeNotifications(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"soft", "hard"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				s := NewOrgSystem(t, prov, map[string]string{"USERSYNC_DELETE_MODE": mode})
				f := s.Orgs()
				lo := s.listen(t, s.Schema+"_organizations_sync")
				lm := s.listen(t, s.Schema+"_memberships_sync")
				lu := s.listen(t, s.Schema+"_users_sync")
				sv := s.Serve(nil)
				users := s.Fake.Seed(3)
				s.SendAll(sv.Addr, provider.EventUserChanged, users, 3)
				s.WaitConverged(15 * time.Second)
				Eventually(t, 15*time.Second, "user syncs finished", s.Idle)
				lu.Drain()

				sorted := func(cs []change) []change {
					sort.Slice(cs, func(i, j int) bool { return cs[i].ID+cs[i].Op < cs[j].ID+cs[j].Op })
					return cs
				}
				step := func(what string, wantOrgs, wantMembers []change, sends ...func()) {
					t.Helper()
					for _, send := range sends {
						send()
						Eventually(t, 20*time.Second, what+": syncs finished", func() string {
							if d := s.OrgJobsIdle(); d != "" {
								return d
							}
							return s.Idle()
						})
					}
					if got := sorted(lo.Drain()); !reflect.DeepEqual(got, sorted(wantOrgs)) && len(got)+len(wantOrgs) > 0 {
						t.Errorf("%s: organization notifications %v, want %v", what, got, wantOrgs)
					}
					if got := sorted(lm.Drain()); !reflect.DeepEqual(got, sorted(wantMembers)) && len(got)+len(wantMembers) > 0 {
						t.Errorf("%s: membership notifications %v, want %v", what, got, wantMembers)
					}
				}
				org := func(kind provider.EventKind, id string) func() {
					return func() { s.SendOrg(sv.Addr, kind, id) }
				}
				member := func(o, u string, del bool) func() {
					return func() { s.SendMember(sv.Addr, o, u, del) }
				}
				// changedMembers: the memberships whose provider object differs
				// between two snapshots (they embed the organization or not).
				changedMembers := func(before map[string][]byte) []change {
					var out []change
					for k, raw := range f.MembershipsSnapshot() {
						if old, ok := before[k]; ok && canonical(old) != canonical(raw) {
							out = append(out, change{k, "update"})
						}
					}
					return out
				}
				memberSnap := func() map[string][]byte {
					out := map[string][]byte{}
					for k, v := range f.MembershipsSnapshot() {
						out[k] = v
					}
					return out
				}

				a := f.CreateOrganization(users[0])
				sends := []func(){org(provider.EventOrganizationChanged, a)}
				if s.CreatorSendsMembershipEvent() {
					sends = append(sends, member(a, users[0], false))
				}
				step("organization created", []change{{a, "insert"}}, []change{{memberKey(a, users[0]), "insert"}}, sends...)
				step("same webhooks again (no change)", nil, nil, append(sends, member(a, users[0], false))...)
				f.AddMember(a, users[1], "")
				step("member added", nil, []change{{memberKey(a, users[1]), "insert"}}, member(a, users[1], false))
				snap := memberSnap()
				f.UpdateOrganization(a)
				step("organization renamed", []change{{a, "update"}}, changedMembers(snap), org(provider.EventOrganizationChanged, a))
				step("re-sync of the unchanged organization", nil, nil, org(provider.EventOrganizationChanged, a))
				snap = memberSnap()
				f.UpdateMember(a, users[1], orgRoles[prov])
				step("member's role changed", nil, changedMembers(snap), member(a, users[1], false))
				f.RemoveMember(a, users[1])
				step("member removed", nil, []change{{memberKey(a, users[1]), "delete"}}, member(a, users[1], true))
				step("member removed again", nil, nil, member(a, users[1], true))
				f.AddMember(a, users[2], "")
				step("another member", nil, []change{{memberKey(a, users[2]), "insert"}}, member(a, users[2], false))
				s.Fake.DeleteUser(users[2])
				step("member user deleted", nil, []change{{memberKey(a, users[2]), "delete"}}, func() {
					if code := s.Send(sv.Addr, provider.EventUserDeleted, users[2]); code != 200 {
						t.Fatalf("webhook answered %d", code)
					}
				})
				f.DeleteOrganization(a)
				step("organization deleted", []change{{a, "delete"}}, []change{{memberKey(a, users[0]), "delete"}},
					org(provider.EventOrganizationDeleted, a))
				step("organization deleted again", nil, nil, org(provider.EventOrganizationDeleted, a), org(provider.EventOrganizationChanged, a))
				s.WaitOrgsConverged(5 * time.Second)
				if got := lu.Drain(); len(got) != 1 || got[0] != (change{users[2], "delete"}) {
					t.Errorf("users_sync notifications %v, want only the deletion of %s", got, users[2])
				}
			})
		}
	}
}

// TestOrgMembershipsFollowUserChanges (docs/data-model.md: raw_json is the
// provider's current object; docs/guarantees.md §2): where a membership
// object embeds its member (WorkOS the whole user, Clerk public_user_data),
// a user's change, announced only by user.updated, changes the provider's
// membership objects; the rows follow. Providers whose membership objects
// do not embed the user (Stack Auth) are checked all the same: nothing may
// change there.
func TestOrgMembershipsFollowUserChanges(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewOrgSystem(t, prov, nil)
			f := s.Orgs()
			sv := s.Serve(nil)
			users := s.Fake.Seed(4)
			s.SendAll(sv.Addr, provider.EventUserChanged, users, 4)
			a, b := f.CreateOrganization(users[0]), f.CreateOrganization("")
			f.AddMember(a, users[1], "")
			f.AddMember(b, users[1], "")
			for _, o := range []string{a, b} {
				s.SendOrg(sv.Addr, provider.EventOrganizationChanged, o)
			}
			s.WaitOrgsConverged(20 * time.Second)
			// The fakes change one of several things of a user at a time:
			// change the user until the change shows in the memberships
			// (never, where they do not embed the user).
			before := f.MembershipsSnapshot()
			changed := 0
			for try := 0; try < 20 && changed == 0; try++ {
				s.Fake.UpdateUser(users[1])
				for k, raw := range f.MembershipsSnapshot() {
					if canonical(before[k]) != canonical(raw) {
						changed++
					}
				}
			}
			if code := s.Send(sv.Addr, provider.EventUserChanged, users[1]); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			t.Logf("%s: a user's change changed %d of the provider's membership objects", prov, changed)
			if prov != "stackauth" && changed == 0 {
				t.Errorf("%s: 20 changes of a user never changed the membership objects that embed the user: the test proves nothing", prov)
			}
			s.WaitConverged(15 * time.Second)
			s.WaitOrgsConverged(20 * time.Second)
		})
	}
}
