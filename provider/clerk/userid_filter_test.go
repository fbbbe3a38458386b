package clerk_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/providertest/oascheck"
)

// TestFakeUserIDFilter: clerkfake's list honours user_id as Clerk documents
// it: repeatable, each id optionally prefixed "+" (include) or "-"
// (exclude), unknown ids ignored, combined with the other filters and the
// limit.
func TestFakeUserIDFilter(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	ids := f.Seed(10)
	limited := func(limit string, vals ...string) string {
		v := url.Values{"limit": {limit}}
		for _, s := range vals {
			v.Add("user_id", s)
		}
		return v.Encode()
	}
	q := func(vals ...string) string { return limited("500", vals...) }
	for _, tc := range []struct {
		name  string
		query string
		want  []string
	}{
		{"one", q(ids[3]), ids[3:4]},
		{"several", q(ids[1], ids[4], ids[7]), []string{ids[1], ids[4], ids[7]}},
		{"plus prefix", q("+"+ids[1], ids[2]), ids[1:3]},
		{"unknown ignored", q(ids[5], "user_2doesnotexist"), ids[5:6]},
		{"only unknown", q("user_2doesnotexist"), nil},
		{"repeated", q(ids[5], ids[5]), ids[5:6]},
		{"include and exclude", q(ids[1], ids[2], "-"+ids[2]), ids[1:2]},
		{"exclude only", q("-"+ids[0], "-"+ids[9]), ids[1:9]},
		{"with limit", limited("2", ids[1], ids[2], ids[3]), nil}, // checked below
	} {
		got := rawList(t, f, tc.query)
		if tc.name == "with limit" {
			if len(got) != 2 {
				t.Errorf("%s: %d users, want 2", tc.name, len(got))
			}
			continue
		}
		if !sameSet(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// The default order (newest first) holds within the filter.
	got := rawList(t, f, q(ids[2], ids[8], ids[5]))
	if len(got) != 3 || got[0] != ids[8] || got[2] != ids[2] {
		t.Errorf("default order: %v, want %s first and %s last", got, ids[8], ids[2])
	}
	// The count endpoint filters alike.
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/users/count?"+q(ids[1], ids[2]), nil)
	req.Header.Set("Authorization", "Bearer "+f.Env()["CLERK_SECRET_KEY"])
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if !strings.Contains(body, `"total_count":2`) {
		t.Errorf("count with two ids: %s", body)
	}
}

// TestFakeUserIDLimitOpenAPI: more than 100 user_id values are refused with
// 422 in Clerk's error format (validated against Clerk's document); 100 are
// accepted. Batched lookups pass the document's request and response checks.
func TestFakeUserIDLimitOpenAPI(t *testing.T) {
	doc := clerkSpec(t)
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	ids := f.Seed(101)
	chk := oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: clerkUndeclared(doc, t)}, nil)
	for _, n := range []int{100, 101} {
		v := url.Values{"limit": {"100"}, "user_id": ids[:n]}
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/users?"+v.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+f.Env()["CLERK_SECRET_KEY"])
		_, status, err := chk.Probe(f.HTTPClient().Transport, req)
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusOK
		if n > clerkfake.MaxUserIDs {
			want = http.StatusUnprocessableEntity
		}
		if status != want {
			t.Errorf("%d user ids: HTTP %d, want %d", n, status, want)
		}
	}
	if clerkfake.MaxUserIDs != clerk.MaxBatch {
		t.Errorf("clerkfake accepts %d ids, the client sends up to %d", clerkfake.MaxUserIDs, clerk.MaxBatch)
	}

	// Batched lookups through the checking transport (request parameters
	// and the bare User array validated).
	g := newGate()
	cov := &oascheck.Coverage{}
	var chk2 *oascheck.Checker
	f2 := clerkfake.New(clerkfake.Options{WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		return g.wrap(chk2.Transport(rt))
	}})
	defer f2.Close()
	defer g.open()
	chk2 = oascheck.New(t, doc, f2.URL(), oascheck.Options{Undeclared: clerkUndeclared(doc, t)}, cov)
	ids = f2.Seed(40)
	f2.DeleteUser(ids[39])
	c := f2.Provider().(*clerk.Client)
	waitFirst, _ := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
	wait := fetchAll(context.Background(), c, ids[2:])
	waitFor(t, "38 ids to queue", func() bool { return clerk.LoaderQueued(c) == 38 })
	g.open()
	waitFirst()
	for i, r := range wait() {
		if r.err != nil && ids[2+i] != ids[39] {
			t.Fatalf("FetchUser(%s): %v", ids[2+i], r.err)
		}
	}
	for _, want := range []struct {
		op     string
		status int
	}{{"GetUserList", 200}, {"GetUser", 200}, {"GetUser", 404}} {
		if cov.Count(want.op, want.status) == 0 {
			t.Errorf("no %s answer %d was validated (validated: %s)", want.op, want.status, cov)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
