package workos_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/providertest/oascheck"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// jsonKinds maps each key of a JSON object to the kind of its value
// ("string", "null", "object", "array", "bool", "number").
func jsonKinds(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out := map[string]string{}
	for k, v := range m {
		switch v.(type) {
		case string:
			out[k] = "string"
		case nil:
			out[k] = "null"
		case map[string]any:
			out[k] = "object"
		case []any:
			out[k] = "array"
		case bool:
			out[k] = "bool"
		default:
			out[k] = "number"
		}
	}
	return out
}

// sameShape checks that objects (the fake's, all of one kind) together use
// exactly the keys of the provider's fixture, each with the fixture's kind
// of value (a fixture's null accepts a string, and the reverse, where the
// field is nullable: nullable lists them), and that every object has every
// key of the fixture but the optional ones.
func sameShape(t *testing.T, label string, fixture []byte, objects [][]byte, optional, nullable []string) {
	t.Helper()
	want := jsonKinds(t, fixture)
	seen := map[string]bool{}
	for _, o := range objects {
		got := jsonKinds(t, o)
		for k, kind := range got {
			seen[k] = true
			wk, ok := want[k]
			switch {
			case !ok:
				t.Errorf("%s: key %q is not in the provider's payload", label, k)
			case kind != wk && !(contains(nullable, k) && (kind == "null" || wk == "null")):
				t.Errorf("%s: %q is a %s, the provider's a %s", label, k, kind, wk)
			}
		}
		for k := range want {
			if _, ok := got[k]; !ok && !contains(optional, k) {
				t.Errorf("%s: key %q missing in %s", label, k, o)
			}
		}
	}
	var never []string
	for k := range want {
		if !seen[k] {
			never = append(never, k)
		}
	}
	sort.Strings(never)
	if len(objects) > 0 && len(never) > 0 {
		t.Errorf("%s: the fake never sends %v", label, never)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestFakeOrganizationShapes compares the fake's organizations, domains,
// memberships (API and webhook forms) and event envelopes key by key with
// the payloads WorkOS published (workos-go testdata).
func TestFakeOrganizationShapes(t *testing.T) {
	dir := filepath.Join(oascheck.ReferenceDir(t), "real-fixtures", "workos", "organizations")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("WorkOS's own organization payloads are not here (%v)", err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	field := func(raw []byte, path ...string) []byte {
		var cur json.RawMessage = raw
		for _, p := range path {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(cur, &m); err != nil {
				t.Fatalf("%s in %s: %v", p, raw, err)
			}
			cur = m[p]
		}
		return cur
	}
	first := func(raw []byte) []byte {
		var a []json.RawMessage
		if err := json.Unmarshal(raw, &a); err != nil || len(a) == 0 {
			t.Fatalf("not a non-empty array: %s", raw)
		}
		return a[0]
	}

	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	f.Seed(60)
	orgIDs := f.SeedOrganizations(60, 3)
	var orgs, domains, members, users [][]byte
	for _, o := range f.OrganizationsSnapshot() {
		orgs = append(orgs, o)
		var ds []json.RawMessage
		_ = json.Unmarshal(field(o, "domains"), &ds)
		for _, d := range ds {
			domains = append(domains, d)
		}
	}
	for _, m := range f.MembershipsSnapshot() {
		members = append(members, m)
		users = append(users, field(m, "user"))
	}
	orgFixture := read("go-testdata_organization.json")
	sameShape(t, "organization", orgFixture, orgs, []string{"stripe_customer_id"}, []string{"external_id"})
	sameShape(t, "organization_domain", first(field(orgFixture, "domains")), domains, nil, nil)
	memberFixture := read("go-testdata_organization_membership.json")
	sameShape(t, "organization_membership", memberFixture, members, nil, nil)
	sameShape(t, "membership's user", field(memberFixture, "user"), users,
		[]string{"name", "locale", "external_id", "last_sign_in_at", "profile_picture_url", "first_name", "last_name"},
		[]string{"external_id", "last_sign_in_at", "profile_picture_url", "first_name", "last_name"})

	// Webhook payloads and envelopes.
	var orgEvents, memberEvents, envelopes [][]byte
	for i, id := range orgIDs[:20] {
		kind := provider.EventOrganizationChanged
		if i%3 == 0 {
			f.UpdateOrganization(id)
		}
		b, _ := f.OrganizationWebhook(kind, id)
		orgEvents = append(orgEvents, field(b, "data"))
		envelopes = append(envelopes, b)
	}
	for key := range f.MembershipsSnapshot() {
		org, user, _ := strings.Cut(key, ":")
		b, _ := f.MembershipWebhook(org, user, len(memberEvents)%2 == 0)
		memberEvents = append(memberEvents, field(b, "data"))
		envelopes = append(envelopes, b)
	}
	created := read("go-testdata_organization_created.json")
	sameShape(t, "organization event data", field(created, "data"), orgEvents, []string{"stripe_customer_id"}, []string{"external_id"})
	sameShape(t, "organization_membership event data", field(read("go-testdata_organization_membership_created.json"), "data"), memberEvents, nil, nil)
	// The envelope: the Go fixtures' context is much richer than what an
	// API-made change carries; only the keys the fake sends are compared.
	for _, e := range envelopes {
		for k := range jsonKinds(t, e) {
			if _, ok := jsonKinds(t, created)[k]; !ok {
				t.Errorf("envelope key %q is not in WorkOS's", k)
			}
		}
		for k, kind := range jsonKinds(t, field(field(e, "context"), "actor")) {
			if want := jsonKinds(t, field(created, "context", "actor"))[k]; want != kind && k != "name" {
				t.Errorf("context.actor.%s is a %s, WorkOS's a %s", k, kind, want)
			}
		}
	}
}

// TestFakePutOrganization serves WorkOS's own organization object as is,
// with its memberships naming it, and its events without the API-only key.
func TestFakePutOrganization(t *testing.T) {
	dir := filepath.Join(oascheck.ReferenceDir(t), "real-fixtures", "workos")
	if _, err := os.Stat(filepath.Join(dir, "organizations")); err != nil {
		t.Skipf("WorkOS's own organization payloads are not here (%v)", err)
	}
	orgRaw, err := os.ReadFile(filepath.Join(dir, "organizations", "go-testdata_organization.json"))
	if err != nil {
		t.Fatal(err)
	}
	userRaw, err := os.ReadFile(filepath.Join(dir, "go-testdata_user.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	org, err := f.PutOrganization(orgRaw)
	if err != nil {
		t.Fatal(err)
	}
	user, err := f.PutUser(userRaw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.PutOrganization([]byte(`{"id":"user_01EHWNCE74X7JSDV0X3SZ3KJNY"}`)); err == nil {
		t.Error("PutOrganization accepted a user id")
	}
	c := f.Organizations()
	o, err := c.FetchOrganization(t.Context(), org)
	if err != nil || string(o.Raw) != strings.TrimSpace(string(orgRaw)) || *o.Name != "Acme Inc." {
		t.Fatalf("fetched %s, %v", o.Raw, err)
	}
	if !f.AddMember(org, user, "") {
		t.Fatal("AddMember")
	}
	page, err := c.ListMemberships(t.Context(), org, "")
	if err != nil || len(page.Memberships) != 1 || !strings.Contains(string(page.Memberships[0].Raw), `"organization_name":"Acme Inc."`) {
		t.Fatalf("memberships: %+v %v", page, err)
	}
	b, _ := f.OrganizationWebhook(provider.EventOrganizationChanged, org)
	if strings.Contains(string(b), "allow_profiles_outside_organization") || !strings.Contains(string(b), `"organization.created"`) {
		t.Errorf("event: %s", b)
	}
	if !f.SetOrganizationFields(org, map[string]any{"name": "Acme Two"}) {
		t.Fatal("SetOrganizationFields")
	}
	if o, err := c.FetchOrganization(t.Context(), org); err != nil || *o.Name != "Acme Two" || !strings.Contains(string(o.Raw), "stripe_customer_id") ||
		!o.UpdatedAt.After(*o.CreatedAt) {
		t.Errorf("after SetOrganizationFields: %s %v", o.Raw, err)
	}
}
