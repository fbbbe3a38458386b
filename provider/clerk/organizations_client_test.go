package clerk_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/providertest/oascheck"
)

// stubClient is a client of a server that answers every request with h, and
// the count of requests that reached it.
func stubClient(t *testing.T, h http.HandlerFunc) (*clerk.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := clerk.New(clerk.Config{SecretKey: "sk_test_stub", APIURL: srv.URL + "/v1", HTTPClient: srv.Client(), PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	return c, &n
}

// TestOrganizationForeignNotFound: a 404 that is not Clerk's own (a wrong
// CLERK_API_URL, a proxy's page) must not read as "the organization is
// gone", which would delete its row.
func TestOrganizationForeignNotFound(t *testing.T) {
	c, _ := stubClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<html><body>404 page not found</body></html>")
	})
	const id = "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
	_, err := c.FetchOrganization(context.Background(), id)
	if !errors.Is(err, provider.ErrForeignNotFound) || errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("FetchOrganization on a foreign 404: %v, want ErrForeignNotFound and not ErrOrganizationNotFound", err)
	}
	_, err = c.ListMemberships(context.Background(), id, "")
	if !errors.Is(err, provider.ErrForeignNotFound) || errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("ListMemberships on a foreign 404: %v, want ErrForeignNotFound and not ErrOrganizationNotFound", err)
	}
	// The organization list has no not-found meaning at all.
	_, err = c.ListOrganizations(context.Background(), "")
	var se *provider.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("ListOrganizations on a 404: %v, want a StatusError", err)
	}
}

// TestOrganizationIDsRefused: an id that cannot be a Clerk organization id
// (it would not even make a safe path: the SDK does not escape it) is not
// found, without a request.
func TestOrganizationIDsRefused(t *testing.T) {
	c, n := stubClient(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s", r.URL)
	})
	for _, id := range []string{"", "org_", "org_a/b", "org_../../users/user_1", "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		"org_a b", "org_a\x00b", "org_a?x=1", "org_é", strings.Repeat("org_a", 60)} {
		if _, err := c.FetchOrganization(context.Background(), id); !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("FetchOrganization(%q): %v, want ErrOrganizationNotFound", id, err)
		}
		if _, err := c.ListMemberships(context.Background(), id, ""); !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("ListMemberships(%q): %v, want ErrOrganizationNotFound", id, err)
		}
	}
	if n.Load() != 0 {
		t.Errorf("%d requests sent", n.Load())
	}
}

// TestOrganizationCursorsMalformed: a cursor that is not one the client made
// is ErrCursorNotFound (the caller lists again), without a request.
func TestOrganizationCursorsMalformed(t *testing.T) {
	c, n := stubClient(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s", r.URL)
	})
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, cur := range []string{"garbage!", enc("[1,2]"), enc(`{"o":-5,"s":["org_a"]}`), enc(`{"o":5}`),
		enc(`{"o":1,"s":["org_a","org_b"]}`), enc(`{"o":5,"s":["org_a/b"]}`), enc(`{"o":"5","s":["org_a"]}`)} {
		if _, err := c.ListOrganizations(context.Background(), cur); !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("ListOrganizations(%q): %v, want ErrCursorNotFound", cur, err)
		}
	}
	for _, cur := range []string{"garbage!", enc(`{"o":5,"s":["org_a"]}`), enc(`{"o":5,"s":["user_a\n"]}`)} {
		if _, err := c.ListMemberships(context.Background(), "org_a", cur); !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("ListMemberships(%q): %v, want ErrCursorNotFound", cur, err)
		}
	}
	if n.Load() != 0 {
		t.Errorf("%d requests sent", n.Load())
	}
}

// TestListOrganizationsOverlap pages through 40 organizations 10 at a time
// (an overlap of 3) while organizations already listed are deleted between
// pages: up to the overlap, nothing is skipped or listed twice; past it, the
// cursor is refused rather than a page skipped.
func TestListOrganizationsOverlap(t *testing.T) {
	setup := func(t *testing.T) (*clerkfake.Fake, provider.Organizations, []string, provider.OrganizationPage) {
		f := clerkfake.New(clerkfake.Options{PageSize: 10})
		t.Cleanup(f.Close)
		ids := f.SeedOrganizations(40, 0)
		o := f.Organizations()
		page, err := o.ListOrganizations(context.Background(), "")
		if err != nil || len(page.Organizations) != 10 || page.Next == "" {
			t.Fatalf("first page: %d organizations, Next %q, %v", len(page.Organizations), page.Next, err)
		}
		return f, o, ids, page
	}
	t.Run("within the overlap", func(t *testing.T) {
		f, o, ids, page := setup(t)
		seen := map[string]int{}
		for _, org := range page.Organizations {
			seen[org.ID]++
		}
		// Two listed ones go, the last listed among them.
		f.DeleteOrganization(page.Organizations[0].ID)
		f.DeleteOrganization(page.Organizations[9].ID)
		for cursor := page.Next; cursor != ""; {
			p, err := o.ListOrganizations(context.Background(), cursor)
			if err != nil {
				t.Fatalf("ListOrganizations: %v", err)
			}
			for _, org := range p.Organizations {
				seen[org.ID]++
			}
			cursor = p.Next
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("organization %s listed %d times", id, seen[id])
			}
		}
	})
	t.Run("past the overlap", func(t *testing.T) {
		f, o, _, page := setup(t)
		for _, org := range page.Organizations[5:] {
			f.DeleteOrganization(org.ID)
		}
		_, err := o.ListOrganizations(context.Background(), page.Next)
		if !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("after 5 deletions (overlap 3): %v, want ErrCursorNotFound", err)
		}
	})
}

// TestListMembershipsForeignObject: a membership of another organization in
// an organization's list is an error, not a row of the wrong organization.
func TestListMembershipsForeignObject(t *testing.T) {
	c, _ := stubClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[{"object":"organization_membership","id":"orgmem_1","role":"org:member",`+
			`"organization":{"id":"org_other"},"public_user_data":{"user_id":"user_1"},"created_at":1,"updated_at":1}],"total_count":1}`)
	})
	if _, err := c.ListMemberships(context.Background(), "org_mine", ""); err == nil || !strings.Contains(err.Error(), "org_other") {
		t.Errorf("ListMemberships: %v, want an error naming org_other", err)
	}
	c, _ = stubClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[{"object":"organization_membership","id":"orgmem_1","role":"org:member",`+
			`"organization":{"id":"org_mine"},"created_at":1,"updated_at":1}],"total_count":1}`)
	})
	if _, err := c.ListMemberships(context.Background(), "org_mine", ""); err == nil {
		t.Errorf("ListMemberships of a membership without public_user_data: no error")
	}
}

// TestFakeOrganizationErrorsOpenAPI sends list requests Clerk's document
// rejects and checks that the fake refuses them too, with an answer of the
// documented shape.
func TestFakeOrganizationErrorsOpenAPI(t *testing.T) {
	doc := clerkSpec(t)
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	users := f.Seed(1)
	org := f.CreateOrganization(users[0])
	chk := oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: clerkUndeclared(doc, t)}, nil)
	auth := "Bearer " + f.Env()["CLERK_SECRET_KEY"]
	common := []oascheck.Refusal{
		{Query: "limit=501", Status: http.StatusUnprocessableEntity},
		{Query: "limit=0", Status: http.StatusUnprocessableEntity},
		{Query: "limit=ten", Status: http.StatusBadRequest},
		{Query: "offset=-1", Status: http.StatusUnprocessableEntity},
	}
	chk.ExpectRefused(t, f.HTTPClient().Transport, f.URL()+"/organizations", auth,
		append(common, oascheck.Refusal{Query: "include_members_count=maybe", Status: http.StatusBadRequest}))
	chk.ExpectRefused(t, f.HTTPClient().Transport, f.URL()+"/organizations/"+org+"/memberships", auth, common)
}

// TestFakeOrganizationLists checks the fake's list parameters beyond the
// client's: the default order (newest first), filters it does not implement
// (422, so a client relying on one fails loudly), counts on request, lookup
// by slug.
func TestFakeOrganizationLists(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	users := f.Seed(3)
	ids := f.SeedOrganizations(5, 2)
	get := func(path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+f.Env()["CLERK_SECRET_KEY"])
		resp, err := f.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, m := get("/organizations?limit=2")
	data, _ := m["data"].([]any)
	if status != 200 || len(data) != 2 || m["total_count"] != float64(5) {
		t.Fatalf("GET /organizations?limit=2: %d %v", status, m)
	}
	if first := data[0].(map[string]any); first["id"] != ids[4] || first["members_count"] != nil {
		t.Errorf("default order: first is %v (want the newest, %s, without members_count)", first["id"], ids[4])
	}
	_, m = get("/organizations?order_by=%2Bcreated_at&include_members_count=true&limit=1")
	if first := m["data"].([]any)[0].(map[string]any); first["id"] != ids[0] || first["members_count"] != float64(2) {
		t.Errorf("+created_at with counts: %v", first)
	}
	for _, q := range []string{"/organizations?query=acme", "/organizations?user_id=" + users[0], "/organizations?organization_id=" + ids[0],
		"/organizations?order_by=name", "/organizations/" + ids[0] + "/memberships?role=org:admin",
		"/organizations/" + ids[0] + "/memberships?user_id=" + users[0], "/organizations/" + ids[0] + "/memberships?order_by=-first_name"} {
		if status, m := get(q); status != http.StatusUnprocessableEntity || !strings.Contains(jsonString(m), "unsupported_by_clerkfake") {
			t.Errorf("GET %s: %d %v, want 422 unsupported_by_clerkfake", q, status, m)
		}
	}
	if status, m := get("/organizations?order_by=-bogus"); status != http.StatusUnprocessableEntity || !strings.Contains(jsonString(m), "form_param_value_invalid") {
		t.Errorf("order_by=-bogus: %d %v", status, m)
	}
	snap := f.OrganizationsSnapshot()
	var obj map[string]any
	_ = json.Unmarshal(snap[ids[1]], &obj)
	if status, m := get("/organizations/" + obj["slug"].(string)); status != 200 || m["id"] != ids[1] {
		t.Errorf("GET by slug: %d %v", status, m["id"])
	}
	if status, m := get("/organizations/org_missing/memberships"); status != http.StatusNotFound || !strings.Contains(jsonString(m), "resource_not_found") {
		t.Errorf("memberships of a missing organization: %d %v", status, m)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestHostileServersOrganizations: the organization calls against servers
// that are not Clerk's API or misbehave (as TestHostileServers for users).
func TestHostileServersOrganizations(t *testing.T) {
	providertest.RunHostileOrganizations(t, providertest.HostileOrganizations{
		New: func(t *testing.T, root, key string) provider.Organizations {
			c, err := clerk.New(clerk.Config{SecretKey: key, APIURL: root + "/v1"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Key:            "sk_test_hostile0test0secret0key0value",
		OrganizationID: "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		NotFound: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"message":"not found","long_message":"Resource not found","code":"resource_not_found"}],"clerk_trace_id":"abc123"}`))
		},
		EnvVar: "CLERK_API_URL",
	})
}

// TestListOrganizationsPageSizeOne: with the smallest page size the
// organization lists still end and list everything once (their pages hold at
// least two items, one more than the overlap).
func TestListOrganizationsPageSizeOne(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{PageSize: 1})
	defer f.Close()
	users := f.Seed(5)
	ids := f.SeedOrganizations(9, 5)
	o := f.Organizations()
	seen := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := o.ListOrganizations(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, org := range p.Organizations {
			seen[org.ID]++
		}
		if p.Next == "" {
			break
		}
		if p.Next == cursor || pages > 20 {
			t.Fatalf("listing does not advance (%d pages)", pages)
		}
		cursor = p.Next
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("organization %s listed %d times", id, seen[id])
		}
	}
	members := map[string]bool{}
	cursor = ""
	for pages := 0; ; pages++ {
		p, err := o.ListMemberships(context.Background(), ids[0], cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Memberships {
			if members[m.UserID] {
				t.Errorf("member %s listed twice", m.UserID)
			}
			members[m.UserID] = true
		}
		if p.Next == "" || pages > 20 {
			break
		}
		cursor = p.Next
	}
	if len(members) != len(users) {
		t.Errorf("listed %d members, want %d", len(members), len(users))
	}
}

// TestOrganizationWebhookBadPayloads: organization and membership events
// whose ids are missing, of the wrong type or of the wrong shape are bad
// payloads (400), never events for a made-up id.
func TestOrganizationWebhookBadPayloads(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	c, err := clerk.New(clerk.Config{SecretKey: "sk_test_x", WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	env := func(typ, data string) string {
		return `{"data":` + data + `,"instance_id":"ins_1","object":"event","timestamp":1716883200,"type":"` + typ + `"}`
	}
	mem := func(org, user string) string {
		return `{"object":"organization_membership","id":"orgmem_1","role":"org:member","organization":` + org +
			`,"public_user_data":` + user + `}`
	}
	for name, body := range map[string]string{
		"org: user id":            env("organization.updated", `{"object":"organization","id":"user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"}`),
		"org: slug-like id":       env("organization.created", `{"object":"organization","id":"acme-corp"}`),
		"org: numeric id":         env("organization.created", `{"object":"organization","id":42}`),
		"org: no id":              env("organization.updated", `{"object":"organization","name":"Acme"}`),
		"org: data array":         env("organization.updated", `[{"id":"org_1"}]`),
		"org: no data":            `{"object":"event","type":"organization.created"}`,
		"deleted: no id":          env("organization.deleted", `{"object":"organization","slug":"acme","deleted":true}`),
		"deleted: id with slash":  env("organization.deleted", `{"object":"organization","id":"org_a/b","deleted":true}`),
		"member: no organization": env("organizationMembership.created", `{"object":"organization_membership","public_user_data":{"user_id":"user_1"}}`),
		"member: org not object":  env("organizationMembership.created", mem(`"org_1"`, `{"user_id":"user_1"}`)),
		"member: no user data":    env("organizationMembership.updated", `{"object":"organization_membership","organization":{"id":"org_1"}}`),
		"member: numeric user":    env("organizationMembership.deleted", mem(`{"id":"org_1"}`, `{"user_id":7}`)),
		"member: null user":       env("organizationMembership.deleted", mem(`{"id":"org_1"}`, `{"user_id":null}`)),
		"member: org id as user":  env("organizationMembership.created", mem(`{"id":"org_1"}`, `{"user_id":"org_1"}`)),
		"member: user id as org":  env("organizationMembership.created", mem(`{"id":"user_1"}`, `{"user_id":"user_1"}`)),
	} {
		_, err := c.ParseWebhook([]byte(body), signedHeader(t, secret, []byte(body)))
		if !errors.Is(err, provider.ErrBadPayload) || errors.Is(err, provider.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadPayload", name, err)
		}
	}
	// The membership event names the organization from data.organization.id,
	// never data.id (the membership's own id).
	body := env("organizationMembership.created", mem(`{"id":"org_9"}`, `{"user_id":"user_8"}`))
	ev, err := c.ParseWebhook([]byte(body), signedHeader(t, secret, []byte(body)))
	if err != nil || ev.OrganizationID != "org_9" || ev.UserID != "user_8" || ev.Kind != provider.EventMembershipChanged {
		t.Errorf("membership event: %+v, %v", ev, err)
	}
}

// TestFakeOrganizationsConcurrent changes organizations, memberships and
// users from several goroutines while the API is read (run with -race):
// the fake stays consistent (every membership names a live organization and
// a live user).
func TestFakeOrganizationsConcurrent(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{PageSize: 20})
	defer f.Close()
	users := f.Seed(40)
	orgs := f.SeedOrganizations(30, 5)
	o := f.Organizations()
	done := make(chan struct{})
	errs := make(chan error, 8)
	for g := 0; g < 3; g++ {
		go func(g int) {
			defer func() { errs <- nil }()
			for i := 0; i < 60; i++ {
				org, u := orgs[(i*7+g)%len(orgs)], users[(i*11+g)%len(users)]
				switch i % 6 {
				case 0:
					f.AddMember(org, u, "")
				case 1:
					f.UpdateOrganization(org)
				case 2:
					f.UpdateMember(org, u, "org:admin")
				case 3:
					f.RemoveMember(org, u)
				case 4:
					f.CreateOrganization(users[(i+g)%len(users)])
				case 5:
					if i%30 == 5 {
						f.DeleteUser(u)
						f.DeleteOrganization(org)
					}
					f.MembershipWebhook(org, u, true)
				}
			}
		}(g)
	}
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			if _, err := o.ListMemberships(context.Background(), orgs[i%len(orgs)], ""); err != nil && !errors.Is(err, provider.ErrOrganizationNotFound) {
				errs <- err
				return
			}
			if _, err := o.ListOrganizations(context.Background(), ""); err != nil {
				errs <- err
				return
			}
		}
	}()
	for g := 0; g < 3; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-done
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	live, liveUsers := f.OrganizationsSnapshot(), f.Snapshot()
	for k := range f.MembershipsSnapshot() {
		org, user, _ := strings.Cut(k, ":")
		if live[org] == nil || liveUsers[user] == nil {
			t.Errorf("membership %s names a deleted organization or user", k)
		}
	}
}
