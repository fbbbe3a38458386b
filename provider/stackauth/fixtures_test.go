package stackauth_test

// Tests against what Stack Auth itself writes: the responses and webhook
// messages of its backend's own end-to-end tests (read, not copied, from the
// shared reference folder beside the repository; skipped when it is absent).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/internal/stacksnap"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// Snapshot files of Stack Auth's e2e tests, by what they hold.
const (
	fxGetUser     = "GET_users_by_id.server.e2e-inline-snapshot.txt"
	fxList        = "GET_users_list.server.e2e-inline-snapshot.txt"
	fxNotFound    = "GET_users_by_id.404_after_delete.e2e-inline-snapshot.txt"
	fxAnonymous   = "POST_users.anonymous_user.server.e2e-inline-snapshot.txt"
	fxAllMetadata = "PATCH_users_me.all_metadata.server.e2e-inline-snapshot.txt"
	fxCreated     = "webhook_user.created.svix-message.e2e-inline-snapshot.txt"
	fxUpdated     = "webhook_user.updated.svix-message.e2e-inline-snapshot.txt"
	fxDeleted     = "webhook_user.deleted.svix-message.e2e-inline-snapshot.txt"
)

// realFixture reads one of Stack Auth's snapshot files, skipping the test
// when the reference folder is absent.
func realFixture(t *testing.T, name string) []byte {
	t.Helper()
	dir, err := stacksnap.Dir("stackauth")
	if err != nil {
		t.Skipf("Stack Auth's own e2e snapshots are not available: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func fixtureResponse(t *testing.T, name string) stacksnap.Response {
	t.Helper()
	r, err := stacksnap.ParseResponse(realFixture(t, name), nextFixtureID)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func fixturePayload(t *testing.T, name string) json.RawMessage {
	t.Helper()
	p, err := stacksnap.ParseWebhookMessage(realFixture(t, name), nextFixtureID)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// nextFixtureID gives each stripped UUID of every snapshot read a distinct
// value, so that users of different snapshots have different ids.
var nextFixtureID = func() func() string {
	var mu sync.Mutex
	next := stacksnap.Sequence("f1c7a0e5")
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return next()
	}
}()

// realUsers returns every user object Stack Auth's snapshots hold, by
// where it comes from: server reads, the created anonymous user, list items
// and the data of user.created and user.updated webhooks.
func realUsers(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, name := range []string{fxGetUser, fxAnonymous, fxAllMetadata} {
		out[name] = fixtureResponse(t, name).Body
	}
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal(fixtureResponse(t, fxList).Body, &list); err != nil || len(list.Items) == 0 {
		t.Fatalf("%s: items %v, %v", fxList, list.Items, err)
	}
	for i, it := range list.Items {
		out[fxList+"#"+string(rune('0'+i))] = it
	}
	for _, name := range []string{fxCreated, fxUpdated} {
		var body struct{ Data json.RawMessage }
		if err := json.Unmarshal(fixturePayload(t, name), &body); err != nil {
			t.Fatal(err)
		}
		out[name] = body.Data
	}
	return out
}

// want derives the columns as docs/data-model.md says for Stack Auth, independently
// of the client: id; name = display_name; email = primary_email; created_at
// = signed_up_at_millis (ms). Anything null, missing or not of the right
// type gives no value.
func want(t *testing.T, raw json.RawMessage) provider.User {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	str := func(k string) *string {
		if s, ok := m[k].(string); ok && s != "" {
			return &s
		}
		return nil
	}
	u := provider.User{Name: str("display_name"), Email: str("primary_email"), Raw: raw}
	if id := str("id"); id != nil {
		u.ID = strings.ToLower(*id)
	}
	if n, ok := m["signed_up_at_millis"].(json.Number); ok {
		if ms, err := n.Int64(); err == nil {
			tm := time.UnixMilli(ms).UTC()
			u.CreatedAt = &tm
		}
	}
	u.Anonymous = m["is_anonymous"] == true
	return u
}

func checkDerived(t *testing.T, what string, got provider.User, raw json.RawMessage) {
	t.Helper()
	w := want(t, raw)
	s := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	if got.ID != w.ID || s(got.Name) != s(w.Name) || s(got.Email) != s(w.Email) || got.Anonymous != w.Anonymous ||
		(got.CreatedAt == nil) != (w.CreatedAt == nil) || got.CreatedAt != nil && !got.CreatedAt.Equal(*w.CreatedAt) || got.UpdatedAt != nil {
		t.Errorf("%s: got id %q name %s email %s created %v anonymous %v; want id %q name %s email %s created %v anonymous %v",
			what, got.ID, s(got.Name), s(got.Email), got.CreatedAt, got.Anonymous, w.ID, s(w.Name), s(w.Email), w.CreatedAt, w.Anonymous)
	}
	if !jsonSame(got.Raw, raw) {
		t.Errorf("%s: the profile stored differs from the object received:\n got %s\nwant %s", what, got.Raw, raw)
	}
}

func jsonSame(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// serveObjects is a Stack Auth API that answers GET /api/v1/users/{id} with
// the object of that id and GET /api/v1/users with all of them.
func serveObjects(t *testing.T, objs map[string]json.RawMessage) *stackauth.Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		obj, ok := objs[strings.ToLower(r.PathValue("id"))]
		if !ok {
			w.Header().Set("X-Stack-Known-Error", "USER_NOT_FOUND")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"code":"USER_NOT_FOUND","error":"User not found."}`))
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(obj)
	})
	mux.HandleFunc("GET /api/v1/users", func(w http.ResponseWriter, r *http.Request) {
		items := slices.Collect(maps.Values(objs))
		b, _ := json.Marshal(map[string]any{"is_paginated": true, "items": items, "pagination": map[string]any{"next_cursor": nil}})
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: "ssk_stub_secret_value_42",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func idOf(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var u struct{ ID string }
	if err := json.Unmarshal(raw, &u); err != nil || u.ID == "" {
		t.Fatalf("object without id: %s", raw)
	}
	return u.ID
}

// TestRealUsersDerivedColumns: every user object Stack Auth wrote, fetched
// and listed, gives the columns docs/data-model.md derives, and the object itself as
// the profile.
func TestRealUsersDerivedColumns(t *testing.T) {
	users := realUsers(t)
	byID := map[string]json.RawMessage{}
	for _, raw := range users {
		byID[idOf(t, raw)] = raw
	}
	c := serveObjects(t, byID)
	for what, raw := range users {
		u, err := c.FetchUser(context.Background(), idOf(t, raw))
		if err != nil {
			t.Fatalf("%s: FetchUser: %v", what, err)
		}
		checkDerived(t, what, u, raw)
	}
	// The anonymous user is one; the others are not.
	if u := want(t, users[fxAnonymous]); !u.Anonymous || u.Email != nil {
		t.Errorf("the anonymous user fixture: %+v", u)
	}
	page, err := c.ListUsers(context.Background(), "")
	if err != nil || len(page.Users) != len(byID) || page.Next != "" {
		t.Fatalf("ListUsers: %d users, next %q, %v", len(page.Users), page.Next, err)
	}
	for _, u := range page.Users {
		checkDerived(t, "listed "+u.ID, u, byID[u.ID])
	}
}

// TestRealListBody: the list answer exactly as Stack Auth wrote it.
func TestRealListBody(t *testing.T) {
	r := fixtureResponse(t, fxList)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(r.Body)
	}))
	defer srv.Close()
	c, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: "ssk_stub_secret_value_42",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListUsers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Items []json.RawMessage }
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != len(body.Items) || page.Next != "" {
		t.Fatalf("page %+v; want %d users and no next cursor", page, len(body.Items))
	}
	for i, u := range page.Users {
		checkDerived(t, "list item", u, body.Items[i])
	}
}

// TestRealUsersOddShapes: null and missing keys never fail a fetch: the
// column is NULL and the profile is stored as received.
func TestRealUsersOddShapes(t *testing.T) {
	base := fixtureResponse(t, fxGetUser).Body
	id := idOf(t, base)
	for _, key := range []string{"display_name", "primary_email", "signed_up_at_millis", "is_anonymous", "is_restricted",
		"restricted_reason", "selected_team", "risk_scores", "country_code", "oauth_providers", "server_metadata"} {
		for _, variant := range []string{"null", "missing"} {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(base, &m); err != nil {
				t.Fatal(err)
			}
			if variant == "null" {
				m[key] = json.RawMessage("null")
			} else {
				delete(m, key)
			}
			raw, _ := json.Marshal(m)
			u, err := serveObjects(t, map[string]json.RawMessage{id: raw}).FetchUser(context.Background(), id)
			if err != nil {
				t.Errorf("%s %s: FetchUser failed: %v", key, variant, err)
				continue
			}
			checkDerived(t, key+" "+variant, u, raw)
		}
	}
}

// TestRealNotFound: Stack Auth's answer for a deleted user (its known-error
// header and body) is recognised as "user not found"; the same body without
// the header is not Stack Auth's whole answer, so it is not a deletion; and
// the fake answers in exactly the real format.
func TestRealNotFound(t *testing.T) {
	r := fixtureResponse(t, fxNotFound)
	if r.Status != http.StatusNotFound {
		t.Fatalf("snapshot status %d", r.Status)
	}
	for _, withHeader := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if withHeader {
				for k, v := range r.Headers {
					w.Header().Set(k, v)
				}
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(r.Status)
			w.Write(r.Body)
		}))
		c, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: "ssk_stub_secret_value_42",
			WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.FetchUser(context.Background(), testUUID)
		srv.Close()
		if gone := errors.Is(err, provider.ErrUserNotFound); gone != withHeader {
			t.Errorf("header %v: FetchUser error %v; want user not found: %v", withHeader, err, withHeader)
		}
	}

	f := stackfake.New(stackfake.Options{Seed: 31})
	defer f.Close()
	id := f.CreateUser()
	f.DeleteUser(id)
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/api/v1/users/"+id, nil)
	env := f.Env()
	req.Header.Set("X-Stack-Access-Type", "server")
	req.Header.Set("X-Stack-Project-Id", env["STACK_PROJECT_ID"])
	req.Header.Set("X-Stack-Secret-Server-Key", env["STACK_SECRET_SERVER_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != r.Status || !jsonSame(body.Bytes(), r.Body) {
		t.Errorf("fake answers %d %s; Stack Auth %d %s", resp.StatusCode, body.Bytes(), r.Status, r.Body)
	}
	for k, v := range r.Headers {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("fake header %s = %q; Stack Auth %q", k, got, v)
		}
	}
	if _, err := f.Provider().FetchUser(context.Background(), id); !errors.Is(err, provider.ErrUserNotFound) {
		t.Errorf("FetchUser of a deleted user at the fake: %v", err)
	}
}

// TestRealWebhookBodies: each webhook body Stack Auth sent, signed afresh,
// parses to the right event, with the id in its canonical lower case; the
// dashboard's test event (type stack.test, no user) is ignored.
func TestRealWebhookBodies(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 32})
	defer f.Close()
	p := f.Provider()
	for name, kind := range map[string]provider.EventKind{fxCreated: provider.EventUserChanged, fxUpdated: provider.EventUserChanged, fxDeleted: provider.EventUserDeleted} {
		body := fixturePayload(t, name)
		var b struct{ Data struct{ ID string } }
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		for _, upper := range []bool{false, true} {
			sent := body
			if upper {
				sent = bytes.ReplaceAll(body, []byte(b.Data.ID), []byte(strings.ToUpper(b.Data.ID)))
			}
			ev, err := p.ParseWebhook(sent, f.SignWebhook(sent, time.Now()))
			if err != nil || ev.Kind != kind || ev.UserID != strings.ToLower(b.Data.ID) {
				t.Errorf("%s (upper-case id %v): %+v, %v; want kind %v for %s", name, upper, ev, err, kind, b.Data.ID)
			}
		}
	}
	// The dashboard's "test webhook" button: type stack.test, a message and
	// the endpoint's URL (camelCase), no user.
	test := []byte(`{"type":"stack.test","data":{"message":"Stack webhook test event triggered from the Stack dashboard.","endpointUrl":"https://example.com/webhooks/stackauth"}}`)
	if ev, err := p.ParseWebhook(test, f.SignWebhook(test, time.Now())); err != nil || ev.Kind != provider.EventIgnored {
		t.Errorf("stack.test: %+v, %v; want ignored", ev, err)
	}
}

// keysOf returns the sorted top-level keys of a JSON object.
func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not an object: %s", raw)
	}
	return slices.Sorted(maps.Keys(m))
}

// TestFakeShapeMatchesReal: the fake's user objects carry exactly the keys
// Stack Auth's do (its selected team too), its list answer the same
// wrapper, and its anonymous user the same flags as Stack Auth's.
func TestFakeShapeMatchesReal(t *testing.T) {
	real := fixtureResponse(t, fxGetUser).Body
	f := stackfake.New(stackfake.Options{Seed: 33})
	defer f.Close()
	f.Seed(60)
	anon := f.CreateAnonymousUser()
	snap := f.Snapshot()
	var withTeam int
	for id, raw := range snap {
		if got, w := keysOf(t, raw), keysOf(t, real); !slices.Equal(got, w) {
			t.Fatalf("fake user %s has keys %v; Stack Auth's %v", id, got, w)
		}
		var team, realTeam struct {
			SelectedTeam json.RawMessage `json:"selected_team"`
		}
		json.Unmarshal(raw, &team)
		json.Unmarshal(real, &realTeam)
		if string(team.SelectedTeam) != "null" {
			withTeam++
			if got, w := keysOf(t, team.SelectedTeam), keysOf(t, realTeam.SelectedTeam); !slices.Equal(got, w) {
				t.Fatalf("fake selected_team keys %v; Stack Auth's %v", got, w)
			}
		}
	}
	if withTeam == 0 {
		t.Error("no fake user has a selected team")
	}

	realAnon := fixtureResponse(t, fxAnonymous).Body
	var fa, ra map[string]json.RawMessage
	json.Unmarshal(snap[anon], &fa)
	json.Unmarshal(realAnon, &ra)
	for _, k := range []string{"is_anonymous", "is_restricted", "restricted_reason", "restricted_by_admin", "primary_email",
		"primary_email_verified", "primary_email_auth_enabled", "has_password", "otp_auth_enabled", "auth_with_email", "display_name"} {
		if !jsonSame(fa[k], ra[k]) {
			t.Errorf("anonymous user %s: fake %s, Stack Auth %s", k, fa[k], ra[k])
		}
	}

	realList := fixtureResponse(t, fxList).Body
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/api/v1/users?limit=2", nil)
	env := f.Env()
	req.Header.Set("X-Stack-Access-Type", "server")
	req.Header.Set("X-Stack-Project-Id", env["STACK_PROJECT_ID"])
	req.Header.Set("X-Stack-Secret-Server-Key", env["STACK_SECRET_SERVER_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if got, w := keysOf(t, body.Bytes()), keysOf(t, realList); !slices.Equal(got, w) {
		t.Errorf("fake list keys %v; Stack Auth's %v", got, w)
	}
}
