package stackauth_test

import (
	"context"
	"encoding/json"
	"errors"
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

const testUUID = "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"

func newFake(t *testing.T, seed int64) *stackfake.Fake {
	t.Helper()
	f := stackfake.New(stackfake.Options{Seed: seed})
	t.Cleanup(f.Close)
	return f
}

// clientFor builds a client for the fake with the given page size.
func clientFor(t *testing.T, f *stackfake.Fake, pageSize int) *stackauth.Client {
	t.Helper()
	env := f.Env()
	c, err := stackauth.New(stackauth.Config{
		ProjectID:       env["STACK_PROJECT_ID"],
		SecretServerKey: env["STACK_SECRET_SERVER_KEY"],
		WebhookSecret:   env["STACK_WEBHOOK_SECRET"],
		APIURL:          f.URL() + "/", // a trailing slash is tolerated
		PageSize:        pageSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewValidation(t *testing.T) {
	const secretKey = "ssk_supersecretvalue123"
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	good := stackauth.Config{ProjectID: testUUID, SecretServerKey: secretKey, WebhookSecret: whsec}
	c, err := stackauth.New(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "stackauth" {
		t.Errorf("Name() = %q", c.Name())
	}
	if got := c.ResumeCursor(testUUID); got != testUUID {
		t.Errorf("ResumeCursor = %q", got)
	}
	cases := []struct {
		name string
		mod  func(*stackauth.Config)
		want string
	}{
		{"no project", func(c *stackauth.Config) { c.ProjectID = "" }, "ProjectID"},
		{"project with newline", func(c *stackauth.Config) { c.ProjectID = "p\nx" }, "ProjectID"},
		{"no key", func(c *stackauth.Config) { c.SecretServerKey = "" }, "SecretServerKey"},
		{"key with space", func(c *stackauth.Config) { c.SecretServerKey = secretKey + " x" }, "SecretServerKey"},
		{"no webhook secret", func(c *stackauth.Config) { c.WebhookSecret = "" }, "WebhookSecret"},
		{"bad base64 secret", func(c *stackauth.Config) { c.WebhookSecret = "whsec_not*base64!!secretvalue" }, "WebhookSecret"},
		{"empty key secret", func(c *stackauth.Config) { c.WebhookSecret = "whsec_" }, "WebhookSecret"},
		{"secret with newline", func(c *stackauth.Config) { c.WebhookSecret = whsec + "\n" }, "WebhookSecret"},
		{"relative url", func(c *stackauth.Config) { c.APIURL = "api.stack-auth.com" }, "APIURL"},
		{"negative page", func(c *stackauth.Config) { c.PageSize = -1 }, "PageSize"},
		{"huge page", func(c *stackauth.Config) { c.PageSize = 1001 }, "PageSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mod(&cfg)
			_, err := stackauth.New(cfg)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %s", msg, tc.want)
			}
			for _, secret := range []string{secretKey, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "not*base64!!secretvalue"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks a secret", msg)
				}
			}
		})
	}
}

func TestFetchUser(t *testing.T) {
	f := newFake(t, 1)
	ids := f.Seed(200)
	c := f.Provider()
	snap := f.Snapshot()
	ctx := context.Background()
	sawNilName := false
	for _, id := range ids[:200] {
		u, err := c.FetchUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(u.Raw) != string(snap[id]) {
			t.Fatalf("Raw differs from the snapshot:\n%s\n%s", u.Raw, snap[id])
		}
		var w struct {
			ID          string  `json:"id"`
			DisplayName *string `json:"display_name"`
			Email       *string `json:"primary_email"`
			SignedUp    int64   `json:"signed_up_at_millis"`
		}
		if err := json.Unmarshal(u.Raw, &w); err != nil {
			t.Fatal(err)
		}
		if u.ID != id || w.ID != id {
			t.Fatalf("ID = %q, want %q", u.ID, id)
		}
		if !equalPtr(u.Name, w.DisplayName) || !equalPtr(u.Email, w.Email) {
			t.Fatalf("name/email mismatch: %v %v vs %s", u.Name, u.Email, u.Raw)
		}
		if u.Name == nil {
			sawNilName = true
		}
		if u.CreatedAt == nil || u.CreatedAt.UnixMilli() != w.SignedUp || u.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt = %v, want %d ms", u.CreatedAt, w.SignedUp)
		}
		if u.UpdatedAt != nil {
			t.Fatal("UpdatedAt set for Stack Auth")
		}
	}
	if !sawNilName {
		t.Error("no user with a null display_name among 200: the fake's data is not varied enough")
	}

	// Upper-case ids resolve (Stack stores UUIDs), and come back canonical.
	u, err := c.FetchUser(ctx, strings.ToUpper(ids[0]))
	if err != nil || u.ID != ids[0] {
		t.Fatalf("upper-case fetch: %v, %v", u.ID, err)
	}

	// Deleted and unknown users.
	f.DeleteUser(ids[0])
	for _, id := range []string{ids[0], testUUID} {
		if _, err := c.FetchUser(ctx, id); !errors.Is(err, provider.ErrUserNotFound) {
			t.Errorf("FetchUser(%s) = %v, want ErrUserNotFound", id, err)
		}
	}
	// Ids no Stack user can have are not found, without asking.
	before := f.Requests()
	for _, id := range []string{"", "not-a-uuid", "../users", testUUID + "\x00"} {
		if _, err := c.FetchUser(ctx, id); !errors.Is(err, provider.ErrUserNotFound) {
			t.Errorf("FetchUser(%q) = %v, want ErrUserNotFound", id, err)
		}
	}
	if f.Requests() != before {
		t.Error("invalid ids reached the API")
	}
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && (b == nil || *b == "")
	}
	return *a == *b
}

func TestErrorClassification(t *testing.T) {
	f := newFake(t, 2)
	ids := f.Seed(3)
	c := f.Provider()
	ctx := context.Background()

	// Bad credentials: 401, and the key never appears in the message.
	_, err := f.ProviderWithBadCredentials().FetchUser(ctx, ids[0])
	if !errors.Is(err, provider.ErrBadCredentials) {
		t.Fatalf("bad key: %v", err)
	}
	if !strings.Contains(err.Error(), "INVALID_SECRET_SERVER_KEY") {
		t.Errorf("bad key error does not name Stack's code: %v", err)
	}
	if _, err := f.ProviderWithBadCredentials().ListUsers(ctx, ""); !errors.Is(err, provider.ErrBadCredentials) {
		t.Fatalf("bad key list: %v", err)
	}

	// 429 with Retry-After.
	f.FailNext(1, http.StatusTooManyRequests, 1500*time.Millisecond)
	_, err = c.FetchUser(ctx, ids[0])
	var rl *provider.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("429: %v (%#v)", err, rl)
	}
	f.FailNext(1, http.StatusTooManyRequests, 0)
	_, err = c.ListUsers(ctx, "")
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("429 list: %v", err)
	}

	// 5xx.
	for _, status := range []int{500, 502, 503} {
		f.FailNext(1, status, 0)
		_, err = c.FetchUser(ctx, ids[0])
		var se *provider.StatusError
		if !errors.As(err, &se) || se.StatusCode != status || !strings.Contains(se.Body, "injected") {
			t.Fatalf("%d: %v", status, err)
		}
	}

	// Connection reset: a plain (transient) error, not a classified one.
	f.FailNext(2, 0, 0)
	_, err = c.FetchUser(ctx, ids[0])
	if err == nil || errors.Is(err, provider.ErrUserNotFound) || errors.Is(err, provider.ErrBadCredentials) {
		t.Fatalf("reset: %v", err)
	}
	var se *provider.StatusError
	if errors.As(err, &se) {
		t.Fatalf("reset classified as a status: %v", err)
	}
	f.ClearFaults()
	if _, err := c.FetchUser(ctx, ids[0]); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}

	// Timeouts come back as errors (the context's deadline).
	f.SetLatency(time.Second)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = c.FetchUser(tctx, ids[0])
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	f.ClearFaults()
}

// stubServer answers every request with handler and records the requests.
func stubServer(t *testing.T, handler http.HandlerFunc) (*stackauth.Client, *atomic.Pointer[http.Request], string) {
	t.Helper()
	var last atomic.Pointer[http.Request]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r.Clone(context.Background()))
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	const key = "ssk_stub_secret_value_42"
	c, err := stackauth.New(stackauth.Config{
		ProjectID: testUUID, SecretServerKey: key,
		WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		APIURL:        srv.URL, HTTPClient: srv.Client(), PageSize: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, &last, key
}

func TestRequestShape(t *testing.T) {
	c, last, key := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/users") {
			w.Write([]byte(`{"items":[{"id":"` + testUUID + `"}],"is_paginated":true,"pagination":{"next_cursor":null}}`))
			return
		}
		w.Write([]byte(`{"id":"` + testUUID + `","display_name":"X","signed_up_at_millis":1.5}`))
	})
	ctx := context.Background()
	if _, err := c.FetchUser(ctx, testUUID); err != nil {
		t.Fatal(err)
	}
	r := last.Load()
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/users/"+testUUID {
		t.Errorf("request %s %s", r.Method, r.URL)
	}
	var stackHeaders []string
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-stack-") {
			stackHeaders = append(stackHeaders, strings.ToLower(k))
		}
	}
	slices.Sort(stackHeaders)
	if want := []string{"x-stack-access-type", "x-stack-project-id", "x-stack-secret-server-key"}; !slices.Equal(stackHeaders, want) {
		t.Errorf("stack headers = %v, want %v", stackHeaders, want)
	}
	if r.Header.Get("x-stack-access-type") != "server" || r.Header.Get("x-stack-project-id") != testUUID || r.Header.Get("x-stack-secret-server-key") != key {
		t.Errorf("header values wrong: %v", r.Header)
	}

	page, err := c.ListUsers(ctx, "")
	if err != nil || len(page.Users) != 1 || page.Next != "" {
		t.Fatalf("list: %+v, %v", page, err)
	}
	q := last.Load().URL.Query()
	if q.Get("limit") != "5" || q.Get("order_by") != "signed_up_at" || q.Has("cursor") || q.Has("desc") {
		t.Errorf("list query = %v", q)
	}
	// Every user: the endpoint leaves anonymous and restricted users out
	// unless asked, and include_anonymous=true asks for both.
	if q.Get("include_anonymous") != "true" || q.Has("include_restricted") || q.Has("only_anonymous") {
		t.Errorf("list query = %v; want include_anonymous=true and no other filter", q)
	}
	if _, err := c.ListUsers(ctx, testUUID); err != nil {
		t.Fatal(err)
	}
	if q := last.Load().URL.Query(); q.Get("cursor") != testUUID {
		t.Errorf("cursor not sent: %v", q)
	}
}

func TestStubResponses(t *testing.T) {
	type answer struct {
		status int
		header map[string]string
		body   string
	}
	var current atomic.Pointer[answer]
	c, _, key := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		a := current.Load()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	})
	ctx := context.Background()
	set := func(status int, header map[string]string, body string) {
		current.Store(&answer{status, header, body})
	}

	// USER_NOT_FOUND in Stack's own format: the header and the body's code.
	set(404, map[string]string{"X-Stack-Known-Error": "USER_NOT_FOUND", "Content-Type": "application/json; charset=utf-8"},
		`{"code":"USER_NOT_FOUND","error":"User not found."}`)
	if _, err := c.FetchUser(ctx, testUUID); !errors.Is(err, provider.ErrUserNotFound) {
		t.Errorf("Stack's USER_NOT_FOUND: %v", err)
	}
	// The same answer from a release that names the header x-hexclave-.
	set(404, map[string]string{"X-Hexclave-Known-Error": "USER_NOT_FOUND", "Content-Type": "application/json; charset=utf-8"},
		`{"code":"USER_NOT_FOUND","error":"User not found."}`)
	if _, err := c.FetchUser(ctx, testUUID); !errors.Is(err, provider.ErrUserNotFound) {
		t.Errorf("USER_NOT_FOUND under x-hexclave-known-error: %v", err)
	}
	// Half of the format (only the header, or only the body) is not Stack's
	// answer: not a deletion.
	for name, a := range map[string]answer{
		"header only": {404, map[string]string{"X-Stack-Known-Error": "USER_NOT_FOUND"}, ""},
		"body only":   {404, nil, `{"code":"USER_NOT_FOUND","error":"User not found."}`},
	} {
		set(a.status, a.header, a.body)
		_, err := c.FetchUser(ctx, testUUID)
		var se *provider.StatusError
		if errors.Is(err, provider.ErrUserNotFound) || !errors.As(err, &se) || se.StatusCode != 404 || !strings.Contains(err.Error(), "STACK_API_URL") {
			t.Errorf("%s 404: %v, want a retried provider error that names STACK_API_URL", name, err)
		}
	}
	// A 404 that is not Stack's USER_NOT_FOUND (wrong URL, proxy) must not
	// look like a deletion.
	set(404, nil, "<html>Not Found</html>")
	_, err := c.FetchUser(ctx, testUUID)
	var se *provider.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || errors.Is(err, provider.ErrUserNotFound) {
		t.Errorf("bare 404: %v", err)
	}
	// 403.
	set(403, nil, `{"code":"INSUFFICIENT_ACCESS_TYPE","error":"no"}`)
	if _, err := c.FetchUser(ctx, testUUID); !errors.Is(err, provider.ErrBadCredentials) || !strings.Contains(err.Error(), "INSUFFICIENT_ACCESS_TYPE") {
		t.Errorf("403: %v", err)
	}
	// 429 with an HTTP-date.
	set(429, map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, "")
	var rl *provider.RateLimitedError
	if _, err := c.FetchUser(ctx, testUUID); !errors.As(err, &rl) || rl.RetryAfter < 58*time.Minute || rl.RetryAfter > time.Hour {
		t.Errorf("429 date: %v", err)
	}
	// 429 without Retry-After.
	set(429, nil, "")
	if _, err := c.FetchUser(ctx, testUUID); !errors.As(err, &rl) || rl.RetryAfter != 0 {
		t.Errorf("429 bare: %v", err)
	}
	// An echoed key never reaches an error message; the snippet is short.
	set(500, nil, "boom: key="+key+" "+strings.Repeat("x", 5000))
	_, err = c.FetchUser(ctx, testUUID)
	if !errors.As(err, &se) || se.StatusCode != 500 || strings.Contains(err.Error(), key) || len(se.Body) > 256 {
		t.Errorf("500 echo: %v", err)
	}
	// Redirects are not followed (they would carry the key elsewhere).
	set(307, map[string]string{"Location": "https://attacker.example/steal"}, "")
	if _, err := c.FetchUser(ctx, testUUID); !errors.As(err, &se) || se.StatusCode != 307 {
		t.Errorf("redirect: %v", err)
	}
	// Malformed 200s.
	for _, body := range []string{`{"display_name":"x"}`, `{"id":7}`, `not json`, `{"id":"` + testUUID[:35] + `1"}`} {
		set(200, nil, body)
		if _, err := c.FetchUser(ctx, testUUID); err == nil || errors.Is(err, provider.ErrUserNotFound) {
			t.Errorf("FetchUser accepted %s: %v", body, err)
		}
	}
	for _, body := range []string{`{"pagination":{"next_cursor":null}}`, `{"items":[{"email":"x"}]}`, `[]`, `{"items":[],"pagination":{"next_cursor":"` + testUUID + `"}}`} {
		set(200, nil, body)
		if _, err := c.ListUsers(ctx, testUUID); err == nil {
			t.Errorf("ListUsers accepted %s", body)
		}
	}

	// Cursor errors: an empty page, or a 4xx about the cursor.
	set(200, nil, `{"items":[],"is_paginated":true,"pagination":{"next_cursor":null}}`)
	if _, err := c.ListUsers(ctx, testUUID); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("empty page after a cursor: %v", err)
	}
	if page, err := c.ListUsers(ctx, ""); err != nil || len(page.Users) != 0 || page.Next != "" {
		t.Errorf("empty first page (no users) must be a normal end: %+v %v", page, err)
	}
	set(400, map[string]string{"X-Stack-Known-Error": "SCHEMA_ERROR"}, `{"code":"SCHEMA_ERROR","error":"query.cursor must be a valid UUID"}`)
	if _, err := c.ListUsers(ctx, testUUID); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("400 about cursor: %v", err)
	}
	set(404, map[string]string{"X-Stack-Known-Error": "USER_NOT_FOUND"}, `{"code":"USER_NOT_FOUND","error":"User not found."}`)
	if _, err := c.ListUsers(ctx, testUUID); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("404 for cursor: %v", err)
	}
	set(400, nil, `{"code":"SCHEMA_ERROR","error":"query.limit must be positive"}`)
	if _, err := c.ListUsers(ctx, testUUID); errors.Is(err, provider.ErrCursorNotFound) || !errors.As(err, &se) {
		t.Errorf("400 not about cursor: %v", err)
	}
	set(401, nil, `{"code":"INVALID_SECRET_SERVER_KEY","error":"cursor"}`)
	if _, err := c.ListUsers(ctx, testUUID); !errors.Is(err, provider.ErrBadCredentials) {
		t.Errorf("401 with cursor: %v", err)
	}
}

// listAll pages through the list and returns the ids in order.
func listAll(t *testing.T, p provider.Provider) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("list does not end")
		}
		page, err := p.ListUsers(context.Background(), cursor)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, u := range page.Users {
			ids = append(ids, u.ID)
		}
		if page.Next == "" {
			return ids
		}
		cursor = page.Next
	}
}

func TestPagination(t *testing.T) {
	f := newFake(t, 3)
	seeded := f.Seed(2500)
	if got := listAll(t, f.Provider()); !slices.Equal(got, seeded) {
		t.Fatalf("default page size: listed %d users, want the %d seeded in order", len(got), len(seeded))
	}
	// Small pages, with users created after the seed and some deleted.
	c := clientFor(t, f, 7)
	extra := f.CreateUser()
	for _, id := range seeded[100:200] {
		f.DeleteUser(id)
	}
	want := slices.Concat(seeded[:100], seeded[200:], []string{extra})
	got := listAll(t, c)
	if !slices.Equal(got, want) {
		t.Fatalf("small pages: listed %d users, want %d (gap or duplicate)", len(got), len(want))
	}
	page, err := c.ListUsers(context.Background(), "")
	if err != nil || len(page.Users) != 7 || page.Next != want[7] {
		t.Fatalf("next_cursor must name the first user of the next page: %v %v", page.Next, err)
	}
}

func TestCursorDeletedBetweenPages(t *testing.T) {
	f := newFake(t, 4)
	seeded := f.Seed(30)
	c := clientFor(t, f, 10)
	ctx := context.Background()
	first, err := c.ListUsers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.Next != seeded[10] {
		t.Fatalf("Next = %s, want %s", first.Next, seeded[10])
	}
	f.DeleteUser(first.Next)
	if _, err := c.ListUsers(ctx, first.Next); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Fatalf("deleted cursor: err = %v, want ErrCursorNotFound", err)
	}
	// Resume from the last user seen: it is listed again (inclusive cursor).
	last := first.Users[len(first.Users)-1].ID
	resumed, err := c.ListUsers(ctx, c.ResumeCursor(last))
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Users[0].ID != last || resumed.Users[1].ID != seeded[11] {
		t.Fatalf("resumed page starts %s, %s", resumed.Users[0].ID, resumed.Users[1].ID)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFake(t, 5)
	ids := f.Seed(300)
	c := f.Provider()
	done := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < len(ids); i += 8 {
				switch i % 4 {
				case 0:
					f.UpdateUser(ids[i])
				case 1:
					f.DeleteUser(ids[i])
				case 2:
					f.CreateUser()
				}
				if _, err := c.FetchUser(context.Background(), ids[i]); err != nil && !errors.Is(err, provider.ErrUserNotFound) {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got := listAll(t, clientFor(t, f, 50))
	snap := f.Snapshot()
	if len(got) != len(snap) {
		t.Fatalf("listed %d, snapshot has %d", len(got), len(snap))
	}
	for _, id := range got {
		if _, ok := snap[id]; !ok {
			t.Fatalf("listed %s, not in the snapshot", id)
		}
	}
}
