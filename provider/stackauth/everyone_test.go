package stackauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// clientWith builds a client for f with the given page size and
// ExcludeAnonymous setting.
func clientWith(t *testing.T, f *stackfake.Fake, pageSize int, excludeAnonymous bool) *stackauth.Client {
	t.Helper()
	env := f.Env()
	c, err := stackauth.New(stackauth.Config{
		ProjectID: env["STACK_PROJECT_ID"], SecretServerKey: env["STACK_SECRET_SERVER_KEY"],
		WebhookSecret: env["STACK_WEBHOOK_SECRET"], APIURL: f.URL(), PageSize: pageSize,
		ExcludeAnonymous: excludeAnonymous,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listIDs(t *testing.T, c *stackauth.Client) map[string]provider.User {
	t.Helper()
	out := map[string]provider.User{}
	cursor := ""
	for range 10_000 {
		page, err := c.ListUsers(context.Background(), cursor)
		if err != nil {
			t.Fatalf("ListUsers(%q): %v", cursor, err)
		}
		for _, u := range page.Users {
			if _, dup := out[u.ID]; dup {
				t.Fatalf("user %s listed twice", u.ID)
			}
			out[u.ID] = u
		}
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
	t.Fatal("list does not end")
	return nil
}

func isAnonymous(t *testing.T, raw json.RawMessage) bool {
	t.Helper()
	var p struct {
		IsAnonymous *bool `json:"is_anonymous"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.IsAnonymous == nil {
		t.Fatalf("user object without is_anonymous: %s", raw)
	}
	return *p.IsAnonymous
}

// TestListEveryone: against a fake whose list leaves anonymous and
// restricted users out unless asked (as Stack Auth's does), the client
// lists every user; with ExcludeAnonymous every user but the anonymous
// ones. User.Anonymous follows is_anonymous, on both list and fetch.
func TestListEveryone(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 21, RequireEmailVerification: true})
	defer f.Close()
	f.Seed(40)
	anon := []string{f.CreateAnonymousUser(), f.CreateAnonymousUser()}
	f.CreateRestrictedUser()
	f.Seed(40)
	f.CreateRestrictedUser()
	anon = append(anon, f.CreateAnonymousUser())
	snap := f.Snapshot()

	all := listIDs(t, clientWith(t, f, 7, false))
	if len(all) != len(snap) {
		t.Fatalf("listed %d users, the provider has %d", len(all), len(snap))
	}
	for id, raw := range snap {
		u, ok := all[id]
		if !ok {
			t.Fatalf("user %s not listed: %s", id, raw)
		}
		if u.Anonymous != isAnonymous(t, raw) {
			t.Errorf("user %s: Anonymous = %v", id, u.Anonymous)
		}
	}
	noAnon := listIDs(t, clientWith(t, f, 7, true))
	if len(noAnon) != len(snap)-len(anon) {
		t.Errorf("ExcludeAnonymous listed %d users, want %d", len(noAnon), len(snap)-len(anon))
	}
	for _, id := range anon {
		if _, ok := noAnon[id]; ok {
			t.Errorf("ExcludeAnonymous listed anonymous user %s", id)
		}
		for _, exclude := range []bool{false, true} {
			u, err := clientWith(t, f, 7, exclude).FetchUser(context.Background(), id)
			if err != nil || !u.Anonymous || u.ID != id {
				t.Errorf("FetchUser(%s) with ExcludeAnonymous=%v: %+v, %v; want the anonymous user", id, exclude, u, err)
			}
		}
	}
}

// TestExcludeAnonymousQuery: with ExcludeAnonymous the client asks for
// restricted users only, and drops an anonymous user should an answer hold
// one anyway.
func TestExcludeAnonymousQuery(t *testing.T) {
	const anonID, regularID = "0c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f61", "1c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f62"
	var query atomicQuery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query.set(r.URL.Query().Encode())
		w.Write([]byte(`{"items":[{"id":"` + anonID + `","is_anonymous":true},{"id":"` + regularID + `","is_anonymous":false}],"is_paginated":true,"pagination":{"next_cursor":null}}`))
	}))
	defer srv.Close()
	c, err := stackauth.New(stackauth.Config{ProjectID: testUUID, SecretServerKey: "ssk_stub_secret_value_42",
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: srv.URL, ExcludeAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListUsers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != 1 || page.Users[0].ID != regularID || page.Users[0].Anonymous {
		t.Errorf("page = %+v; want only the regular user", page.Users)
	}
	if q := query.get(); !strings.Contains(q, "include_restricted=true") || strings.Contains(q, "include_anonymous") || strings.Contains(q, "only_anonymous") {
		t.Errorf("list query %q; want include_restricted=true and no anonymous flag", q)
	}
}

// TestUpperCaseIDsCanonical: Stack Auth ids are UUIDs compared without
// regard to case. An API answering in upper case gives users whose ID and
// raw object carry the lower-case id, on fetch and list alike, and its
// upper-case cursors still page through every user once.
func TestUpperCaseIDsCanonical(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 22, UpperCaseIDs: true})
	defer f.Close()
	ids := f.Seed(23)
	c := clientWith(t, f, 5, false)
	check := func(u provider.User, id string) {
		t.Helper()
		var obj struct{ ID string }
		if err := json.Unmarshal(u.Raw, &obj); err != nil {
			t.Fatal(err)
		}
		if u.ID != id || obj.ID != id {
			t.Errorf("user %s: ID %q, raw id %q; want both lower case", id, u.ID, obj.ID)
		}
	}
	for _, id := range []string{ids[0], strings.ToUpper(ids[1])} {
		u, err := c.FetchUser(context.Background(), id)
		if err != nil {
			t.Fatalf("FetchUser(%s): %v", id, err)
		}
		check(u, strings.ToLower(id))
	}
	page, err := c.ListUsers(context.Background(), "")
	if err != nil || page.Next != ids[5] {
		t.Fatalf("first page: next cursor %q, %v; want the lower-case id %s", page.Next, err, ids[5])
	}
	listed := listIDs(t, c)
	if len(listed) != len(ids) {
		t.Fatalf("listed %d users, want %d", len(listed), len(ids))
	}
	for _, id := range ids {
		u, ok := listed[id]
		if !ok {
			t.Fatalf("user %s not listed under its lower-case id", id)
		}
		check(u, id)
	}
}

type atomicQuery struct {
	mu sync.Mutex
	q  string
}

func (a *atomicQuery) set(q string) { a.mu.Lock(); a.q = q; a.mu.Unlock() }
func (a *atomicQuery) get() string  { a.mu.Lock(); defer a.mu.Unlock(); return a.q }
