package stackauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// teamFields decodes what docs/data-model.md derives from a team object,
// independently of the client.
func teamFields(t *testing.T, raw json.RawMessage) (id string, name *string, created time.Time) {
	t.Helper()
	var w struct {
		ID              string  `json:"id"`
		DisplayName     *string `json:"display_name"`
		CreatedAtMillis int64   `json:"created_at_millis"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatalf("team object %s: %v", raw, err)
	}
	return w.ID, w.DisplayName, time.UnixMilli(w.CreatedAtMillis).UTC()
}

func TestFetchOrganization(t *testing.T) {
	f := newFake(t, 40)
	users := f.Seed(3)
	c := clientFor(t, f, 0)
	ctx := context.Background()
	team := f.CreateOrganization(users[0])
	f.UpdateOrganization(team)
	snap := f.OrganizationsSnapshot()
	o, err := c.FetchOrganization(ctx, team)
	if err != nil {
		t.Fatal(err)
	}
	id, name, created := teamFields(t, snap[team])
	if o.ID != team || id != team {
		t.Errorf("ID = %s, want %s", o.ID, team)
	}
	if o.Name == nil || name == nil || *o.Name != *name {
		t.Errorf("Name = %v, want display_name %v", o.Name, name)
	}
	if o.CreatedAt == nil || !o.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt = %v, want created_at_millis %v", o.CreatedAt, created)
	}
	if o.UpdatedAt != nil {
		t.Errorf("UpdatedAt = %v, want nil (Stack Auth teams have no update time)", o.UpdatedAt)
	}
	if string(o.Raw) != string(snap[team]) {
		t.Errorf("Raw = %s\nwant the object as served: %s", o.Raw, snap[team])
	}

	// An id in upper case names the same team, returned in lower case.
	if o, err := c.FetchOrganization(ctx, strings.ToUpper(team)); err != nil || o.ID != team {
		t.Errorf("upper-case id: %+v, %v", o, err)
	}

	// Deleted and never-existing teams: Stack Auth's own TEAM_NOT_FOUND.
	f.DeleteOrganization(team)
	for _, id := range []string{team, testUUID} {
		if _, err := c.FetchOrganization(ctx, id); !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("FetchOrganization(%s) = %v, want ErrOrganizationNotFound", id, err)
		}
	}

	// Ids that cannot be Stack Auth's are refused without a request, and
	// that is not a deletion.
	before := f.Requests()
	for _, id := range []string{"", "team_1", "5c7bd3a10f384c8e9d6a1b2c3d4e5f60", testUUID + "\x00", " " + testUUID, "../users/" + testUUID[9:], strings.Repeat("a", 300)} {
		_, err := c.FetchOrganization(ctx, id)
		if err == nil || errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("FetchOrganization(%q) = %v, want a non-deletion error", id, err)
		}
	}
	if n := f.Requests() - before; n != 0 {
		t.Errorf("invalid ids made %d requests", n)
	}
}

// TestFetchOrganizationNotFoundFormat: only Stack Auth's own answer (the
// X-Stack-Known-Error header and the body's code, both TEAM_NOT_FOUND) is a
// deletion; any other 404 is a foreign not-found, retried, with a hint.
func TestFetchOrganizationNotFoundFormat(t *testing.T) {
	own := `{"code":"TEAM_NOT_FOUND","details":{"team_id":"` + testUUID + `"},"error":"Team ` + testUUID + ` not found."}`
	cases := []struct {
		name   string
		header map[string]string
		body   string
		gone   bool
	}{
		{"Stack Auth's own", map[string]string{"X-Stack-Known-Error": "TEAM_NOT_FOUND"}, own, true},
		{"Hexclave header", map[string]string{"X-Hexclave-Known-Error": "TEAM_NOT_FOUND"}, own, true},
		{"body without header", nil, own, false},
		{"header without body", map[string]string{"X-Stack-Known-Error": "TEAM_NOT_FOUND"}, `Not Found`, false},
		{"user not found", map[string]string{"X-Stack-Known-Error": "USER_NOT_FOUND"}, `{"code":"USER_NOT_FOUND","error":"User not found."}`, false},
		{"header and other code", map[string]string{"X-Stack-Known-Error": "TEAM_NOT_FOUND"}, `{"code":"TEAM_MEMBERSHIP_NOT_FOUND"}`, false},
		{"html", nil, `<html>404 page not found</html>`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _ := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(tc.body))
			})
			_, err := c.FetchOrganization(context.Background(), testUUID)
			if gone := errors.Is(err, provider.ErrOrganizationNotFound); gone != tc.gone {
				t.Fatalf("err = %v; deletion %v, want %v", err, gone, tc.gone)
			}
			if !tc.gone && !errors.Is(err, provider.ErrForeignNotFound) {
				t.Fatalf("err = %v, want ErrForeignNotFound", err)
			}
		})
	}
}

// TestOrganizationRequests: every team request carries the server headers,
// hits the documented path, scrubs an echoed key, refuses redirects and
// bounds the answer.
func TestOrganizationRequests(t *testing.T) {
	var mode atomic.Value
	mode.Store("team")
	c, last, key := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "team":
			w.Write([]byte(`{"id":"` + testUUID + `","display_name":"T","profile_image_url":null,"created_at_millis":1700000000000,"client_metadata":null,"client_read_only_metadata":null,"server_metadata":null}`))
		case "echo":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "bad key %s", r.Header.Get("X-Stack-Secret-Server-Key"))
		case "redirect":
			http.Redirect(w, r, "https://elsewhere.example.com/", http.StatusFound)
		case "huge":
			w.Write([]byte(`{"items":[`))
			if strings.HasPrefix(r.URL.Path, "/api/v1/teams/") {
				w.Write([]byte(strings.Repeat(" ", provider.MaxUserResponseBytes)))
			} else {
				w.Write([]byte(strings.Repeat(" ", provider.MaxListResponseBytes)))
			}
		}
	})
	ctx := context.Background()
	if _, err := c.FetchOrganization(ctx, testUUID); err != nil {
		t.Fatal(err)
	}
	r := last.Load()
	if r.URL.Path != "/api/v1/teams/"+testUUID || r.Header.Get("X-Stack-Access-Type") != "server" || r.Header.Get("X-Stack-Secret-Server-Key") != key || r.Header.Get("X-Stack-Project-Id") == "" {
		t.Errorf("fetch request: %s %v", r.URL, r.Header)
	}
	if _, err := c.ListOrganizations(ctx, ""); err == nil {
		t.Error("a team object as the list answer was accepted")
	}
	if r := last.Load(); r.URL.Path != "/api/v1/teams" || r.URL.RawQuery != "" {
		t.Errorf("list request: %s", r.URL)
	}
	c.ListMemberships(ctx, testUUID, "")
	if r := last.Load(); r.URL.Path != "/api/v1/users" || r.URL.Query().Get("team_id") != testUUID || r.URL.Query().Get("include_anonymous") != "true" ||
		r.URL.Query().Get("limit") != "6" || r.URL.Query().Get("order_by") != "signed_up_at" {
		t.Errorf("members request: %s (want limit = page size 5 + 1)", r.URL)
	}
	// With the default page size, no request asks for more than the user
	// list's largest page.
	var limit atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit.Store(r.URL.Query().Get("limit"))
		w.Write([]byte(`{"items":[],"is_paginated":true,"pagination":{"next_cursor":null}}`))
	}))
	defer srv.Close()
	def, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: key,
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.ListMemberships(ctx, testUUID, ""); err != nil || limit.Load() != fmt.Sprint(stackauth.MaxPageSize) {
		t.Errorf("default page size: limit=%v, %v; want %d", limit.Load(), err, stackauth.MaxPageSize)
	}

	mode.Store("echo")
	for name, call := range map[string]func() error{
		"fetch":   func() error { _, err := c.FetchOrganization(ctx, testUUID); return err },
		"list":    func() error { _, err := c.ListOrganizations(ctx, ""); return err },
		"members": func() error { _, err := c.ListMemberships(ctx, testUUID, ""); return err },
	} {
		err := call()
		var se *provider.StatusError
		if !errors.As(err, &se) || se.StatusCode != 500 || strings.Contains(err.Error(), key) {
			t.Errorf("%s: echoed key: %v", name, err)
		}
	}
	mode.Store("redirect")
	if _, err := c.ListOrganizations(ctx, ""); !errors.Is(err, provider.ErrRedirect) {
		t.Errorf("redirect: %v", err)
	}
	if _, err := c.FetchOrganization(ctx, testUUID); !errors.Is(err, provider.ErrRedirect) {
		t.Errorf("redirect: %v", err)
	}
	mode.Store("huge")
	if _, err := c.ListOrganizations(ctx, ""); !errors.Is(err, provider.ErrResponseTooLarge) {
		t.Errorf("huge list: %v", err)
	}
	if _, err := c.FetchOrganization(ctx, testUUID); !errors.Is(err, provider.ErrResponseTooLarge) {
		t.Errorf("huge team: %v", err)
	}
	if _, err := c.ListMemberships(ctx, testUUID, ""); !errors.Is(err, provider.ErrResponseTooLarge) {
		t.Errorf("huge member list: %v", err)
	}
}

// listOrgs pages through every team and returns their ids in order.
func listOrgs(t *testing.T, c *stackauth.Client, cursor string) []string {
	t.Helper()
	var ids []string
	for range 10_000 {
		page, err := c.ListOrganizations(context.Background(), cursor)
		if err != nil {
			t.Fatalf("ListOrganizations(%q): %v", cursor, err)
		}
		if len(page.Organizations) > stackauth.MaxOrganizationPageSize {
			t.Fatalf("page of %d teams", len(page.Organizations))
		}
		for _, o := range page.Organizations {
			ids = append(ids, o.ID)
		}
		if page.Next == "" {
			return ids
		}
		cursor = page.Next
	}
	t.Fatal("list does not end")
	return nil
}

func TestListOrganizationsPaging(t *testing.T) {
	f := newFake(t, 41)
	f.Seed(20)
	seeded := f.SeedOrganizations(250, 3)
	c := clientFor(t, f, 0)
	ctx := context.Background()
	if got := listOrgs(t, c, ""); !slices.Equal(got, seeded) {
		t.Fatalf("listed %d teams, want the %d seeded in creation order", len(got), len(seeded))
	}
	first, err := c.ListOrganizations(ctx, "")
	if err != nil || len(first.Organizations) != 100 || first.Next == "" {
		t.Fatalf("first page: %d teams, next %q, %v", len(first.Organizations), first.Next, err)
	}
	snap := f.OrganizationsSnapshot()
	for _, o := range first.Organizations {
		if string(o.Raw) != string(snap[o.ID]) {
			t.Fatalf("team %s: Raw %s, want %s", o.ID, o.Raw, snap[o.ID])
		}
	}

	// Between pages, the team the cursor names and the next one are
	// deleted and a team is created; another process (a new client) goes on
	// from the cursor: no gap, no duplicate.
	f.DeleteOrganization(seeded[99])
	f.DeleteOrganization(seeded[100])
	extra := f.CreateOrganization("")
	got := listOrgs(t, clientFor(t, f, 0), first.Next)
	want := slices.Concat(seeded[101:], []string{extra})
	if !slices.Equal(got, want) {
		t.Fatalf("after deletions: listed %d teams, want %d (gap or duplicate)", len(got), len(want))
	}

	// A smaller Config.PageSize pages smaller.
	small := clientFor(t, f, 7)
	page, err := small.ListOrganizations(ctx, "")
	if err != nil || len(page.Organizations) != 7 {
		t.Fatalf("page size 7: %d teams, %v", len(page.Organizations), err)
	}
	if got := listOrgs(t, small, ""); len(got) != len(snap)-2+1 {
		t.Fatalf("page size 7: listed %d", len(got))
	}

	// Cursors it never wrote resolve to nothing.
	for _, bad := range []string{"x", testUUID, "t1:" + testUUID, "t1:abc:" + testUUID, "t1:1:nope", "m1:1:" + testUUID} {
		if _, err := c.ListOrganizations(ctx, bad); !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("cursor %q: %v, want ErrCursorNotFound", bad, err)
		}
	}

	// Every team deleted: the cursor still resolves, to an empty last page.
	for id := range f.OrganizationsSnapshot() {
		f.DeleteOrganization(id)
	}
	if page, err := c.ListOrganizations(ctx, first.Next); err != nil || len(page.Organizations) != 0 || page.Next != "" {
		t.Fatalf("all deleted: %+v, %v", page, err)
	}
}

// TestListOrganizationsTies: Stack Auth orders teams by creation time only,
// so teams of one millisecond come in any order, and not the same one each
// time; the client orders them by id and pages through them exactly once.
func TestListOrganizationsTies(t *testing.T) {
	var teams []string
	for i := range 9 {
		ms := 1700000000000 + int64(i/4) // groups of four in one millisecond
		teams = append(teams, fmt.Sprintf(`{"id":"%08x-0000-4000-8000-%012x","display_name":"T%d","profile_image_url":null,"created_at_millis":%d,"client_metadata":null,"client_read_only_metadata":null,"server_metadata":null}`, (i*7919)%97, i, i, ms))
	}
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A different order each call within a millisecond, creation
		// time kept ascending.
		n := int(calls.Add(1))
		order := make([]string, 0, len(teams))
		for g := 0; g < len(teams); g += 4 {
			group := teams[g:min(g+4, len(teams))]
			k := n % len(group)
			order = append(append(order, group[k:]...), group[:k]...)
		}
		w.Write([]byte(`{"items":[` + strings.Join(order, ",") + `],"is_paginated":false}`))
	}))
	t.Cleanup(srv.Close)
	c, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: "ssk_stub_secret_value_42",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := listOrgs(t, c, "")
	if len(got) != len(teams) {
		t.Fatalf("listed %d teams, want %d: %v", len(got), len(teams), got)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("team %s listed twice", id)
		}
		seen[id] = true
	}
	for g := 0; g < len(got); g += 4 {
		group := got[g:min(g+4, len(got))]
		if !slices.IsSorted(group) {
			t.Fatalf("teams of one millisecond not in id order: %v", group)
		}
	}
}

// memberIDs pages through a team's memberships and returns the user ids in
// order, checking each membership's shape.
func memberIDs(t *testing.T, c *stackauth.Client, team, cursor string) []string {
	t.Helper()
	var ids []string
	for range 10_000 {
		page, err := c.ListMemberships(context.Background(), team, cursor)
		if err != nil {
			t.Fatalf("ListMemberships(%s, %q): %v", team, cursor, err)
		}
		for _, m := range page.Memberships {
			if m.OrganizationID != strings.ToLower(team) || m.Role != nil || m.CreatedAt != nil || m.UpdatedAt != nil {
				t.Fatalf("membership %+v", m)
			}
			wantRaw := `{"team_id":"` + m.OrganizationID + `","user_id":"` + m.UserID + `"}`
			if string(m.Raw) != wantRaw {
				t.Fatalf("Raw = %s, want %s", m.Raw, wantRaw)
			}
			ids = append(ids, m.UserID)
		}
		if page.Next == "" {
			return ids
		}
		cursor = page.Next
	}
	t.Fatal("member list does not end")
	return nil
}

// TestListMemberships: a team's members, anonymous and restricted ones
// included (the member list hides them unless asked), in the member list's
// order, paged; without anonymous users when the client excludes them.
func TestListMemberships(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 42, RequireEmailVerification: true})
	t.Cleanup(f.Close)
	users := f.Seed(40)
	hidden := f.CreateHiddenUsers()
	anon := map[string]bool{hidden[0]: true, hidden[2]: true}
	team := f.CreateOrganization(users[0])
	other := f.CreateOrganization(users[1])
	for _, u := range slices.Concat(users[5:25], hidden) {
		f.AddMember(team, u, "")
	}
	f.AddMember(other, users[30], "")
	members := f.Members(team)
	if len(members) != 25 {
		t.Fatalf("fake has %d members", len(members))
	}

	for _, size := range []int{0, 1, 3, 24, 25, 26} {
		got := memberIDs(t, clientFor(t, f, size), team, "")
		if !slices.Equal(got, members) {
			t.Fatalf("page size %d: listed %v\nwant %v", size, got, members)
		}
	}
	// Upper-case team id: the same memberships, in lower case.
	if got := memberIDs(t, clientFor(t, f, 4), strings.ToUpper(team), ""); !slices.Equal(got, members) {
		t.Fatalf("upper-case team id: %v", got)
	}

	// USERSYNC_ANONYMOUS=exclude: every member but the anonymous ones.
	var wantExcl []string
	for _, u := range members {
		if !anon[u] {
			wantExcl = append(wantExcl, u)
		}
	}
	for _, size := range []int{0, 2, 5} {
		if got := memberIDs(t, clientWith(t, f, size, true), team, ""); !slices.Equal(got, wantExcl) {
			t.Fatalf("exclude anonymous, page size %d: %v\nwant %v", size, got, wantExcl)
		}
	}

	// Unknown and deleted teams: an empty last page, as Stack Auth answers.
	f.DeleteOrganization(other)
	for _, id := range []string{testUUID, other} {
		page, err := clientFor(t, f, 0).ListMemberships(context.Background(), id, "")
		if err != nil || len(page.Memberships) != 0 || page.Next != "" {
			t.Errorf("team %s: %+v, %v; want an empty last page", id, page, err)
		}
	}
	// Ids that cannot be a team's: an error, no request.
	before := f.Requests()
	for _, id := range []string{"", "team_1", testUUID + "\n"} {
		if _, err := clientFor(t, f, 0).ListMemberships(context.Background(), id, ""); err == nil {
			t.Errorf("team id %q accepted", id)
		}
	}
	if n := f.Requests() - before; n != 0 {
		t.Errorf("invalid team ids made %d requests", n)
	}
}

// TestListMembershipsChangesBetweenPages: the cursor names the first
// member of the next page; when that user is deleted (Stack Auth then
// answers an empty page), leaves the team, or the team is deleted, the
// list goes on from the same place with no gap and no duplicate.
func TestListMembershipsChangesBetweenPages(t *testing.T) {
	f := newFake(t, 43)
	users := f.Seed(30)
	ctx := context.Background()
	newTeam := func() (string, []string) {
		team := f.CreateOrganization("")
		for _, u := range users {
			f.AddMember(team, u, "")
		}
		return team, f.Members(team)
	}
	c := clientFor(t, f, 5)
	firstPage := func(team string) provider.MembershipPage {
		t.Helper()
		p, err := c.ListMemberships(ctx, team, "")
		if err != nil || len(p.Memberships) != 5 || p.Next == "" {
			t.Fatalf("first page: %+v, %v", p, err)
		}
		return p
	}

	// The cursor's user is deleted.
	team, members := newTeam()
	p := firstPage(team)
	f.DeleteUser(members[5])
	if got, want := memberIDs(t, c, team, p.Next), members[6:]; !slices.Equal(got, want) {
		t.Fatalf("cursor user deleted: %v\nwant %v", got, want)
	}

	// The cursor's user leaves the team but stays a user.
	team, members = newTeam()
	p = firstPage(team)
	f.RemoveMember(team, members[5])
	if got, want := memberIDs(t, c, team, p.Next), members[6:]; !slices.Equal(got, want) {
		t.Fatalf("cursor user left: %v\nwant %v", got, want)
	}

	// The last page's only member is deleted: an empty last page.
	team = f.CreateOrganization("")
	for _, u := range users[10:16] {
		f.AddMember(team, u, "")
	}
	live := f.Members(team)
	p = firstPage(team)
	f.DeleteUser(live[5])
	if got := memberIDs(t, c, team, p.Next); len(got) != 0 {
		t.Fatalf("last member deleted: %v", got)
	}

	// The team is deleted between pages: an empty last page.
	team, _ = newTeam()
	p = firstPage(team)
	f.DeleteOrganization(team)
	if got := memberIDs(t, c, team, p.Next); len(got) != 0 {
		t.Fatalf("team deleted: %v", got)
	}

	// Cursors it never wrote resolve to nothing.
	for _, bad := range []string{"x", testUUID, "t1:1:" + testUUID, "m1:x:" + testUUID} {
		if _, err := c.ListMemberships(ctx, team, bad); !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("cursor %q: %v, want ErrCursorNotFound", bad, err)
		}
	}
}

// TestOrganizationMembershipFollowsUsers: the fake keeps Stack Auth's
// rules that the client relies on: a creator is a member, a deleted user
// is no one's member, and a deleted team has none.
func TestOrganizationMembershipFollowsUsers(t *testing.T) {
	f := newFake(t, 44)
	users := f.Seed(4)
	c := clientFor(t, f, 0)
	team := f.CreateOrganization(users[0])
	f.AddMember(team, users[1], "")
	f.AddMember(team, users[2], "")
	if got := memberIDs(t, c, team, ""); !slices.Equal(got, users[:3]) {
		t.Fatalf("members %v, want creator and two", got)
	}
	f.DeleteUser(users[1])
	if got := memberIDs(t, c, team, ""); !slices.Equal(got, []string{users[0], users[2]}) {
		t.Fatalf("after the user's deletion: %v", got)
	}
	snap := f.MembershipsSnapshot()
	if got := slices.Sorted(maps.Keys(snap)); !slices.Equal(got, []string{team + ":" + users[0], team + ":" + users[2]}) && !slices.Equal(got, []string{team + ":" + users[2], team + ":" + users[0]}) {
		t.Fatalf("memberships snapshot %v", got)
	}
}

func TestParseOrganizationWebhooks(t *testing.T) {
	f := newFake(t, 45)
	users := f.Seed(2)
	p := f.Provider()
	team := f.CreateOrganization(users[0])

	check := func(name string, body []byte, h http.Header, kind provider.EventKind, typ, org, user string) {
		t.Helper()
		ev, err := p.ParseWebhook(body, h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ev.Kind != kind || ev.Type != typ || ev.OrganizationID != org || ev.UserID != user {
			t.Fatalf("%s: got %+v, want kind %d type %s org %q user %q", name, ev, kind, typ, org, user)
		}
	}
	body, h := f.OrganizationWebhook(provider.EventOrganizationChanged, team)
	check("created", body, h, provider.EventOrganizationChanged, "team.created", team, "")
	f.UpdateOrganization(team)
	body, h = f.OrganizationWebhook(provider.EventOrganizationChanged, team)
	check("updated", body, h, provider.EventOrganizationChanged, "team.updated", team, "")
	body, h = f.MembershipWebhook(team, users[1], false)
	check("membership created", body, h, provider.EventMembershipChanged, "team_membership.created", team, users[1])
	body, h = f.MembershipWebhook(team, users[1], true)
	check("membership deleted", body, h, provider.EventMembershipChanged, "team_membership.deleted", team, users[1])
	f.DeleteOrganization(team)
	body, h = f.OrganizationWebhook(provider.EventOrganizationDeleted, team)
	check("deleted", body, h, provider.EventOrganizationDeleted, "team.deleted", team, "")
	body, h = f.IgnoredWebhook()
	check("permission", body, h, provider.EventIgnored, "team_permission.created", "", "")

	// Upper-case ids name the same team and user.
	up := []byte(`{"type":"team_membership.created","data":{"team_id":"` + strings.ToUpper(team) + `","user_id":"` + strings.ToUpper(users[1]) + `"}}`)
	check("upper case", up, f.SignWebhook(up, time.Now()), provider.EventMembershipChanged, "team_membership.created", team, users[1])
	for _, typ := range []string{"team_permission.created", "team_permission.deleted"} {
		b := []byte(`{"type":"` + typ + `","data":{"id":"team_admin","team_id":"` + team + `","user_id":"` + users[0] + `"}}`)
		check(typ, b, f.SignWebhook(b, time.Now()), provider.EventIgnored, typ, "", "")
	}

	long := strings.Repeat("a", 256)
	bad := map[string]string{
		"team not json":          `{"type":"team.created","data":{"id":"` + testUUID + `"}`,
		"team no data":           `{"type":"team.updated"}`,
		"team data null":         `{"type":"team.updated","data":null}`,
		"team data array":        `{"type":"team.deleted","data":["` + testUUID + `"]}`,
		"team no id":             `{"type":"team.created","data":{"display_name":"x"}}`,
		"team empty id":          `{"type":"team.created","data":{"id":""}}`,
		"team number id":         `{"type":"team.deleted","data":{"id":7}}`,
		"team null id":           `{"type":"team.deleted","data":{"id":null}}`,
		"team non-uuid":          `{"type":"team.updated","data":{"id":"team_1"}}`,
		"team NUL":               `{"type":"team.deleted","data":{"id":"` + testUUID[:35] + `\u0000"}}`,
		"team long":              `{"type":"team.deleted","data":{"id":"` + long + `"}}`,
		"membership no team":     `{"type":"team_membership.created","data":{"user_id":"` + testUUID + `"}}`,
		"membership no user":     `{"type":"team_membership.deleted","data":{"team_id":"` + testUUID + `"}}`,
		"membership bad user":    `{"type":"team_membership.created","data":{"team_id":"` + testUUID + `","user_id":"u_1"}}`,
		"membership user number": `{"type":"team_membership.created","data":{"team_id":"` + testUUID + `","user_id":1}}`,
		"membership bad team":    `{"type":"team_membership.deleted","data":{"team_id":"` + testUUID + `\u0085","user_id":"` + testUUID + `"}}`,
		"membership padded":      `{"type":"team_membership.deleted","data":{"team_id":" ` + testUUID + `","user_id":"` + testUUID + `"}}`,
	}
	for name, b := range bad {
		_, err := p.ParseWebhook([]byte(b), f.SignWebhook([]byte(b), time.Now()))
		if !errors.Is(err, provider.ErrBadPayload) {
			t.Errorf("%s: err = %v, want ErrBadPayload", name, err)
		}
	}
	b := []byte(bad["membership no user"])
	if _, err := p.ParseWebhook(b, f.SignWebhook(b, time.Now())); err == nil || !strings.Contains(err.Error(), "team_membership.deleted: ") || !strings.Contains(err.Error(), "data.user_id") {
		t.Errorf("error %v does not name the event type and the field", err)
	}
}

// TestOrganizationsConcurrentUse: the fake and the client stay consistent
// while teams, members and users change from several goroutines; once the
// changes stop, the lists equal the fake's snapshots.
func TestOrganizationsConcurrentUse(t *testing.T) {
	f := newFake(t, 46)
	users := f.Seed(200)
	teams := f.SeedOrganizations(40, 10)
	c := clientFor(t, f, 7)
	ctx := context.Background()
	done := make(chan error, 6)
	for w := range 4 {
		go func() {
			for i := w; i < 160; i += 4 {
				team := teams[i%len(teams)]
				switch i % 5 {
				case 0:
					f.AddMember(team, users[i], "")
				case 1:
					f.RemoveMember(team, users[(i*7)%len(users)])
				case 2:
					f.DeleteUser(users[(i*13)%len(users)])
				case 3:
					f.CreateOrganization(users[(i*3)%len(users)])
				case 4:
					f.UpdateOrganization(team)
				}
				if i%40 == 0 {
					f.DeleteOrganization(team)
				}
				if _, err := c.FetchOrganization(ctx, team); err != nil && !errors.Is(err, provider.ErrOrganizationNotFound) {
					done <- err
					return
				}
				if _, err := c.ListMemberships(ctx, team, ""); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		go func() {
			for range 5 {
				cursor := ""
				for {
					page, err := c.ListOrganizations(ctx, cursor)
					if err != nil {
						done <- err
						return
					}
					if page.Next == "" {
						break
					}
					cursor = page.Next
				}
			}
			done <- nil
		}()
	}
	for range 6 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	orgs := f.OrganizationsSnapshot()
	listed := listOrgs(t, c, "")
	if len(listed) != len(orgs) {
		t.Fatalf("listed %d teams, the fake has %d", len(listed), len(orgs))
	}
	got := map[string]bool{}
	for _, id := range listed {
		if _, ok := orgs[id]; !ok {
			t.Fatalf("listed team %s, not in the snapshot", id)
		}
		for _, u := range memberIDs(t, c, id, "") {
			got[id+":"+u] = true
		}
	}
	if want := f.MembershipsSnapshot(); len(got) != len(want) {
		t.Fatalf("listed %d memberships, the fake has %d", len(got), len(want))
	} else {
		for k := range want {
			if !got[k] {
				t.Fatalf("membership %s not listed", k)
			}
		}
	}
}

// TestListMembershipsLargestPage: with the default page size a page holds
// MaxMembershipPageSize members, and a large team is listed whole.
func TestListMembershipsLargestPage(t *testing.T) {
	f := newFake(t, 47)
	f.Seed(1200)
	team := f.SeedOrganizations(1, 1100)[0]
	c := clientFor(t, f, 0)
	page, err := c.ListMemberships(context.Background(), team, "")
	if err != nil || len(page.Memberships) != stackauth.MaxMembershipPageSize || page.Next == "" {
		t.Fatalf("first page: %d members, next %q, %v", len(page.Memberships), page.Next, err)
	}
	if got := memberIDs(t, c, team, ""); !slices.Equal(got, f.Members(team)) || len(got) != 1100 {
		t.Fatalf("listed %d members, want the fake's 1100 in order", len(got))
	}
}

// BenchmarkListOrganizations lists every team of a project of 5,000 teams
// (50 pages, each a read of the whole unpaginated team list) against the
// fake, and reports the time and the bytes read per full listing.
func BenchmarkListOrganizations(b *testing.B) {
	f := stackfake.New(stackfake.Options{Seed: 48})
	defer f.Close()
	f.SeedOrganizations(5000, 0)
	env := f.Env()
	var read atomic.Int64
	hc := &http.Client{Transport: countingTransport{http.DefaultTransport, &read}}
	c, err := stackauth.New(stackauth.Config{ProjectID: env["STACK_PROJECT_ID"], SecretServerKey: env["STACK_SECRET_SERVER_KEY"],
		WebhookSecret: env["STACK_WEBHOOK_SECRET"], APIURL: f.URL(), HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	pages := 0
	for range b.N {
		cursor := ""
		for {
			page, err := c.ListOrganizations(context.Background(), cursor)
			if err != nil {
				b.Fatal(err)
			}
			pages++
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/listing")
	b.ReportMetric(float64(pages)/float64(b.N), "pages/listing")
	b.ReportMetric(float64(read.Load())/float64(b.N)/(1<<20), "MiB/listing")
}

// countingTransport counts the response bytes a client reads.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err == nil && resp.ContentLength > 0 {
		t.n.Add(resp.ContentLength)
	}
	return resp, err
}

// TestListOrganizationsBadAnswers: a team list that is not Stack Auth's
// shape is an error (retried), never a panic or a short list.
func TestListOrganizationsBadAnswers(t *testing.T) {
	team := func(id, ms string) string {
		return `{"id":` + id + `,"display_name":"T","profile_image_url":null,"created_at_millis":` + ms + `,"client_metadata":null,"client_read_only_metadata":null,"server_metadata":null}`
	}
	good := team(`"`+testUUID+`"`, "1700000000000")
	for name, body := range map[string]string{
		"not json":        `{"items":[` + good,
		"no items":        `{"is_paginated":false}`,
		"items null":      `{"items":null,"is_paginated":false}`,
		"items object":    `{"items":{},"is_paginated":false}`,
		"item string":     `{"items":["` + testUUID + `"]}`,
		"id number":       `{"items":[` + team("7", "1700000000000") + `]}`,
		"id not uuid":     `{"items":[` + team(`"team_1"`, "1700000000000") + `]}`,
		"id NUL":          `{"items":[` + team(`"`+testUUID[:35]+`\u0000"`, "1700000000000") + `]}`,
		"no created_at":   `{"items":[{"id":"` + testUUID + `","display_name":"T"}]}`,
		"created_at text": `{"items":[` + team(`"`+testUUID+`"`, `"yesterday"`) + `]}`,
		"created_at huge": `{"items":[` + team(`"`+testUUID+`"`, "1e300") + `]}`,
		"duplicate id":    `{"items":[{"id":"` + testUUID + `","created_at_millis":1,"id":"5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f61"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			c, _, _ := stubServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })
			page, err := c.ListOrganizations(context.Background(), "")
			if err == nil || errors.Is(err, provider.ErrCursorNotFound) {
				t.Fatalf("answer %s: page %+v, err %v; want an error", body, page, err)
			}
		})
	}
}
