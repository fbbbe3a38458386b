package workos_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider/workos"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// TestListIncludesEveryUser: WorkOS's GET /user_management/users has no
// filter by user state (its only filters are organization_id and email), so
// a listing without them holds every user, including ones whose email is
// not verified and ones without names. The fake refuses the filters it does
// not implement, so a client sending one would fail here rather than
// silently listing everyone.
func TestListIncludesEveryUser(t *testing.T) {
	f := workosfake.New(workosfake.Options{PageSize: 4})
	defer f.Close()
	ids := f.Seed(15)
	for _, id := range ids[:5] {
		if !f.SetUserFields(id, map[string]any{"email_verified": false}) {
			t.Fatalf("set %s unverified", id)
		}
	}
	if !f.SetUserFields(ids[6], map[string]any{"first_name": nil, "last_name": nil, "name": nil}) {
		t.Fatal("clear names")
	}
	p := f.Provider()
	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(ids) {
			t.Fatal("listing does not end")
		}
		page, err := p.ListUsers(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Users {
			listed = append(listed, u.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	sort.Strings(listed)
	want := append([]string(nil), ids...)
	sort.Strings(want)
	if strings.Join(listed, ",") != strings.Join(want, ",") {
		t.Errorf("listed %v, want every user %v", listed, want)
	}

	for _, q := range []string{"organization_id=org_01EHZNVPK3SFK441A1RGBFSHRT", "email=a@example.com", "organization=org_01EHZNVPK3SFK441A1RGBFSHRT"} {
		req, err := http.NewRequest(http.MethodGet, f.URL()+"/user_management/users?"+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.Env()["WORKOS_API_KEY"])
		resp, err := f.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("fake answered %s with %d, want 422 (filter not implemented)", q, resp.StatusCode)
		}
	}
}

// TestListWithoutObjectKey: WorkOS's own SDK fixtures show list answers
// without "object":"list" (only data and list_metadata); the client reads
// them all the same.
func TestListWithoutObjectKey(t *testing.T) {
	body := `{"data":[{"object":"user","id":"user_01JZ0000000000000000000001","first_name":null,"last_name":null,` +
		`"profile_picture_url":null,"email":"x@example.org","email_verified":false,"last_sign_in_at":null,` +
		`"created_at":"2025-02-03T04:05:06.789Z","updated_at":"2025-02-03T04:05:06.789Z"}],` +
		`"list_metadata":{"before":null,"after":"user_01JZ0000000000000000000001"}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := workos.New(workos.Config{APIKey: "sk_test_x", APIURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListUsers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != 1 || page.Users[0].ID != "user_01JZ0000000000000000000001" || page.Next != "user_01JZ0000000000000000000001" {
		t.Fatalf("got %+v", page)
	}
	if u := page.Users[0]; u.Name != nil || u.Email == nil || *u.Email != "x@example.org" || u.CreatedAt == nil {
		t.Errorf("columns: name %v email %v created %v", u.Name, u.Email, u.CreatedAt)
	}
}
