package integration_test

// Helpers of the organization tests (organizations_test.go and the
// organization part of model_test.go): USERSYNC_ORGANIZATIONS=on, the
// organizations_sync and memberships_sync tables, and their comparison with
// a fake's organizations and memberships (docs/data-model.md,
// "Organizations and memberships").

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// The job kinds of organizations (docs/jobs.md).
const (
	kindSyncOrganization      = "sync_organization"
	kindBackfillOrganizations = "backfill_organizations"
)

// orgRoles are, per provider, a non-default role key that UpdateMember sets
// (Stack Auth has no roles: "" changes nothing).
var orgRoles = map[string]string{
	"stackauth": "",
	"clerk":     "org:admin",
	"workos":    "admin",
}

// NewOrgSystem is NewSystem with USERSYNC_ORGANIZATIONS=on.
func NewOrgSystem(t testing.TB, prov string, extra map[string]string) *System {
	t.Helper()
	env := map[string]string{"USERSYNC_ORGANIZATIONS": "on"}
	for k, v := range extra {
		env[k] = v
	}
	return NewSystem(t, prov, env)
}

// Orgs returns the system's fake as an organizations fake.
func (s *System) Orgs() fakekit.OrganizationsFake {
	s.t.Helper()
	f, ok := s.Fake.(fakekit.OrganizationsFake)
	if !ok {
		s.t.Fatalf("the %s fake does not implement fakekit.OrganizationsFake", s.Provider)
	}
	return f
}

// memberKey is the key of a membership, as in its notifications.
func memberKey(orgID, userID string) string { return orgID + ":" + userID }

// orgsTable and membersTable are the quoted organization tables.
func (s *System) orgsTable() string { return pgx.Identifier{s.Schema, "organizations_sync"}.Sanitize() }
func (s *System) membersTable() string {
	return pgx.Identifier{s.Schema, "memberships_sync"}.Sanitize()
}

// OrgRow is one organizations_sync row.
type OrgRow struct {
	ID        string
	Raw       json.RawMessage
	Name      *string
	CreatedAt *time.Time
	UpdatedAt *time.Time
	DeletedAt *time.Time
}

// MemberRow is one memberships_sync row.
type MemberRow struct {
	OrganizationID, UserID string
	Raw                    json.RawMessage
	Role                   *string
	CreatedAt              *time.Time
	UpdatedAt              *time.Time
	DeletedAt              *time.Time
}

// OrgRows reads every organizations_sync row by id.
func (s *System) OrgRows() map[string]OrgRow {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT id, raw_json, name, created_at, updated_at, deleted_at FROM `+s.orgsTable())
	if err != nil {
		s.t.Fatalf("read organizations_sync: %v", err)
	}
	out := map[string]OrgRow{}
	for rows.Next() {
		var r OrgRow
		if err := rows.Scan(&r.ID, &r.Raw, &r.Name, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt); err != nil {
			s.t.Fatalf("read organizations_sync: %v", err)
		}
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read organizations_sync: %v", err)
	}
	return out
}

// MemberRows reads every memberships_sync row by "<organization_id>:<user_id>".
func (s *System) MemberRows() map[string]MemberRow {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT organization_id, user_id, raw_json, role, created_at, updated_at, deleted_at FROM `+
		s.membersTable())
	if err != nil {
		s.t.Fatalf("read memberships_sync: %v", err)
	}
	out := map[string]MemberRow{}
	for rows.Next() {
		var r MemberRow
		if err := rows.Scan(&r.OrganizationID, &r.UserID, &r.Raw, &r.Role, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt); err != nil {
			s.t.Fatalf("read memberships_sync: %v", err)
		}
		out[memberKey(r.OrganizationID, r.UserID)] = r
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read memberships_sync: %v", err)
	}
	return out
}

// redactSet is USERSYNC_REDACT as a set.
func (s *System) redactSet() map[string]bool {
	redact := map[string]bool{}
	for k := range strings.SplitSeq(s.Env["USERSYNC_REDACT"], ",") {
		if k = strings.TrimSpace(k); k != "" {
			redact[k] = true
		}
	}
	return redact
}

// tableDiff compares one table's rows (raw and deleted_at by key) with the
// provider's live objects by key.
func tableDiff(what string, want map[string]json.RawMessage, raws map[string]json.RawMessage, deleted map[string]bool,
	redact map[string]bool, hard bool) []string {
	var diffs []string
	for id, raw := range want {
		got, ok := raws[id]
		switch {
		case !ok:
			diffs = append(diffs, what+" missing "+id)
		case deleted[id]:
			diffs = append(diffs, what+" marked deleted but live "+id)
		case !jsonEqual(got, raw, redact):
			diffs = append(diffs, fmt.Sprintf("%s stale %s:\n   got %s\n  want %s", what, id, tail(canonical(got), 400), tail(canonical(raw), 400)))
		}
	}
	for id := range raws {
		if _, ok := want[id]; ok {
			continue
		}
		if hard {
			diffs = append(diffs, what+" row of a deleted one still present "+id)
		} else if !deleted[id] {
			diffs = append(diffs, what+" deleted at the provider, not marked deleted "+id)
		}
	}
	return diffs
}

// OrgDiff compares organizations_sync and memberships_sync with the fake's
// organizations and memberships ("" when both equal it): every live object
// has a row equal to it (minus redacted keys), every other row is marked
// deleted (soft mode) or absent (hard mode).
func (s *System) OrgDiff() string {
	s.t.Helper()
	f := s.Orgs()
	wantOrgs, wantMembers := f.OrganizationsSnapshot(), f.MembershipsSnapshot()
	redact, hard := s.redactSet(), s.Env["USERSYNC_DELETE_MODE"] == "hard"
	raws, deleted := map[string]json.RawMessage{}, map[string]bool{}
	for id, r := range s.OrgRows() {
		raws[id], deleted[id] = r.Raw, r.DeletedAt != nil
	}
	diffs := tableDiff("organization", wantOrgs, raws, deleted, redact, hard)
	raws, deleted = map[string]json.RawMessage{}, map[string]bool{}
	for id, r := range s.MemberRows() {
		raws[id], deleted[id] = r.Raw, r.DeletedAt != nil
	}
	diffs = append(diffs, tableDiff("membership", wantMembers, raws, deleted, redact, hard)...)
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("… and %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "\n")
}

// WaitOrgsConverged waits until both organization tables equal the provider.
func (s *System) WaitOrgsConverged(timeout time.Duration) {
	s.t.Helper()
	Eventually(s.t, timeout, "organizations_sync and memberships_sync converge to the provider", s.OrgDiff)
}

// CheckOrgColumns compares the derived columns of every live row (name,
// created_at; role, created_at) with what the provider's client reads (docs/data-model.md):
// they come from the provider's full object. Call it once converged, with
// no fault injected.
func (s *System) CheckOrgColumns(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Orgs().Organizations()
	orgs := s.OrgRows()
	members := s.MemberRows()
	checked := 0
	for cursor, first := "", true; first || cursor != ""; first = false {
		page, err := c.ListOrganizations(ctx, cursor)
		if err != nil {
			t.Fatalf("list organizations with the fake's client: %v", err)
		}
		cursor = page.Next
		for _, o := range page.Organizations {
			r, ok := orgs[o.ID]
			if !ok {
				t.Errorf("organization %s: no row", o.ID)
				continue
			}
			checked++
			if str(r.Name) != str(o.Name) || !timeEqual(r.CreatedAt, o.CreatedAt) {
				t.Errorf("organization %s: name %q, created_at %v; want %q, %v", o.ID, str(r.Name), r.CreatedAt, str(o.Name), o.CreatedAt)
			}
			if r.UpdatedAt == nil {
				t.Errorf("organization %s: updated_at is NULL", o.ID)
			}
			for mc, mfirst := "", true; mfirst || mc != ""; mfirst = false {
				mp, err := c.ListMemberships(ctx, o.ID, mc)
				if err != nil {
					t.Fatalf("list memberships of %s with the fake's client: %v", o.ID, err)
				}
				mc = mp.Next
				for _, m := range mp.Memberships {
					k := memberKey(m.OrganizationID, m.UserID)
					r, ok := members[k]
					if !ok {
						t.Errorf("membership %s: no row", k)
						continue
					}
					checked++
					if str(r.Role) != str(m.Role) || !timeEqual(r.CreatedAt, m.CreatedAt) {
						t.Errorf("membership %s: role %q, created_at %v; want %q, %v", k, str(r.Role), r.CreatedAt, str(m.Role), m.CreatedAt)
					}
					if s.Provider == "stackauth" && r.Role != nil {
						t.Errorf("Stack Auth membership %s has role %q; want NULL", k, *r.Role)
					}
					if r.UpdatedAt == nil {
						t.Errorf("membership %s: updated_at is NULL", k)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Errorf("no organization to check the columns of")
	}
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// SendOrg posts a signed organization event and fails unless it is
// answered 2xx.
func (s *System) SendOrg(addr string, kind provider.EventKind, orgID string) {
	s.t.Helper()
	body, h := s.Orgs().OrganizationWebhook(kind, orgID)
	if code := s.Post(addr, body, h); code/100 != 2 {
		s.t.Fatalf("%s webhook for organization %s answered %d", eventKindName(kind), orgID, code)
	}
}

// SendMember posts a signed membership event and fails unless it is
// answered 2xx.
func (s *System) SendMember(addr, orgID, userID string, deleted bool) {
	s.t.Helper()
	body, h := s.Orgs().MembershipWebhook(orgID, userID, deleted)
	if code := s.Post(addr, body, h); code/100 != 2 {
		s.t.Fatalf("membership webhook for %s (deleted %v) answered %d", memberKey(orgID, userID), deleted, code)
	}
}

func eventKindName(k provider.EventKind) string {
	switch k {
	case provider.EventUserChanged:
		return "user.changed"
	case provider.EventUserDeleted:
		return "user.deleted"
	case provider.EventOrganizationChanged:
		return "organization.changed"
	case provider.EventOrganizationDeleted:
		return "organization.deleted"
	case provider.EventMembershipChanged:
		return "membership.changed"
	}
	return fmt.Sprintf("event kind %d", k)
}

// CreatorSendsMembershipEvent reports whether the provider sends a
// membership event when an organization's creator joins it (Stack Auth's
// creator joins silently: docs/providers.md).
func (s *System) CreatorSendsMembershipEvent() bool { return s.Provider != "stackauth" }

// OrgJobsIdle reports "" when no organization job is waiting or running.
func (s *System) OrgJobsIdle() string {
	n := s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = ANY($1) AND finalized_at IS NULL`,
		[]string{kindSyncOrganization, kindBackfillOrganizations})
	if n > 0 {
		return fmt.Sprintf("organization jobs not finalized: %d", n)
	}
	return ""
}

// OrgJobsOf counts sync_organization jobs (any state) of an organization.
func (s *System) OrgJobsOf(orgID string) int {
	s.t.Helper()
	return s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = $1 AND args->>'organization_id' = $2`, kindSyncOrganization, orgID)
}

// OrgJobOf returns the newest sync_organization job of an organization.
func (s *System) OrgJobOf(orgID string) (UserJob, bool) {
	s.t.Helper()
	var j UserJob
	err := s.Pool.QueryRow(context.Background(), `SELECT id, state::text, attempt, coalesce(array_length(errors, 1), 0),
		coalesce((metadata->>'snoozes')::int, 0), coalesce(array_to_json(errors)::text, '')
		FROM `+s.is()+`.river_job WHERE kind = $1 AND args->>'organization_id' = $2 ORDER BY id DESC LIMIT 1`, kindSyncOrganization, orgID).
		Scan(&j.ID, &j.State, &j.Attempt, &j.Errors, &j.Snoozes, &j.ErrorsJS)
	if err == pgx.ErrNoRows {
		return j, false
	}
	if err != nil {
		s.t.Fatalf("job of organization %s: %v", orgID, err)
	}
	return j, true
}

// TableExists reports whether <schema>.<name> exists.
func (s *System) TableExists(name string) bool {
	s.t.Helper()
	return s.Int(`SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = $2`, s.Schema, name) == 1
}

// orgXmins returns each row's xmin (its row version) of both organization
// tables, by "org:<id>" and "member:<org>:<user>".
func (s *System) orgXmins() map[string]string {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT 'org:' || id, xmin::text FROM `+s.orgsTable()+`
		UNION ALL SELECT 'member:' || organization_id || ':' || user_id, xmin::text FROM `+s.membersTable())
	if err != nil {
		s.t.Fatalf("read xmin: %v", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, x string
		if err := rows.Scan(&id, &x); err != nil {
			s.t.Fatal(err)
		}
		out[id] = x
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// ---- the history of the provider's objects, and the audit of the tables ----

// deletedMark stands for "deleted at the provider" in an objectHistory.
const deletedMark = "\x00deleted"

// objectHistory remembers, per object (organization id, or membership key),
// the sequence of states the provider had: its canonical objects and
// deletions, oldest first. An object may come back after a deletion (a
// member who joins again).
type objectHistory struct {
	mu     sync.Mutex
	redact map[string]bool
	h      map[string][]string
}

func newObjectHistory(redact map[string]bool) *objectHistory {
	return &objectHistory{redact: redact, h: map[string][]string{}}
}

// observe records the provider's current objects: a new state for every
// object whose content changed, a deletion for every object that was live
// and is absent now.
func (o *objectHistory) observe(live map[string]json.RawMessage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, raw := range live {
		c := modelCanonical(raw, o.redact)
		if h := o.h[id]; len(h) == 0 || h[len(h)-1] != c {
			o.h[id] = append(h, c)
		}
	}
	for id, h := range o.h {
		if _, ok := live[id]; !ok && h[len(h)-1] != deletedMark {
			o.h[id] = append(h, deletedMark)
		}
	}
}

// auditVersion is one row version recorded by an audit trigger.
type auditVersion struct {
	Op      string
	Raw     string
	Col     string // name (organizations) or role (memberships)
	Deleted bool
}

// check walks the row versions of one object and reports every version
// that holds content the provider never had, goes back to an older state
// than the one before it, brings a deleted object back although the
// provider did not have it again, or marks it deleted although the
// provider had not deleted it since.
func (o *objectHistory) check(what, id string, vs []auditVersion) []string {
	o.mu.Lock()
	h := slices.Clone(o.h[id])
	o.mu.Unlock()
	var problems []string
	prev := 0 // index in h of the state the row holds
	for i, v := range vs {
		state := deletedMark
		if !v.Deleted && v.Op != "DELETE" {
			state = modelCanonical([]byte(v.Raw), o.redact)
		}
		at := -1
		for j := prev; j < len(h); j++ {
			if h[j] == state {
				at = j
				break
			}
		}
		switch {
		case at >= 0:
			prev = at
		case state == deletedMark:
			problems = append(problems, fmt.Sprintf("%s %s: version %d (%s) marks it deleted, but the provider did not delete it after state %d",
				what, id, i+1, v.Op, prev+1))
		case slices.Contains(h[:prev], state) && h[prev] == deletedMark:
			problems = append(problems, fmt.Sprintf("%s %s: version %d brings a deleted one back (with a state the provider had before deleting it)",
				what, id, i+1))
		case slices.Contains(h[:prev], state):
			problems = append(problems, fmt.Sprintf("%s %s: version %d goes back from provider state %d to an older one (stale overwrite)",
				what, id, i+1, prev+1))
		default:
			problems = append(problems, fmt.Sprintf("%s %s: version %d holds content the provider never had: %s", what, id, i+1, tail(v.Raw, 300)))
		}
	}
	return problems
}

// addOrgAudit installs triggers that record every row version of both
// organization tables in public.org_audit.
func (s *System) addOrgAudit() {
	s.t.Helper()
	s.Exec(`
CREATE TABLE public.org_audit (seq bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL, id text NOT NULL, raw jsonb,
  col text, deleted boolean);
CREATE FUNCTION public.org_audit() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE r record; k text; c text;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  -- col: the derived column that may change when raw_json does not (a
  -- redacted key's): name, or role.
  IF TG_TABLE_NAME = 'organizations_sync' THEN k := r.id; c := r.name;
  ELSE k := r.organization_id || ':' || r.user_id; c := r.role; END IF;
  INSERT INTO public.org_audit (tbl, op, id, raw, col, deleted)
  VALUES (TG_TABLE_NAME, TG_OP, k, r.raw_json, c, TG_OP = 'DELETE' OR r.deleted_at IS NOT NULL);
  RETURN NULL;
END $f$;
CREATE TRIGGER org_audit AFTER INSERT OR UPDATE OR DELETE ON ` + s.orgsTable() + `
  FOR EACH ROW EXECUTE FUNCTION public.org_audit();
CREATE TRIGGER org_audit AFTER INSERT OR UPDATE OR DELETE ON ` + s.membersTable() + `
  FOR EACH ROW EXECUTE FUNCTION public.org_audit();`)
}

// orgAudit returns the audited row versions of one table
// ("organizations_sync" or "memberships_sync") by key, oldest first.
func (s *System) orgAudit(table string) map[string][]auditVersion {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT id, op, coalesce(raw::text, ''), coalesce(col, '\x00null'), deleted FROM public.org_audit WHERE tbl = $1 ORDER BY seq`, table)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string][]auditVersion{}
	for rows.Next() {
		var id string
		var v auditVersion
		if err := rows.Scan(&id, &v.Op, &v.Raw, &v.Col, &v.Deleted); err != nil {
			s.t.Fatal(err)
		}
		out[id] = append(out[id], v)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// noopWrites reports row versions that changed nothing (an UPDATE equal to
// the version before it in raw_json, the derived column and deletion):
// updated_at is when the content last changed.
func noopWrites(what, id string, vs []auditVersion) []string {
	var out []string
	for i := 1; i < len(vs); i++ {
		a, b := vs[i-1], vs[i]
		if b.Op == "UPDATE" && a.Op != "DELETE" && a.Deleted == b.Deleted && a.Col == b.Col && canonical([]byte(a.Raw)) == canonical([]byte(b.Raw)) {
			out = append(out, fmt.Sprintf("%s %s: no-op write (version %d equals version %d)", what, id, i+1, i))
		}
	}
	return out
}

// checkOrgAudit checks every audited row version of both tables against the
// histories (see objectHistory.check) and fails the test on any problem.
func (s *System) checkOrgAudit(t testing.TB, orgs, members *objectHistory) int {
	t.Helper()
	var problems []string
	versions := 0
	for _, tb := range []struct {
		table, what string
		h           *objectHistory
	}{{"organizations_sync", "organization", orgs}, {"memberships_sync", "membership", members}} {
		for id, vs := range s.orgAudit(tb.table) {
			versions += len(vs)
			problems = append(problems, tb.h.check(tb.what, id, vs)...)
			problems = append(problems, noopWrites(tb.what, id, vs)...)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		if len(problems) > 15 {
			problems = append(problems[:15], fmt.Sprintf("… and %d more", len(problems)-15))
		}
		t.Errorf("organization row history violates the provider's history:\n%s", strings.Join(problems, "\n"))
	}
	return versions
}

// TestObjectHistoryCheck: the audit check used by the organization tests
// accepts row histories that follow the provider's, and reports each kind
// of violation.
func TestObjectHistoryCheck(t *testing.T) {
	t.Parallel()
	h := newObjectHistory(map[string]bool{"secret": true})
	v := func(n int) string { return fmt.Sprintf(`{"v":%d,"secret":"x"}`, n) }
	raw := func(n int) json.RawMessage { return json.RawMessage(v(n)) }
	h.observe(map[string]json.RawMessage{"a": raw(1), "b": raw(1)})
	h.observe(map[string]json.RawMessage{"a": raw(2), "b": raw(1)})
	h.observe(map[string]json.RawMessage{"a": raw(3)})              // b deleted
	h.observe(map[string]json.RawMessage{"a": raw(3), "b": raw(1)}) // b back, same content
	h.observe(map[string]json.RawMessage{"a": raw(3), "b": raw(1)}) // no change
	live := func(n int) auditVersion { return auditVersion{Op: "UPDATE", Raw: `{"v":` + fmt.Sprint(n) + `}`} }
	del := auditVersion{Op: "UPDATE", Raw: v(1), Deleted: true}
	for _, c := range []struct {
		name, id string
		vs       []auditVersion
		want     string // "" = no problem
	}{
		{"follows", "a", []auditVersion{live(1), live(2), live(3)}, ""},
		{"skips versions", "a", []auditVersion{live(1), live(3)}, ""},
		{"goes back", "a", []auditVersion{live(2), live(1)}, "goes back"},
		{"never had", "a", []auditVersion{live(9)}, "never had"},
		{"deleted but live", "a", []auditVersion{live(1), {Op: "UPDATE", Raw: v(1), Deleted: true}}, "did not delete"},
		{"deleted, back", "b", []auditVersion{live(1), del, live(1)}, ""},
		{"hard delete, back", "b", []auditVersion{live(1), {Op: "DELETE", Raw: v(1)}, {Op: "INSERT", Raw: v(1)}}, ""},
		{"deleted twice", "b", []auditVersion{live(1), del, live(1), del}, "did not delete"},
	} {
		got := strings.Join(h.check("object", c.id, c.vs), "\n")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: problems %q, want one containing %q", c.name, got, c.want)
		}
	}
	if got := noopWrites("object", "a", []auditVersion{live(1), live(1)}); len(got) != 1 {
		t.Errorf("noopWrites of two equal versions: %v", got)
	}
	renamed := live(1)
	renamed.Col = "new name"
	if got := noopWrites("object", "a", []auditVersion{live(1), renamed}); len(got) != 0 {
		t.Errorf("noopWrites of a version whose derived column changed: %v", got)
	}
	if got := noopWrites("object", "a", []auditVersion{live(1), live(2), del}); len(got) != 0 {
		t.Errorf("noopWrites of changing versions: %v", got)
	}
}
