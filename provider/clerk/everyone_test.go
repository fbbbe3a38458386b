package clerk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// TestListIncludesBannedAndLockedUsers: Clerk's GET /v1/users lists every
// user unless asked to filter (its only status filter is banned=true|false;
// locked users have none), so banned and locked users, which GET
// /v1/users/{id} and the webhooks show, must come out of a full listing too.
// The fake filters as Clerk does, so a client that sent banned=false would
// fail here.
func TestListIncludesBannedAndLockedUsers(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{PageSize: 3})
	defer f.Close()
	ids := f.Seed(12)
	for _, id := range ids { // the fake bans or locks a few users at random
		if !f.SetUserFields(id, map[string]any{"banned": false, "locked": false}) {
			t.Fatalf("unban %s", id)
		}
	}
	bannedIDs := []string{ids[2], ids[5], ids[11]}
	for _, id := range bannedIDs {
		if !f.SetUserFields(id, map[string]any{"banned": true}) {
			t.Fatalf("ban %s", id)
		}
	}
	lockedID := ids[7]
	if !f.SetUserFields(lockedID, map[string]any{"locked": true, "lockout_expires_in_seconds": nil}) {
		t.Fatalf("lock %s", lockedID)
	}

	// The fake's own filter, as the real endpoint's: banned=false leaves
	// the banned users out.
	if got := rawList(t, f, "banned=false&limit=500"); len(got) != len(ids)-len(bannedIDs) {
		t.Fatalf("fake: banned=false listed %d users, want %d", len(got), len(ids)-len(bannedIDs))
	}
	if got := rawList(t, f, "banned=true&limit=500"); !sameSet(got, bannedIDs) {
		t.Fatalf("fake: banned=true listed %v, want %v", got, bannedIDs)
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
	if !sameSet(listed, ids) {
		t.Errorf("client listed %d users %v, want all %d %v", len(listed), listed, len(ids), ids)
	}
	for _, id := range append(bannedIDs, lockedID) {
		u, err := p.FetchUser(context.Background(), id)
		if err != nil {
			t.Fatalf("FetchUser(%s): %v", id, err)
		}
		var obj struct{ Banned, Locked bool }
		if err := json.Unmarshal(u.Raw, &obj); err != nil || !(obj.Banned || obj.Locked) {
			t.Errorf("FetchUser(%s) raw is neither banned nor locked: %s", id, u.Raw)
		}
	}
}

// rawList lists the fake's users with a raw query and returns their ids.
func rawList(t *testing.T, f *clerkfake.Fake, query string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.URL()+"/users?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.Env()["CLERK_SECRET_KEY"])
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /users?%s: HTTP %d", query, resp.StatusCode)
	}
	var users []struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&users); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestListSecondsSizedCreatedAt: users whose created_at is seconds-sized (as
// in some of Clerk's published payloads) are listed like any other; the list
// cursor keeps the value as the API sent it (its created_at filters compare
// with that), although the created_at column reads it as seconds.
func TestListSecondsSizedCreatedAt(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{PageSize: 2})
	defer f.Close()
	want := f.Seed(2)
	for i, created := range []int64{1611948436, 1611948437, 1611948438} {
		id := "user_seconds" + string(rune('a'+i))
		raw := `{"object":"user","id":"` + id + `","first_name":"S","last_name":null,"username":null,` +
			`"primary_email_address_id":null,"email_addresses":[],"created_at":` + jsonNum(created) +
			`,"updated_at":` + jsonNum(created) + `}`
		if _, err := f.PutUser(json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	var listed []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("listing does not end")
		}
		page, err := f.Provider().ListUsers(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Users {
			listed = append(listed, u.ID)
			if strings.HasPrefix(u.ID, "user_seconds") && (u.CreatedAt == nil || u.CreatedAt.Year() != 2021) {
				t.Errorf("%s: created_at %v, want January 2021", u.ID, u.CreatedAt)
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if !sameSet(listed, want) {
		t.Errorf("listed %v, want %v", listed, want)
	}
}
