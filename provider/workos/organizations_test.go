package workos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/workos"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// orgClient returns the fake's client as a provider.Organizations (and a
// provider.Provider, for webhooks).
func orgClient(t *testing.T, f *workosfake.Fake) *workos.Client {
	t.Helper()
	c, ok := f.Organizations().(*workos.Client)
	if !ok {
		t.Fatalf("Organizations() is a %T", f.Organizations())
	}
	return c
}

func TestFetchOrganization(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	c := orgClient(t, f)
	ctx := context.Background()
	id := f.CreateOrganization("")
	o, err := c.FetchOrganization(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := f.OrganizationsSnapshot()[id]
	if !bytes.Equal(o.Raw, want) {
		t.Errorf("Raw is not the answer as received:\n%s\n%s", o.Raw, want)
	}
	var m struct {
		Name                 string `json:"name"`
		CreatedAt, UpdatedAt string
	}
	_ = json.Unmarshal(want, &m)
	if o.ID != id || o.Name == nil || *o.Name != m.Name || o.CreatedAt == nil || o.UpdatedAt == nil || !o.CreatedAt.Equal(*o.UpdatedAt) {
		t.Errorf("columns: %+v", o)
	}
	// A rename bumps updated_at and the name.
	if !f.UpdateOrganization(id) {
		t.Fatal("UpdateOrganization")
	}
	o2, err := c.FetchOrganization(ctx, id)
	if err != nil || *o2.Name == *o.Name || !o2.UpdatedAt.After(*o.UpdatedAt) || !o2.CreatedAt.Equal(*o.CreatedAt) {
		t.Errorf("after rename: %+v %v", o2, err)
	}

	// Deleted: WorkOS's own 404.
	f.DeleteOrganization(id)
	if _, err := c.FetchOrganization(ctx, id); !errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("deleted: %v, want ErrOrganizationNotFound", err)
	}
	// Never existed, well-formed.
	if _, err := c.FetchOrganization(ctx, "org_01EHWNCE74X7JSDV0X3SZ3KJNY"); !errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("unknown: %v, want ErrOrganizationNotFound", err)
	}
	// Ids no WorkOS object can have are not sent.
	before := f.Requests()
	for _, bad := range []string{"", "org_\x00", strings.Repeat("x", 300)} {
		if _, err := c.FetchOrganization(ctx, bad); !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("FetchOrganization(%q): %v", bad, err)
		}
	}
	if n := f.Requests() - before; n != 0 {
		t.Errorf("%d requests for ids no organization can have", n)
	}
}

// TestOrganizationForeignNotFound: only WorkOS's own not-found answer is a
// deletion; a 404 from anything else (a wrong WORKOS_API_URL) is a retried
// error that says so.
func TestOrganizationForeignNotFound(t *testing.T) {
	const id = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"
	var body string
	srv := newStaticServer(t, http.StatusNotFound, &body)
	c, err := workos.New(workos.Config{APIKey: "sk_test_key", APIURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		body string
		own  bool
	}{
		{`{"message":"Organization not found: '` + id + `'."}`, true},
		{`{"message":"Organization not found: '` + id + `'.","code":"entity_not_found"}`, true},
		{`{"code":"entity_not_found","message":"x"}`, true},
		{`{"message":"Not Found"}`, false},
		{`{"message":"Not Found","code":"not_found"}`, false},
		{`{"message":"Organization not found: 'org_01EHWNCE74X7JSDV0X3SZ3KJNZ'."}`, false}, // another id
		{`{"message":"User not found: '` + id + `'."}`, false},
		{`<html><body>404 Not Found</body></html>`, false},
		{``, false},
	} {
		body = tc.body
		_, ferr := c.FetchOrganization(ctx, id)
		_, lerr := c.ListMemberships(ctx, id, "")
		for name, err := range map[string]error{"fetch": ferr, "memberships": lerr} {
			if tc.own {
				if !errors.Is(err, provider.ErrOrganizationNotFound) {
					t.Errorf("%s, %s: %v, want ErrOrganizationNotFound", name, tc.body, err)
				}
				continue
			}
			if errors.Is(err, provider.ErrOrganizationNotFound) || !errors.Is(err, provider.ErrForeignNotFound) {
				t.Errorf("%s, %s: %v, want ErrForeignNotFound and not ErrOrganizationNotFound", name, tc.body, err)
			}
		}
	}
	// With a cursor, a foreign 404 is no more a lost cursor than a deletion.
	body = `{"message":"Not Found"}`
	if _, err := c.ListMemberships(ctx, id, "om_01EHWNCE74X7JSDV0X3SZ3KJNY"); errors.Is(err, provider.ErrCursorNotFound) || !errors.Is(err, provider.ErrForeignNotFound) {
		t.Errorf("foreign 404 with a cursor: %v", err)
	}
}

// listAllOrganizations lists every page, following Next.
func listAllOrganizations(t *testing.T, c provider.Organizations) ([]provider.Organization, error) {
	t.Helper()
	var all []provider.Organization
	cursor := ""
	for range 1000 {
		page, err := c.ListOrganizations(context.Background(), cursor)
		if err != nil {
			return all, err
		}
		all = append(all, page.Organizations...)
		if page.Next == "" {
			return all, nil
		}
		cursor = page.Next
	}
	t.Fatal("the list never ends")
	return nil, nil
}

func TestListOrganizations(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	c := orgClient(t, f)
	if all, err := listAllOrganizations(t, c); err != nil || len(all) != 0 {
		t.Fatalf("no organizations: %d, %v", len(all), err)
	}
	ids := f.SeedOrganizations(250, 0)
	all, err := listAllOrganizations(t, c)
	if err != nil {
		t.Fatal(err)
	}
	snap := f.OrganizationsSnapshot()
	got := make([]string, len(all))
	for i, o := range all {
		got[i] = o.ID
		if !bytes.Equal(o.Raw, snap[o.ID]) || o.Name == nil || o.CreatedAt == nil || o.UpdatedAt == nil {
			t.Errorf("%s: %+v", o.ID, o)
		}
	}
	// Oldest first, every organization once: a complete listing in a stable order.
	if !slices.Equal(got, ids) {
		t.Fatalf("listed %d organizations, not the %d seeded in creation order", len(got), len(ids))
	}
}

// TestListOrganizationsDeletionBetweenPages: organizations deleted or created
// between pages neither end the listing early nor hide a live organization.
// When the cursor's own organization is deleted, the strict fake refuses it
// (ErrCursorNotFound, never an empty last page); the lenient one goes on.
func TestListOrganizationsDeletionBetweenPages(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		f := workosfake.New(workosfake.Options{LenientCursor: lenient})
		c := orgClient(t, f)
		ctx := context.Background()
		ids := f.SeedOrganizations(230, 0)
		page, err := c.ListOrganizations(ctx, "")
		if err != nil || len(page.Organizations) != 100 || page.Next != ids[99] {
			t.Fatalf("first page: %d, next %q, %v", len(page.Organizations), page.Next, err)
		}
		// Delete some of the next page and one the first page already had;
		// create one (listed last).
		f.DeleteOrganization(ids[150])
		f.DeleteOrganization(ids[10])
		late := f.CreateOrganization("")
		page, err = c.ListOrganizations(ctx, page.Next)
		if err != nil || len(page.Organizations) != 100 || page.Organizations[0].ID != ids[100] || page.Next != ids[200] {
			t.Fatalf("second page: %d, next %q, %v", len(page.Organizations), page.Next, err)
		}
		// The cursor's organization is deleted between pages.
		f.DeleteOrganization(ids[200])
		page, err = c.ListOrganizations(ctx, ids[200])
		if !lenient {
			if !errors.Is(err, provider.ErrCursorNotFound) {
				t.Errorf("strict: %+v, %v; want ErrCursorNotFound", page, err)
			}
			f.Close()
			continue
		}
		if err != nil || len(page.Organizations) != 30 || page.Organizations[0].ID != ids[201] || page.Organizations[29].ID != late || page.Next != "" {
			t.Errorf("lenient: %d organizations, next %q, %v", len(page.Organizations), page.Next, err)
		}
		// An empty page after a deleted cursor organization is not the end.
		for _, o := range page.Organizations {
			f.DeleteOrganization(o.ID)
		}
		if _, err := c.ListOrganizations(ctx, ids[200]); !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("empty page after a deleted cursor: %v, want ErrCursorNotFound", err)
		}
		// After a live one, it is.
		if page, err := c.ListOrganizations(ctx, ids[199]); err != nil || len(page.Organizations) != 0 || page.Next != "" {
			t.Errorf("empty page after a live cursor: %+v %v", page, err)
		}
		f.Close()
	}
}

// listAllMemberships lists every page of one organization's memberships.
func listAllMemberships(t *testing.T, c provider.Organizations, orgID string) ([]provider.Membership, error) {
	t.Helper()
	var all []provider.Membership
	cursor := ""
	for range 1000 {
		page, err := c.ListMemberships(context.Background(), orgID, cursor)
		if err != nil {
			return all, err
		}
		all = append(all, page.Memberships...)
		if page.Next == "" {
			return all, nil
		}
		cursor = page.Next
	}
	t.Fatal("the list never ends")
	return nil, nil
}

type membershipView struct {
	Object           string  `json:"object"`
	ID               string  `json:"id"`
	UserID           string  `json:"user_id"`
	OrganizationID   string  `json:"organization_id"`
	Status           string  `json:"status"`
	OrganizationName *string `json:"organization_name"`
	Role             struct{ Slug string }
	UpdatedAt        string          `json:"updated_at"`
	User             json.RawMessage `json:"user"`
}

func viewMembership(t *testing.T, raw json.RawMessage) membershipView {
	t.Helper()
	var v membershipView
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("membership %s: %v", raw, err)
	}
	return v
}

// TestListMembershipsEveryStatus: WorkOS lists only active memberships
// unless asked; the client asks for every status, so inactive and pending
// memberships are synced too.
func TestListMembershipsEveryStatus(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	c := orgClient(t, f)
	users := f.Seed(4)
	org := f.CreateOrganization(users[0])
	for _, u := range users[1:] {
		if !f.AddMember(org, u, "") {
			t.Fatal("AddMember")
		}
	}
	if !f.SetMembershipStatus(org, users[2], "inactive") || !f.SetMembershipStatus(org, users[3], "pending") {
		t.Fatal("SetMembershipStatus")
	}
	ms, err := listAllMemberships(t, c, org)
	if err != nil {
		t.Fatal(err)
	}
	snap := f.MembershipsSnapshot()
	statuses := map[string]string{}
	for _, m := range ms {
		v := viewMembership(t, m.Raw)
		statuses[m.UserID] = v.Status
		if m.OrganizationID != org || !bytes.Equal(m.Raw, snap[org+":"+m.UserID]) || m.Role == nil || *m.Role != v.Role.Slug ||
			m.CreatedAt == nil || m.UpdatedAt == nil {
			t.Errorf("membership %+v", m)
		}
	}
	want := map[string]string{users[0]: "active", users[1]: "active", users[2]: "inactive", users[3]: "pending"}
	if len(ms) != 4 || !mapsEqual(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	if *ms[0].Role != "admin" || ms[0].UserID != users[0] || *ms[1].Role != "member" {
		t.Errorf("the creator is the first member, admin; others members: %s %s", *ms[0].Role, *ms[1].Role)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMembershipsEmbedOrganizationAndUser: a membership as the API returns it
// carries the organization's name and the whole user, both current.
func TestMembershipsEmbedOrganizationAndUser(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	c := orgClient(t, f)
	u := f.CreateUser()
	org := f.CreateOrganization(u)
	get := func() membershipView {
		ms, err := listAllMemberships(t, c, org)
		if err != nil || len(ms) != 1 {
			t.Fatalf("%d memberships, %v", len(ms), err)
		}
		return viewMembership(t, ms[0].Raw)
	}
	orgName := func() string {
		o, err := c.FetchOrganization(context.Background(), org)
		if err != nil {
			t.Fatal(err)
		}
		return *o.Name
	}
	v := get()
	if v.Object != "organization_membership" || v.OrganizationName == nil || *v.OrganizationName != orgName() ||
		!bytes.Equal(v.User, f.Snapshot()[u]) {
		t.Fatalf("embedded: %+v", v)
	}
	f.UpdateOrganization(org)
	if v2 := get(); *v2.OrganizationName != orgName() || *v2.OrganizationName == *v.OrganizationName || v2.UpdatedAt != v.UpdatedAt {
		t.Errorf("after the rename: organization_name %q, organization %q; updated_at %s, was %s", *v2.OrganizationName, orgName(), v2.UpdatedAt, v.UpdatedAt)
	}
	f.UpdateUser(u)
	if v2 := get(); !bytes.Equal(v2.User, f.Snapshot()[u]) || bytes.Equal(v2.User, v.User) || v2.UpdatedAt != v.UpdatedAt {
		t.Errorf("after the user's update: %s (updated_at %s, was %s)", v2.User, v2.UpdatedAt, v.UpdatedAt)
	}
}

// TestListMembershipsPaging: more than a page of members, with members
// removed and added between pages; and deletions that take memberships with
// them (an organization's, a user's).
func TestListMembershipsPaging(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		f := workosfake.New(workosfake.Options{LenientCursor: lenient})
		c := orgClient(t, f)
		ctx := context.Background()
		users := f.Seed(260)
		org := f.CreateOrganization("")
		for _, u := range users[:250] {
			f.AddMember(org, u, "")
		}
		f.SetMembershipStatus(org, users[120], "inactive")
		page, err := c.ListMemberships(ctx, org, "")
		if err != nil || len(page.Memberships) != 100 || page.Next == "" {
			t.Fatalf("first page: %d, %q, %v", len(page.Memberships), page.Next, err)
		}
		seen := map[string]bool{}
		for _, m := range page.Memberships {
			seen[m.UserID] = true
		}
		f.RemoveMember(org, users[150])
		f.AddMember(org, users[255], "")
		next := page.Next
		page, err = c.ListMemberships(ctx, org, next)
		if err != nil || len(page.Memberships) != 100 || page.Memberships[0].UserID != users[100] {
			t.Fatalf("second page: %d, %v", len(page.Memberships), err)
		}
		for _, m := range page.Memberships {
			seen[m.UserID] = true
		}
		// The cursor's membership ends between pages.
		last := page.Memberships[99].UserID
		f.RemoveMember(org, last)
		page, err = c.ListMemberships(ctx, org, page.Next)
		if !lenient {
			if !errors.Is(err, provider.ErrCursorNotFound) {
				t.Errorf("strict: %v, want ErrCursorNotFound", err)
			}
		} else {
			if err != nil || page.Next != "" {
				t.Fatalf("third page: %+v, %v", page.Next, err)
			}
			for _, m := range page.Memberships {
				seen[m.UserID] = true
			}
			// Every membership that lived throughout was listed, and the late one.
			for i, u := range users[:250] {
				if !seen[u] && i != 150 {
					t.Errorf("member %d not listed", i)
				}
			}
			if !seen[users[255]] || !seen[users[120]] {
				t.Error("the membership added during the run, or the inactive one, was not listed")
			}
		}
		// A user's deletion takes their memberships; an organization's, all of its.
		f.DeleteUser(users[0])
		ms, err := listAllMemberships(t, c, org)
		if err != nil || slices.ContainsFunc(ms, func(m provider.Membership) bool { return m.UserID == users[0] }) {
			t.Errorf("after the user's deletion: %v", err)
		}
		if len(f.MembershipsSnapshot()) != len(ms) {
			t.Errorf("snapshot has %d memberships, the list %d", len(f.MembershipsSnapshot()), len(ms))
		}
		f.DeleteOrganization(org)
		if _, err := c.ListMemberships(ctx, org, ""); !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("memberships of a deleted organization: %v", err)
		}
		if n := len(f.MembershipsSnapshot()); n != 0 {
			t.Errorf("%d memberships outlive their organization", n)
		}
		f.Close()
	}
}

// TestMembershipsEmptyPageAfterCursor: an empty page is the end of the list
// only when the cursor's membership still exists.
func TestMembershipsEmptyPageAfterCursor(t *testing.T) {
	f := workosfake.New(workosfake.Options{LenientCursor: true, PageSize: 2})
	defer f.Close()
	c := orgClient(t, f)
	ctx := context.Background()
	users := f.Seed(4)
	org := f.CreateOrganization("")
	for _, u := range users {
		f.AddMember(org, u, "")
	}
	page, err := c.ListMemberships(ctx, org, "")
	if err != nil || page.Next == "" {
		t.Fatalf("%+v %v", page, err)
	}
	f.RemoveMember(org, users[2])
	f.RemoveMember(org, users[3])
	if p, err := c.ListMemberships(ctx, org, page.Next); err != nil || len(p.Memberships) != 0 || p.Next != "" {
		t.Errorf("after a live cursor: %+v %v", p, err)
	}
	f.RemoveMember(org, users[1])
	if _, err := c.ListMemberships(ctx, org, page.Next); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("after a cursor that is gone: %v, want ErrCursorNotFound", err)
	}
}

// TestOrganizationWebhooks parses the fake's organization, membership and
// domain deliveries, and refuses bodies whose ids are missing or malformed.
func TestOrganizationWebhooks(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	c := orgClient(t, f)
	u := f.CreateUser()
	org := f.CreateOrganization(u)
	parse := func(body []byte, h http.Header) provider.Event {
		t.Helper()
		ev, err := c.ParseWebhook(body, h)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return ev
	}
	type want struct {
		typ       string
		kind      provider.EventKind
		org, user string
	}
	check := func(label string, ev provider.Event, body []byte, w want) {
		t.Helper()
		if ev.Type != w.typ || ev.Kind != w.kind || ev.OrganizationID != w.org || ev.UserID != w.user {
			t.Errorf("%s: %+v, want %+v", label, ev, w)
		}
		var env struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(body, &env)
		_, hasName := env.Data["organization_name"]
		_, hasUser := env.Data["user"]
		_, hasAllow := env.Data["allow_profiles_outside_organization"]
		if hasName || hasUser || hasAllow {
			t.Errorf("%s: the payload carries what only the API adds: %s", label, body)
		}
	}
	b, h := f.OrganizationWebhook(provider.EventOrganizationChanged, org)
	check("created", parse(b, h), b, want{typ: "organization.created", kind: provider.EventOrganizationChanged, org: org})
	f.UpdateOrganization(org)
	b, h = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
	check("updated", parse(b, h), b, want{typ: "organization.updated", kind: provider.EventOrganizationChanged, org: org})
	b, h = f.MembershipWebhook(org, u, false)
	check("membership created", parse(b, h), b, want{typ: "organization_membership.created", kind: provider.EventMembershipChanged, org: org, user: u})
	f.SetMembershipStatus(org, u, "inactive")
	b, h = f.MembershipWebhook(org, u, false)
	check("membership updated", parse(b, h), b, want{typ: "organization_membership.updated", kind: provider.EventMembershipChanged, org: org, user: u})
	f.RemoveMember(org, u)
	b, h = f.MembershipWebhook(org, u, true)
	check("membership deleted", parse(b, h), b, want{typ: "organization_membership.deleted", kind: provider.EventMembershipChanged, org: org, user: u})
	b, h = f.OrganizationDomainWebhook(org)
	check("domain verified", parse(b, h), b, want{typ: "organization_domain.verified", kind: provider.EventOrganizationChanged, org: org})
	f.DeleteOrganization(org)
	b, h = f.OrganizationWebhook(provider.EventOrganizationDeleted, org)
	ev := parse(b, h)
	check("deleted", ev, b, want{typ: "organization.deleted", kind: provider.EventOrganizationDeleted, org: org})
	if !ev.Kind.IsOrganization() {
		t.Error("IsOrganization")
	}
	b, h = f.IgnoredWebhook()
	if ev := parse(b, h); ev.Kind != provider.EventIgnored || ev.Kind.IsOrganization() || ev.OrganizationID != "" || ev.UserID != "" {
		t.Errorf("ignored: %+v", ev)
	}
	b, h = f.Webhook(provider.EventUserChanged, u)
	if ev := parse(b, h); ev.Kind != provider.EventUserChanged || ev.OrganizationID != "" || ev.UserID != u {
		t.Errorf("user event: %+v", ev)
	}

	const okOrg, okUser = "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "user_01EHWNCE74X7JSDV0X3SZ3KJNY"
	for _, tc := range []struct {
		name, body string
	}{
		{"no data", `{"event":"organization.updated"}`},
		{"data not an object", `{"event":"organization.updated","data":"org_01EHWNCE74X7JSDV0X3SZ3KJNY"}`},
		{"no id", `{"event":"organization.created","data":{"name":"x"}}`},
		{"id a number", `{"event":"organization.deleted","data":{"id":12}}`},
		{"id empty", `{"event":"organization.deleted","data":{"id":""}}`},
		{"id a user id", `{"event":"organization.updated","data":{"id":"` + okUser + `"}}`},
		{"id with NUL", `{"event":"organization.updated","data":{"id":"org_01EHWNCE74X7JSDV0X3SZ3KJN\u0000"}}`},
		{"id lower case", `{"event":"organization.updated","data":{"id":"org_01ehwnce74x7jsdv0x3sz3kjny"}}`},
		{"id too long", `{"event":"organization.updated","data":{"id":"org_` + strings.Repeat("A", 300) + `"}}`},
		{"membership without user", `{"event":"organization_membership.created","data":{"organization_id":"` + okOrg + `"}}`},
		{"membership without organization", `{"event":"organization_membership.deleted","data":{"user_id":"` + okUser + `"}}`},
		{"membership bad user", `{"event":"organization_membership.updated","data":{"organization_id":"` + okOrg + `","user_id":"user_x"}}`},
		{"membership bad organization", `{"event":"organization_membership.updated","data":{"organization_id":"om_01EHWNCE74X7JSDV0X3SZ3KJNY","user_id":"` + okUser + `"}}`},
		{"domain without organization", `{"event":"organization_domain.verified","data":{"id":"org_domain_01EHZNVPK2QXHMVWCEDQEKY69A"}}`},
		{"domain failure, flat", `{"event":"organization_domain.verification_failed","data":{"organization_id":"` + okOrg + `"}}`},
	} {
		body := []byte(tc.body)
		_, err := c.ParseWebhook(body, f.SignWebhook(body, time.Now()))
		if !errors.Is(err, provider.ErrBadPayload) {
			t.Errorf("%s: %v, want ErrBadPayload", tc.name, err)
		}
		if err != nil && strings.Count(err.Error(), "A") > 100 {
			t.Errorf("%s: the error echoes the whole id", tc.name)
		}
	}
}

// TestFakeMembershipListProtocol checks the fake's membership list directly:
// the required filter, the statuses default and encodings, refused filters.
func TestFakeMembershipListProtocol(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	users := f.Seed(3)
	org := f.CreateOrganization(users[0])
	f.AddMember(org, users[1], "")
	f.AddMember(org, users[2], "")
	f.SetMembershipStatus(org, users[1], "inactive")
	f.SetMembershipStatus(org, users[2], "pending")
	other := f.CreateOrganization(users[1])
	get := func(path, query string) (int, map[string]json.RawMessage) {
		req, _ := http.NewRequest(http.MethodGet, f.URL()+path+"?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+f.Env()["WORKOS_API_KEY"])
		resp, err := f.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	users2status := func(m map[string]json.RawMessage) map[string]string {
		var data []membershipView
		_ = json.Unmarshal(m["data"], &data)
		out := map[string]string{}
		for _, d := range data {
			out[d.OrganizationID+" "+d.UserID] = d.Status
		}
		return out
	}
	const list = "/user_management/organization_memberships"
	oq := "organization_id=" + org
	for _, tc := range []struct {
		query string
		want  map[string]string
	}{
		{oq, map[string]string{org + " " + users[0]: "active"}},
		{oq + "&statuses=active,inactive,pending", map[string]string{org + " " + users[0]: "active", org + " " + users[1]: "inactive", org + " " + users[2]: "pending"}},
		{oq + "&statuses=" + url.QueryEscape("inactive,pending"), map[string]string{org + " " + users[1]: "inactive", org + " " + users[2]: "pending"}},
		{oq + "&statuses=pending&statuses=inactive", map[string]string{org + " " + users[1]: "inactive", org + " " + users[2]: "pending"}},
		{"user_id=" + users[1] + "&statuses=active,inactive", map[string]string{org + " " + users[1]: "inactive", other + " " + users[1]: "active"}},
		{"user_id=" + users[1], map[string]string{other + " " + users[1]: "active"}},
	} {
		status, m := get(list, tc.query)
		if got := users2status(m); status != 200 || !mapsEqual(got, tc.want) {
			t.Errorf("%s: %d %v, want %v", tc.query, status, got, tc.want)
		}
	}
	var e struct{ Message, Code string }
	decodeErr := func(m map[string]json.RawMessage) {
		e.Message, e.Code = "", ""
		b, _ := json.Marshal(m)
		_ = json.Unmarshal(b, &e)
	}
	status, m := get(list, "limit=5")
	if decodeErr(m); status != 400 || e.Code != "missing_user_id_or_organization_id" || e.Message == "" {
		t.Errorf("no filter: %d %+v", status, e)
	}
	for _, q := range []string{oq + "&statuses=deleted", oq + "&email=a@example.com", oq + "&limit=101", oq + "&order=up"} {
		if status, m := get(list, q); status != 422 || m["message"] == nil {
			t.Errorf("%s: %d %v", q, status, m)
		}
	}
	for _, q := range []string{"domains=foo-corp.com", "search=Acme", "limit=0"} {
		if status, m := get("/organizations", q); status != 422 || m["message"] == nil {
			t.Errorf("/organizations?%s: %d %v", q, status, m)
		}
	}
	status, m = get(list, "organization_id=org_01EHWNCE74X7JSDV0X3SZ3KJNY")
	if decodeErr(m); status != 404 || !strings.Contains(e.Message, "org_01EHWNCE74X7JSDV0X3SZ3KJNY") {
		t.Errorf("unknown organization: %d %+v", status, e)
	}
	// One membership by id, and the 404 of one that ended.
	_, m = get(list, oq)
	var data []membershipView
	_ = json.Unmarshal(m["data"], &data)
	if status, one := get(list+"/"+data[0].ID, ""); status != 200 || string(one["user_id"]) != `"`+users[0]+`"` {
		t.Errorf("one membership: %d %v", status, one)
	}
	f.RemoveMember(org, users[0])
	if status, _ := get(list+"/"+data[0].ID, ""); status != 404 {
		t.Errorf("ended membership: %d", status)
	}
	// Failures are injected on these endpoints too.
	f.FailNext(1, http.StatusTooManyRequests, 3*time.Second)
	if status, _ := get(list, oq); status != 429 {
		t.Errorf("injected 429: %d", status)
	}
	f.FailNext(1, http.StatusServiceUnavailable, 0)
	if _, err := orgClient(t, f).FetchOrganization(context.Background(), org); err == nil {
		t.Error("injected 503: no error")
	}
}

// TestFakeOrganizationMethods covers the fake's own bookkeeping: refusals,
// creator membership, seeding.
func TestFakeOrganizationMethods(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	users := f.Seed(10)
	const missing = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"
	org := f.CreateOrganization(users[0])
	if f.AddMember(org, users[0], "") || f.AddMember(missing, users[1], "") || f.AddMember(org, "user_01EHWNCE74X7JSDV0X3SZ3KJNY", "") {
		t.Error("AddMember accepted an existing membership or a missing organization or user")
	}
	if f.UpdateMember(org, users[1], "admin") || f.RemoveMember(org, users[1]) || f.SetMembershipStatus(org, users[1], "inactive") {
		t.Error("changed a membership that does not exist")
	}
	if f.SetMembershipStatus(org, users[0], "suspended") || f.UpdateOrganization(missing) || f.DeleteOrganization(missing) {
		t.Error("accepted a bad status or a missing organization")
	}
	if !f.UpdateMember(org, users[0], "") || viewMembership(t, f.MembershipsSnapshot()[org+":"+users[0]]).Role.Slug != "member" {
		t.Error("UpdateMember with no role switches admin to member")
	}
	if !f.UpdateMember(org, users[0], "billing") || viewMembership(t, f.MembershipsSnapshot()[org+":"+users[0]]).Role.Slug != "billing" {
		t.Error("UpdateMember with a role")
	}
	if !f.SetOrganizationFields(org, map[string]any{"name": "Renamed Ltd", "external_id": nil}) || f.SetOrganizationFields(org, map[string]any{"id": "x"}) ||
		f.SetOrganizationFields(org, map[string]any{"name": 3}) {
		t.Error("SetOrganizationFields")
	}
	if v := viewMembership(t, f.MembershipsSnapshot()[org+":"+users[0]]); *v.OrganizationName != "Renamed Ltd" {
		t.Errorf("organization_name %q", *v.OrganizationName)
	}
	ids := f.SeedOrganizations(5, 4)
	if len(ids) != 5 || len(f.OrganizationsSnapshot()) != 6 || len(f.MembershipsSnapshot()) != 1+5*4 {
		t.Errorf("seeded %d organizations; %d, %d memberships", len(ids), len(f.OrganizationsSnapshot()), len(f.MembershipsSnapshot()))
	}
	if f.CreateOrganization("") == "" || len(f.MembershipsSnapshot()) != 21 {
		t.Error("an organization without a creator has no member")
	}
}

// newStaticServer answers every request with status and the current *body.
func newStaticServer(t *testing.T, status int, body *string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(*body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestOrganizationHostileAnswers: answers too large to be an organization
// or a page, redirects, and error bodies that echo the API key.
func TestOrganizationHostileAnswers(t *testing.T) {
	const key = "sk_test_organizationsecretkey0123"
	const id = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"
	var status int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status/100 == 3 {
			w.Header().Set("Location", "https://elsewhere.example/")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := workos.New(workos.Config{APIKey: key, APIURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"fetch":       func() error { _, err := c.FetchOrganization(ctx, id); return err },
		"list":        func() error { _, err := c.ListOrganizations(ctx, ""); return err },
		"memberships": func() error { _, err := c.ListMemberships(ctx, id, ""); return err },
	}
	status, body = 200, `{"id":"`+id+`","name":"`+strings.Repeat("x", provider.MaxUserResponseBytes)+`"}`
	if err := calls["fetch"](); !errors.Is(err, provider.ErrResponseTooLarge) {
		t.Errorf("oversized organization: %v", err)
	}
	status, body = 302, ""
	for name, call := range calls {
		if err := call(); !errors.Is(err, provider.ErrRedirect) {
			t.Errorf("%s, redirect: %v", name, err)
		}
	}
	for _, st := range []int{401, 404, 500} {
		status, body = st, `{"message":"bad key `+key+`","code":"entity_not_found_`+key+`"}`
		for name, call := range calls {
			if err := call(); err == nil || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), key[8:]) {
				t.Errorf("%s, %d: %v", name, st, err)
			}
		}
	}
	status, body = 200, `{"object":"list","data":[{"id":""}],"list_metadata":{"before":null,"after":null}}`
	if err := calls["list"](); err == nil {
		t.Error("an organization without id accepted")
	}
	status, body = 200, `{"object":"list","data":[{"user_id":"user_01EHWNCE74X7JSDV0X3SZ3KJNY","organization_id":"`+id+`\u0000"}],"list_metadata":{"before":null,"after":null}}`
	if err := calls["memberships"](); err == nil {
		t.Error("a membership with a NUL in its organization id accepted")
	}
	status, body = 200, `{"object":"list","data":[{"organization_id":"`+id+`"}],"list_metadata":{"before":null,"after":null}}`
	if err := calls["memberships"](); err == nil {
		t.Error("a membership without user_id accepted")
	}
	status, body = 200, `not json`
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: non-JSON 200 accepted", name)
		}
	}
}

// TestFakeConcurrentOrganizationChanges changes organizations, memberships
// and users while the client reads them (run with -race): every answer is
// a valid page or one of the classified outcomes of a concurrent deletion.
func TestFakeConcurrentOrganizationChanges(t *testing.T) {
	f := workosfake.New(workosfake.Options{PageSize: 5})
	defer f.Close()
	c := orgClient(t, f)
	users := f.Seed(40)
	orgs := f.SeedOrganizations(12, 6)
	done := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			org, u := orgs[i%len(orgs)], users[i%len(users)]
			switch i % 7 {
			case 0:
				f.UpdateOrganization(org)
			case 1:
				f.AddMember(org, u, "")
			case 2:
				f.SetMembershipStatus(org, u, []string{"active", "inactive", "pending"}[i%3])
			case 3:
				f.UpdateUser(u)
			case 4:
				f.RemoveMember(org, u)
			case 5:
				orgs[i%len(orgs)] = f.CreateOrganization(u)
				f.DeleteOrganization(org)
			default:
				f.UpdateMember(org, u, "")
			}
		}
	}()
	ctx := context.Background()
	tolerated := func(err error) bool {
		return err == nil || errors.Is(err, provider.ErrOrganizationNotFound) || errors.Is(err, provider.ErrCursorNotFound)
	}
	for range 30 {
		all, err := listAllOrganizations(t, c)
		if !tolerated(err) {
			t.Fatalf("list organizations: %v", err)
		}
		for _, o := range all {
			if _, err := c.FetchOrganization(ctx, o.ID); !tolerated(err) {
				t.Fatalf("fetch %s: %v", o.ID, err)
			}
			ms, err := listAllMemberships(t, c, o.ID)
			if !tolerated(err) {
				t.Fatalf("memberships of %s: %v", o.ID, err)
			}
			for _, m := range ms {
				if m.OrganizationID != o.ID || m.Role == nil {
					t.Fatalf("membership %+v", m)
				}
			}
		}
		_ = f.MembershipsSnapshot()
		_ = f.OrganizationsSnapshot()
	}
	close(done)
	<-writerDone
}
