package stackfake_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// profileFlags is what the list filters look at in a user object.
type profileFlags struct {
	ID               string                 `json:"id"`
	IsAnonymous      bool                   `json:"is_anonymous"`
	IsRestricted     bool                   `json:"is_restricted"`
	RestrictedReason *struct{ Type string } `json:"restricted_reason"`
	RestrictedByAdm  bool                   `json:"restricted_by_admin"`
	PrimaryEmail     *string                `json:"primary_email"`
	EmailVerified    bool                   `json:"primary_email_verified"`
}

func flagsOf(t *testing.T, raw json.RawMessage) profileFlags {
	t.Helper()
	var p profileFlags
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("user object: %v", err)
	}
	return p
}

// listAllIDs lists with query (without limit: everyone in one answer) and
// also page by page with a small limit, checks both agree, and returns the
// ids, sorted.
func listAllIDs(t *testing.T, f *stackfake.Fake, query string) []string {
	t.Helper()
	all := itemIDs(t, list(t, f, "?"+query).Items)
	var paged []string
	cursor := ""
	for range 1000 {
		q := "?limit=7&" + query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		b := list(t, f, q)
		paged = append(paged, itemIDs(t, b.Items)...)
		if b.Pagination.NextCursor == nil {
			break
		}
		cursor = *b.Pagination.NextCursor
	}
	if !slices.Equal(all, paged) {
		t.Fatalf("list?%s: paging with limit=7 gives %d users, one answer %d", query, len(paged), len(all))
	}
	slices.Sort(all)
	return all
}

// TestListFilters: the list leaves out anonymous and restricted users as
// Stack Auth's list endpoint does, unless asked; GET /users/{id} returns
// everyone.
func TestListFilters(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 7, RequireEmailVerification: true})
	defer f.Close()
	f.Seed(120)
	var anon, restricted []string
	for range 4 {
		anon = append(anon, f.CreateAnonymousUser())
		restricted = append(restricted, f.CreateRestrictedUser())
	}
	f.Seed(30)
	snap := f.Snapshot()

	var everyone, notAnonymous, regular, anonymous []string
	var unverified int
	for id, raw := range snap {
		p := flagsOf(t, raw)
		if p.ID != id {
			t.Fatalf("Snapshot key %s holds user %s", id, p.ID)
		}
		if p.IsRestricted != (p.RestrictedReason != nil) {
			t.Fatalf("user %s: is_restricted %v but restricted_reason %v", id, p.IsRestricted, p.RestrictedReason)
		}
		everyone = append(everyone, id)
		if p.IsAnonymous {
			anonymous = append(anonymous, id)
			if !p.IsRestricted || p.RestrictedReason.Type != "anonymous" || p.PrimaryEmail != nil {
				t.Errorf("anonymous user %s: %s", id, raw)
			}
			continue
		}
		notAnonymous = append(notAnonymous, id)
		if !p.IsRestricted {
			regular = append(regular, id)
			continue
		}
		switch {
		case p.RestrictedReason.Type == "email_not_verified" && !p.EmailVerified:
			unverified++
		case p.RestrictedReason.Type == "restricted_by_administrator" && p.RestrictedByAdm:
		default:
			t.Errorf("restricted user %s: %s", id, raw)
		}
	}
	for _, ids := range [][]string{everyone, notAnonymous, regular, anonymous} {
		slices.Sort(ids)
	}
	if len(anonymous) != len(anon) || unverified == 0 || len(regular) == 0 {
		t.Fatalf("data not varied: %d anonymous (want %d), %d unverified, %d regular", len(anonymous), len(anon), unverified, len(regular))
	}
	for _, id := range restricted {
		if p := flagsOf(t, snap[id]); !p.RestrictedByAdm || !p.IsRestricted {
			t.Errorf("CreateRestrictedUser gave %s", snap[id])
		}
	}

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", regular},
		{"include_restricted=false&include_anonymous=false", regular},
		{"include_restricted=true", notAnonymous},
		{"include_anonymous=true", everyone},
		{"include_anonymous=true&include_restricted=false", everyone},
		{"include_anonymous=true&only_anonymous=true", anonymous},
	} {
		if got := listAllIDs(t, f, c.query); !slices.Equal(got, c.want) {
			t.Errorf("list?%s: %d users, want %d", c.query, len(got), len(c.want))
		}
	}

	r := call(t, f, "/api/v1/users?only_anonymous=true", serverHeaders(f))
	if r.status != 400 || string(r.body) != "only_anonymous=true requires include_anonymous=true" {
		t.Errorf("only_anonymous without include_anonymous: %d %q", r.status, r.body)
	}
	expectKnownError(t, call(t, f, "/api/v1/users?include_anonymous=yes", serverHeaders(f)), 400, "SCHEMA_ERROR")

	// Every user, whatever the list shows, answers GET /users/{id}.
	for _, id := range append(anon, restricted...) {
		if r := call(t, f, "/api/v1/users/"+id, serverHeaders(f)); r.status != 200 || string(r.body) != string(snap[id]) {
			t.Errorf("GET %s: %d", id, r.status)
		}
	}

	// An anonymous user who signs up keeps the id and is no longer anonymous.
	if !f.UpgradeAnonymousUser(anon[0]) || f.UpgradeAnonymousUser(anon[0]) || f.UpgradeAnonymousUser(regular[0]) {
		t.Fatal("UpgradeAnonymousUser results wrong")
	}
	if p := flagsOf(t, f.Snapshot()[anon[0]]); p.IsAnonymous || p.PrimaryEmail == nil && p.RestrictedReason == nil {
		t.Errorf("upgraded user: %s", f.Snapshot()[anon[0]])
	}
	if slices.Contains(listAllIDs(t, f, "include_anonymous=true&only_anonymous=true"), anon[0]) {
		t.Error("upgraded user still listed as anonymous")
	}
}

// TestUpperCaseIDs: with UpperCaseIDs the API writes ids and cursors in
// upper case and accepts either case.
func TestUpperCaseIDs(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 8, UpperCaseIDs: true})
	defer f.Close()
	ids := f.Seed(5)
	r := call(t, f, "/api/v1/users/"+ids[2], serverHeaders(f))
	if p := flagsOf(t, r.body); r.status != 200 || p.ID != strings.ToUpper(ids[2]) {
		t.Fatalf("GET %s: %d, id %q", ids[2], r.status, p.ID)
	}
	b := list(t, f, "?limit=2")
	if got := itemIDs(t, b.Items); got[0] != strings.ToUpper(ids[0]) || b.Pagination.NextCursor == nil || *b.Pagination.NextCursor != strings.ToUpper(ids[2]) {
		t.Fatalf("list: ids %v, next %v", got, b.Pagination.NextCursor)
	}
	if got := itemIDs(t, list(t, f, "?limit=2&cursor="+*b.Pagination.NextCursor).Items); got[0] != strings.ToUpper(ids[2]) {
		t.Fatalf("list from an upper-case cursor: %v", got)
	}
}
