package stackauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// realTeam returns the team object Stack Auth wrote in its e2e snapshot of
// a server user read (its selected_team), with a stand-in id and time.
func realTeam(t *testing.T) json.RawMessage {
	t.Helper()
	var u struct {
		SelectedTeam json.RawMessage `json:"selected_team"`
	}
	if err := json.Unmarshal(fixtureResponse(t, fxGetUser).Body, &u); err != nil || len(u.SelectedTeam) == 0 || string(u.SelectedTeam) == "null" {
		t.Fatalf("%s has no selected_team: %v", fxGetUser, err)
	}
	return u.SelectedTeam
}

// TestRealTeamDerivedColumns: the client derives organizations_sync's
// columns from the team object Stack Auth writes (docs/data-model.md): id,
// name = display_name, created_at = created_at_millis, no update time, and
// keeps the object as served.
func TestRealTeamDerivedColumns(t *testing.T) {
	team := realTeam(t)
	var w struct {
		ID              string  `json:"id"`
		DisplayName     *string `json:"display_name"`
		CreatedAtMillis int64   `json:"created_at_millis"`
	}
	if err := json.Unmarshal(team, &w); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch r.URL.Path {
		case "/api/v1/teams/" + w.ID:
			rw.Write(team)
		case "/api/v1/teams":
			rw.Write([]byte(`{"is_paginated":false,"items":[` + string(team) + `]}`))
		default:
			http.NotFound(rw, r)
		}
	}))
	defer srv.Close()
	c, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: "ssk_stub_secret_value_42",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.FetchOrganization(context.Background(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListOrganizations(context.Background(), "")
	if err != nil || len(page.Organizations) != 1 || page.Next != "" {
		t.Fatalf("list: %+v, %v", page, err)
	}
	for _, got := range []provider.Organization{o, page.Organizations[0]} {
		if got.ID != w.ID || got.Name == nil || w.DisplayName == nil || *got.Name != *w.DisplayName ||
			got.CreatedAt == nil || !got.CreatedAt.Equal(time.UnixMilli(w.CreatedAtMillis)) || got.UpdatedAt != nil {
			t.Errorf("derived %+v from %s", got, team)
		}
		if !jsonSame(got.Raw, team) {
			t.Errorf("Raw %s, want %s", got.Raw, team)
		}
	}
}

// TestFakeTeamShapeMatchesReal: the fake's team objects (GET, list, and
// team.* webhook data) carry exactly the keys of Stack Auth's, and its
// user.deleted names teams in Stack Auth's shape.
func TestFakeTeamShapeMatchesReal(t *testing.T) {
	want := keysOf(t, realTeam(t))
	f := stackfake.New(stackfake.Options{Seed: 34})
	defer f.Close()
	users := f.Seed(5)
	f.SeedOrganizations(20, 2)
	team := f.CreateOrganization(users[0])
	for id, raw := range f.OrganizationsSnapshot() {
		if got := keysOf(t, raw); !slices.Equal(got, want) {
			t.Fatalf("fake team %s keys %v; Stack Auth's %v", id, got, want)
		}
	}
	body, _ := f.OrganizationWebhook(provider.EventOrganizationChanged, team)
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, env.Data); !slices.Equal(got, want) {
		t.Fatalf("fake team.created data keys %v; Stack Auth's %v", got, want)
	}

	var real struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(fixturePayload(t, fxDeleted), &real); err != nil {
		t.Fatal(err)
	}
	f.DeleteUser(users[0])
	body, _ = f.Webhook(provider.EventUserDeleted, users[0])
	var fake struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &fake); err != nil {
		t.Fatal(err)
	}
	var teams []map[string]string
	if err := json.Unmarshal(fake.Data["teams"], &teams); err != nil || !slices.ContainsFunc(teams, func(m map[string]string) bool { return m["id"] == team }) {
		t.Fatalf("fake user.deleted teams %s lack %s: %v", fake.Data["teams"], team, err)
	}
	for _, m := range teams {
		if len(m) != 1 || !stackauth.IsUUID(m["id"]) {
			t.Fatalf("fake user.deleted teams %s: want [{id}]", fake.Data["teams"])
		}
	}
	if got, w := keysOfMap(fake.Data), keysOfMap(real.Data); !slices.Equal(got, w) {
		t.Fatalf("fake user.deleted data keys %v; Stack Auth's %v", got, w)
	}
}

func keysOfMap(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
