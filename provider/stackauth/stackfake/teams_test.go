package stackfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// teamKeys are the keys of Stack Auth's server team object, in its order.
var teamKeys = []string{"id", "display_name", "profile_image_url", "created_at_millis", "client_metadata", "client_read_only_metadata", "server_metadata"}

// orderedKeys returns the top-level keys of a JSON object in order.
func orderedKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

type teamList struct {
	Items       []json.RawMessage `json:"items"`
	IsPaginated *bool             `json:"is_paginated"`
}

func listTeams(t *testing.T, f *stackfake.Fake, query string) teamList {
	t.Helper()
	r := call(t, f, "/api/v1/teams"+query, serverHeaders(f))
	if r.status != 200 {
		t.Fatalf("GET /teams%s: %d %s", query, r.status, r.body)
	}
	if got := orderedKeys(t, r.body); !slices.Equal(got, []string{"items", "is_paginated"}) {
		t.Fatalf("team list keys %v", got)
	}
	var l teamList
	if err := json.Unmarshal(r.body, &l); err != nil || l.Items == nil || l.IsPaginated == nil || *l.IsPaginated {
		t.Fatalf("team list %s: %v", r.body, err)
	}
	return l
}

func teamID(t *testing.T, raw json.RawMessage) (string, int64) {
	t.Helper()
	var w struct {
		ID        string `json:"id"`
		CreatedAt int64  `json:"created_at_millis"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	return w.ID, w.CreatedAt
}

func TestTeamEndpoints(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 50})
	defer f.Close()
	h := serverHeaders(f)
	if l := listTeams(t, f, ""); len(l.Items) != 0 {
		t.Fatalf("a new project has teams: %s", l.Items)
	}
	users := f.Seed(10)
	teams := f.SeedOrganizations(30, 4)
	mine := f.CreateOrganization(users[3])
	teams = append(teams, mine)
	snap := f.OrganizationsSnapshot()

	l := listTeams(t, f, "")
	if len(l.Items) != len(teams) {
		t.Fatalf("listed %d teams, want %d", len(l.Items), len(teams))
	}
	var last int64
	for i, raw := range l.Items {
		if got := orderedKeys(t, raw); !slices.Equal(got, teamKeys) {
			t.Fatalf("team keys %v, want %v", got, teamKeys)
		}
		id, created := teamID(t, raw)
		if created < last {
			t.Fatalf("item %d created %d before the previous %d: not oldest first", i, created, last)
		}
		last = created
		if !bytes.Equal(raw, snap[id]) {
			t.Fatalf("list item %s differs from the snapshot", id)
		}
		r := call(t, f, "/api/v1/teams/"+strings.ToUpper(id), h)
		if r.status != 200 || !bytes.Equal(r.body, snap[id]) {
			t.Fatalf("GET /teams/%s: %d %s", id, r.status, r.body)
		}
	}

	// A user's teams.
	l = listTeams(t, f, "?user_id="+users[3])
	var got []string
	for _, raw := range l.Items {
		id, _ := teamID(t, raw)
		got = append(got, id)
	}
	if !slices.Contains(got, mine) {
		t.Fatalf("the creator's teams %v lack %s", got, mine)
	}
	for _, id := range got {
		if !slices.Contains(f.Members(id), users[3]) {
			t.Fatalf("team %s listed for a user who is not a member", id)
		}
	}
	if l := listTeams(t, f, "?user_id=5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"); len(l.Items) != 0 {
		t.Fatalf("unknown user's teams: %s", l.Items)
	}

	// Errors, in Stack Auth's known-error format.
	expectKnownError(t, call(t, f, "/api/v1/teams?user_id=me", h), 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")
	expectKnownError(t, call(t, f, "/api/v1/teams?user_id=nope", h), 400, "SCHEMA_ERROR")
	expectKnownError(t, call(t, f, "/api/v1/teams/team_1", h), 400, "SCHEMA_ERROR")
	expectKnownError(t, call(t, f, "/api/v1/teams", nil), 400, "ACCESS_TYPE_REQUIRED")
	expectKnownError(t, call(t, f, "/api/v1/teams/"+mine, nil), 400, "ACCESS_TYPE_REQUIRED")
	bad := serverHeaders(f)
	bad["X-Stack-Secret-Server-Key"] = "ssk_wrong"
	expectKnownError(t, call(t, f, "/api/v1/teams", bad), 401, "INVALID_SECRET_SERVER_KEY")
	f.DeleteOrganization(mine)
	body := expectKnownError(t, call(t, f, "/api/v1/teams/"+mine, h), 404, "TEAM_NOT_FOUND")
	if body["error"] != "Team "+mine+" not found." || body["details"].(map[string]any)["team_id"] != mine {
		t.Fatalf("TEAM_NOT_FOUND body %v", body)
	}
}

func TestTeamMemberFilter(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 51, RequireEmailVerification: true})
	defer f.Close()
	users := f.Seed(60)
	var hidden []string
	for range 3 {
		hidden = append(hidden, f.CreateHiddenUsers()...)
	}
	users = append(users, f.Seed(10)...)
	team := f.CreateOrganization("")
	members := map[string]bool{}
	for i, u := range slices.Concat(users, hidden) {
		if i%2 == 0 {
			f.AddMember(team, u, "")
			members[u] = true
		}
	}
	for _, q := range []string{"", "include_restricted=true", "include_anonymous=true", "include_anonymous=true&only_anonymous=true", "include_restricted=true&desc=true"} {
		all := listAllIDs(t, f, q)
		var want []string
		for _, id := range all {
			if members[id] {
				want = append(want, id)
			}
		}
		got := listAllIDs(t, f, q+"&team_id="+team)
		if !slices.Equal(got, want) {
			t.Fatalf("list?%s&team_id: %d users, want the %d members the plain list gives", q, len(got), len(want))
		}
		if len(want) == 0 {
			t.Fatalf("list?%s: no member listed", q)
		}
	}
	// In the list's order, with the list's inclusive cursor.
	b := list(t, f, "?include_anonymous=true&limit=5&team_id="+team)
	ordered := f.Members(team)
	if got := itemIDs(t, b.Items); !slices.Equal(got, ordered[:5]) || b.Pagination.NextCursor == nil || *b.Pagination.NextCursor != ordered[5] {
		t.Fatalf("first page %v next %v; want %v", got, b.Pagination.NextCursor, ordered[:6])
	}
	// A cursor naming a user outside the team starts at that user's place.
	var outside string
	for _, u := range users {
		if !members[u] && !slices.Contains(hidden, u) {
			outside = u
			break
		}
	}
	b = list(t, f, "?include_anonymous=true&team_id="+team+"&cursor="+outside)
	var want []string
	everyone := itemIDs(t, list(t, f, "?include_anonymous=true").Items)
	for _, id := range everyone[slices.Index(everyone, outside):] {
		if members[id] {
			want = append(want, id)
		}
	}
	if got := itemIDs(t, b.Items); !slices.Equal(got, want) {
		t.Fatalf("cursor outside the team: %d users, want %d", len(got), len(want))
	}
	// A cursor naming a deleted user: nothing (Prisma finds no cursor row).
	f.DeleteUser(ordered[5])
	if b := list(t, f, "?include_anonymous=true&limit=5&team_id="+team+"&cursor="+ordered[5]); len(b.Items) != 0 || b.Pagination.NextCursor != nil {
		t.Fatalf("deleted cursor: %d items", len(b.Items))
	}
	// Unknown team: nobody; malformed team id: 400.
	if b := list(t, f, "?include_anonymous=true&team_id=5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"); len(b.Items) != 0 {
		t.Fatalf("unknown team lists %d users", len(b.Items))
	}
	expectKnownError(t, call(t, f, "/api/v1/users?team_id=team_1", serverHeaders(f)), 400, "SCHEMA_ERROR")
	if r := call(t, f, "/api/v1/users?only_anonymous=true&team_id="+team, serverHeaders(f)); r.status != 400 {
		t.Fatalf("only_anonymous without include_anonymous: %d", r.status)
	}
}

// TestTeamLifecycle: Stack Auth's rules for who is a member: the creator
// joins; a deleted team has no members; a deleted user belongs to no team
// (and user.deleted names the teams they were in).
func TestTeamLifecycle(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 52})
	defer f.Close()
	users := f.Seed(5)
	if id := f.CreateOrganization("5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"); id != "" {
		t.Fatalf("team created for a creator who does not exist: %s", id)
	}
	a := f.CreateOrganization(users[0])
	b := f.CreateOrganization("")
	if got := f.Members(a); !slices.Equal(got, users[:1]) {
		t.Fatalf("creator: members %v", got)
	}
	if len(f.Members(b)) != 0 {
		t.Fatal("a team without creator has members")
	}
	if !f.AddMember(a, users[1], "") || !f.AddMember(b, users[1], "") || f.AddMember(a, users[1], "") {
		t.Fatal("AddMember")
	}
	if f.AddMember(a, "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60", "") || f.AddMember("5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60", users[2], "") {
		t.Fatal("AddMember with an unknown team or user")
	}
	if !f.UpdateMember(a, users[1], "admin") || f.UpdateMember(a, users[2], "") {
		t.Fatal("UpdateMember")
	}
	if !f.UpdateOrganization(a) || f.UpdateOrganization("nope") {
		t.Fatal("UpdateOrganization")
	}
	wantKeys := []string{a + ":" + users[0], a + ":" + users[1], b + ":" + users[1]}
	slices.Sort(wantKeys)
	if got := slices.Sorted(maps.Keys(f.MembershipsSnapshot())); !slices.Equal(got, wantKeys) {
		t.Fatalf("memberships %v, want %v", got, wantKeys)
	}
	if got := string(f.MembershipsSnapshot()[a+":"+users[1]]); got != `{"team_id":"`+a+`","user_id":"`+users[1]+`"}` {
		t.Fatalf("membership object %s", got)
	}

	// The user's deletion ends their memberships; user.deleted names the teams.
	f.DeleteUser(users[1])
	body, _ := f.Webhook(provider.EventUserDeleted, users[1])
	var del struct {
		Data struct {
			Teams []map[string]string `json:"teams"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &del); err != nil || len(del.Data.Teams) != 2 {
		t.Fatalf("user.deleted %s: %v", body, err)
	}
	for i, tm := range del.Data.Teams {
		if tm["id"] != []string{a, b}[i] || len(tm) != 1 {
			t.Fatalf("user.deleted teams %v, want [{id: %s}, {id: %s}] (oldest first)", del.Data.Teams, a, b)
		}
	}
	if got := slices.Sorted(maps.Keys(f.MembershipsSnapshot())); !slices.Equal(got, []string{a + ":" + users[0]}) {
		t.Fatalf("after the user's deletion: %v", got)
	}
	if l := listTeams(t, f, "?user_id="+users[1]); len(l.Items) != 0 {
		t.Fatal("a deleted user still has teams")
	}

	// The team's deletion ends its memberships.
	if !f.DeleteOrganization(a) || f.DeleteOrganization(a) {
		t.Fatal("DeleteOrganization")
	}
	if len(f.MembershipsSnapshot()) != 0 || f.Members(a) != nil {
		t.Fatal("a deleted team has members")
	}
	if l := listTeams(t, f, "?user_id="+users[0]); len(l.Items) != 0 {
		t.Fatal("the creator still belongs to the deleted team")
	}
	if b := list(t, f, "?include_anonymous=true&team_id="+a); len(b.Items) != 0 {
		t.Fatal("a deleted team lists members")
	}
	f.AddMember(b, users[2], "")
	if !f.RemoveMember(b, users[2]) || f.RemoveMember(b, users[2]) || f.RemoveMember(a, users[0]) {
		t.Fatal("RemoveMember")
	}
	if _, ok := f.OrganizationsSnapshot()[a]; ok {
		t.Fatal("deleted team in the snapshot")
	}
}

// TestTeamWebhookBodies: the bodies are Stack Auth's (docs/providers.md,
// "Organizations"): team.* carry the team object, team.deleted {id} only,
// team_membership.* {team_id, user_id}.
func TestTeamWebhookBodies(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 53})
	defer f.Close()
	users := f.Seed(2)
	team := f.CreateOrganization(users[0])
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	body, h := f.OrganizationWebhook(provider.EventOrganizationChanged, team)
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "team.created" || !bytes.Equal(env.Data, f.OrganizationsSnapshot()[team]) {
		t.Fatalf("team.created %s: %v", body, err)
	}
	if got := orderedKeys(t, body); !slices.Equal(got, []string{"type", "data"}) {
		t.Fatalf("envelope keys %v", got)
	}
	if !strings.HasPrefix(h.Get("svix-signature"), "v1,") {
		t.Fatalf("unsigned: %v", h)
	}
	f.UpdateOrganization(team)
	body, _ = f.OrganizationWebhook(provider.EventOrganizationChanged, team)
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "team.updated" || !bytes.Equal(env.Data, f.OrganizationsSnapshot()[team]) {
		t.Fatalf("team.updated %s: %v", body, err)
	}
	f.DeleteOrganization(team)
	body, _ = f.OrganizationWebhook(provider.EventOrganizationDeleted, team)
	if string(body) != `{"type":"team.deleted","data":{"id":"`+team+`"}}` {
		t.Fatalf("team.deleted %s", body)
	}
	body, _ = f.OrganizationWebhook(provider.EventOrganizationChanged, team) // late: the last state
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "team.updated" || !bytes.Contains(env.Data, []byte(team)) {
		t.Fatalf("late team.updated %s: %v", body, err)
	}
	body, _ = f.MembershipWebhook(team, users[1], false)
	if string(body) != `{"type":"team_membership.created","data":{"team_id":"`+team+`","user_id":"`+users[1]+`"}}` {
		t.Fatalf("team_membership.created %s", body)
	}
	body, _ = f.MembershipWebhook(team, users[1], true)
	if string(body) != `{"type":"team_membership.deleted","data":{"team_id":"`+team+`","user_id":"`+users[1]+`"}}` {
		t.Fatalf("team_membership.deleted %s", body)
	}
	body, _ = f.IgnoredWebhook()
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "team_permission.created" || !slices.Equal(orderedKeys(t, env.Data), []string{"id", "team_id", "user_id"}) {
		t.Fatalf("team_permission.created %s", body)
	}
	for _, odd := range []string{"weird\"id\x00", ""} {
		for _, b := range [][]byte{
			first(f.OrganizationWebhook(provider.EventOrganizationChanged, odd)),
			first(f.OrganizationWebhook(provider.EventOrganizationDeleted, odd)),
			first(f.MembershipWebhook(odd, odd, true)),
		} {
			if !json.Valid(b) {
				t.Fatalf("invalid JSON for an odd id: %s", b)
			}
		}
	}
}

func first[A, B any](a A, _ B) A { return a }

func TestTeamFaultsAndUpperCase(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 54, UpperCaseIDs: true})
	defer f.Close()
	users := f.Seed(3)
	team := f.CreateOrganization(users[0])
	h := serverHeaders(f)
	f.FailNext(3, 503, 0)
	for _, p := range []string{"/api/v1/teams", "/api/v1/teams/" + team, "/api/v1/users?team_id=" + team} {
		if r := call(t, f, p, h); r.status != 503 {
			t.Fatalf("%s: %d, want the injected 503", p, r.status)
		}
	}
	// Upper-case ids in answers; the client lowers them.
	r := call(t, f, "/api/v1/teams/"+team, h)
	if id, _ := teamID(t, r.body); id != strings.ToUpper(team) {
		t.Fatalf("UpperCaseIDs: team id %s", id)
	}
	o := f.Organizations()
	page, err := o.ListOrganizations(context.Background(), "")
	if err != nil || len(page.Organizations) != 1 || page.Organizations[0].ID != team {
		t.Fatalf("list: %+v, %v", page, err)
	}
	m, err := o.ListMemberships(context.Background(), strings.ToUpper(team), "")
	if err != nil || len(m.Memberships) != 1 || m.Memberships[0].UserID != users[0] || m.Memberships[0].OrganizationID != team {
		t.Fatalf("members: %+v, %v", m, err)
	}
}

// TestTeamMemberProfiles: team-member-profiles lists memberships oldest
// first with the user embedded, hidden users included, and answers Stack
// Auth's errors.
func TestTeamMemberProfiles(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 55, RequireEmailVerification: true})
	defer f.Close()
	h := serverHeaders(f)
	users := f.Seed(6)
	hidden := f.CreateHiddenUsers()
	team := f.CreateOrganization(users[4])
	other := f.CreateOrganization(users[0])
	joined := []string{users[4], hidden[0], users[1], hidden[1]}
	for _, u := range joined[1:] {
		f.AddMember(team, u, "")
	}
	type profile struct {
		TeamID          string          `json:"team_id"`
		UserID          string          `json:"user_id"`
		DisplayName     json.RawMessage `json:"display_name"`
		ProfileImageURL json.RawMessage `json:"profile_image_url"`
		User            json.RawMessage `json:"user"`
	}
	r := call(t, f, "/api/v1/team-member-profiles?team_id="+team, h)
	var l struct {
		Items       []json.RawMessage `json:"items"`
		IsPaginated bool              `json:"is_paginated"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &l) != nil || l.IsPaginated {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	snap := f.Snapshot()
	var got []string
	for _, raw := range l.Items {
		if k := orderedKeys(t, raw); !slices.Equal(k, []string{"team_id", "user_id", "display_name", "profile_image_url", "user"}) {
			t.Fatalf("profile keys %v", k)
		}
		var p profile
		json.Unmarshal(raw, &p)
		var u map[string]json.RawMessage
		json.Unmarshal(snap[p.UserID], &u)
		if p.TeamID != team || !bytes.Equal(p.User, snap[p.UserID]) || !bytes.Equal(p.DisplayName, u["display_name"]) || !bytes.Equal(p.ProfileImageURL, u["profile_image_url"]) {
			t.Fatalf("profile %s", raw)
		}
		got = append(got, p.UserID)
	}
	if !slices.Equal(got, joined) {
		t.Fatalf("profiles %v, want oldest membership first %v", got, joined)
	}
	r = call(t, f, "/api/v1/team-member-profiles", h)
	json.Unmarshal(r.body, &l)
	if len(l.Items) != len(joined)+1 {
		t.Fatalf("every membership: %d", len(l.Items))
	}
	r = call(t, f, "/api/v1/team-member-profiles?user_id="+users[0], h)
	json.Unmarshal(r.body, &l)
	if len(l.Items) != 1 || !bytes.Contains(l.Items[0], []byte(other)) {
		t.Fatalf("a user's memberships: %s", r.body)
	}
	r = call(t, f, "/api/v1/team-member-profiles/"+team+"/"+hidden[1], h)
	var one profile
	if r.status != 200 || json.Unmarshal(r.body, &one) != nil || one.UserID != hidden[1] {
		t.Fatalf("one profile: %d %s", r.status, r.body)
	}

	unknown := "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles?team_id="+unknown, h), 404, "TEAM_NOT_FOUND")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles?user_id="+unknown, h), 404, "USER_NOT_FOUND")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles?team_id=x", h), 400, "SCHEMA_ERROR")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles?user_id=me", h), 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles/"+team+"/"+unknown, h), 404, "USER_NOT_FOUND")
	body := expectKnownError(t, call(t, f, "/api/v1/team-member-profiles/"+team+"/"+users[0], h), 404, "TEAM_MEMBERSHIP_NOT_FOUND")
	if body["error"] != "User "+users[0]+" is not found in team "+team+"." {
		t.Fatalf("TEAM_MEMBERSHIP_NOT_FOUND %v", body)
	}
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles/"+unknown+"/"+users[0], h), 404, "TEAM_MEMBERSHIP_NOT_FOUND")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles/x/"+users[0], h), 400, "SCHEMA_ERROR")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles/"+team+"/x", h), 400, "SCHEMA_ERROR")
	expectKnownError(t, call(t, f, "/api/v1/team-member-profiles?team_id="+team, nil), 400, "ACCESS_TYPE_REQUIRED")
}
