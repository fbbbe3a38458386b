package stackfake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func call(t testing.TB, f *stackfake.Fake, path string, headers map[string]string) apiResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, f.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apiResponse{resp.StatusCode, resp.Header, body}
}

func serverHeaders(f *stackfake.Fake) map[string]string {
	env := f.Env()
	return map[string]string{
		"X-Stack-Access-Type":       "server",
		"X-Stack-Project-Id":        env["STACK_PROJECT_ID"],
		"X-Stack-Secret-Server-Key": env["STACK_SECRET_SERVER_KEY"],
	}
}

func expectKnownError(t *testing.T, r apiResponse, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if got := r.header.Get("X-Stack-Known-Error"); got != code {
		t.Fatalf("X-Stack-Known-Error = %q, want %q", got, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	if body["code"] != code || body["error"] == "" {
		t.Fatalf("error body = %s", r.body)
	}
	return body
}

func TestAuthentication(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 1})
	defer f.Close()
	id := f.CreateUser()
	good := serverHeaders(f)
	with := func(mod func(map[string]string)) map[string]string {
		h := map[string]string{}
		for k, v := range good {
			h[k] = v
		}
		mod(h)
		return h
	}
	for _, path := range []string{"/api/v1/users", "/api/v1/users/" + id} {
		expectKnownError(t, call(t, f, path, nil), 400, "ACCESS_TYPE_REQUIRED")
		expectKnownError(t, call(t, f, path, with(func(h map[string]string) { delete(h, "X-Stack-Access-Type") })), 400, "PROJECT_KEY_WITHOUT_ACCESS_TYPE")
		expectKnownError(t, call(t, f, path, with(func(h map[string]string) { delete(h, "X-Stack-Project-Id") })), 400, "ACCESS_TYPE_WITHOUT_PROJECT_ID")
		expectKnownError(t, call(t, f, path, with(func(h map[string]string) { delete(h, "X-Stack-Secret-Server-Key") })), 401, "SERVER_AUTHENTICATION_REQUIRED")
		body := expectKnownError(t, call(t, f, path, with(func(h map[string]string) { h["X-Stack-Secret-Server-Key"] = "ssk_nope" })), 401, "INVALID_SECRET_SERVER_KEY")
		want := `The secret server key is not valid for the project "` + good["X-Stack-Project-Id"] + `". Does the project and/or the key exist?`
		if body["error"] != want {
			t.Errorf("message %q, want %q", body["error"], want)
		}
		if d, _ := body["details"].(map[string]any); d["project_id"] != good["X-Stack-Project-Id"] {
			t.Errorf("details = %v", body["details"])
		}
		expectKnownError(t, call(t, f, path, with(func(h map[string]string) { h["X-Stack-Project-Id"] = "other" })), 401, "INVALID_SECRET_SERVER_KEY")
		// Header names are case-insensitive.
		lower := map[string]string{}
		for k, v := range good {
			lower[strings.ToLower(k)] = v
		}
		if r := call(t, f, path, lower); r.status != 200 {
			t.Fatalf("valid request: %d %s", r.status, r.body)
		}
	}
}

func TestGetUser(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 2})
	defer f.Close()
	ids := f.Seed(50)
	h := serverHeaders(f)
	snap := f.Snapshot()
	fields := []string{"id", "primary_email", "primary_email_verified", "primary_email_auth_enabled", "display_name",
		"selected_team", "selected_team_id", "profile_image_url", "signed_up_at_millis", "has_password", "otp_auth_enabled",
		"passkey_auth_enabled", "client_metadata", "client_read_only_metadata", "server_metadata", "last_active_at_millis",
		"oauth_providers", "auth_with_email", "requires_totp_mfa",
		// Newer Stack Auth versions: anonymous and restricted users, country, risk scores.
		"is_anonymous", "is_restricted", "restricted_reason", "restricted_by_admin", "restricted_by_admin_reason",
		"restricted_by_admin_private_details", "country_code", "risk_scores"}
	var nullNames, serverMeta int
	for _, id := range ids {
		r := call(t, f, "/api/v1/users/"+id, h)
		if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("get: %d %v", r.status, r.header)
		}
		if !bytes.Equal(r.body, snap[id]) {
			t.Fatalf("get differs from Snapshot")
		}
		var u map[string]any
		if err := json.Unmarshal(r.body, &u); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, r.body)
		}
		for _, k := range fields {
			if _, ok := u[k]; !ok {
				t.Fatalf("field %s missing: %s", k, r.body)
			}
		}
		if len(u) != len(fields) {
			t.Fatalf("%d fields, want %d", len(u), len(fields))
		}
		if u["display_name"] == nil {
			nullNames++
		}
		if u["server_metadata"] != nil {
			serverMeta++
		}
		if u["last_active_at_millis"].(float64) < u["signed_up_at_millis"].(float64) {
			t.Fatal("last active before sign-up")
		}
	}
	if nullNames == 0 || nullNames == len(ids) || serverMeta == 0 || serverMeta == len(ids) {
		t.Errorf("data not varied: %d null names, %d with server_metadata, of %d", nullNames, serverMeta, len(ids))
	}
	// Same seed, same data.
	g := stackfake.New(stackfake.Options{Seed: 2})
	defer g.Close()
	if ids2 := g.Seed(50); ids2[49] != ids[49] || !bytes.Equal(g.Snapshot()[ids[7]], snap[ids[7]]) {
		t.Error("Seed is not deterministic")
	}

	expectKnownError(t, call(t, f, "/api/v1/users/not-a-uuid", h), 400, "SCHEMA_ERROR")
	nf := expectKnownError(t, call(t, f, "/api/v1/users/5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60", h), 404, "USER_NOT_FOUND")
	if nf["error"] != "User not found." || len(nf) != 2 {
		t.Errorf("404 body = %v", nf)
	}
	// Upper case resolves to the same user.
	if r := call(t, f, "/api/v1/users/"+strings.ToUpper(ids[0]), h); r.status != 200 || !bytes.Equal(r.body, snap[ids[0]]) {
		t.Errorf("upper-case id: %d", r.status)
	}
	// Update changes the content; delete removes the user.
	if !f.UpdateUser(ids[0]) || bytes.Equal(f.Snapshot()[ids[0]], snap[ids[0]]) {
		t.Error("UpdateUser did not change the user")
	}
	if !f.DeleteUser(ids[0]) || f.DeleteUser(ids[0]) || f.UpdateUser(ids[0]) {
		t.Error("DeleteUser/UpdateUser results wrong")
	}
	expectKnownError(t, call(t, f, "/api/v1/users/"+ids[0], h), 404, "USER_NOT_FOUND")
}

type listBody struct {
	Items       []json.RawMessage `json:"items"`
	IsPaginated bool              `json:"is_paginated"`
	Pagination  struct {
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

func list(t *testing.T, f *stackfake.Fake, query string) listBody {
	t.Helper()
	r := call(t, f, "/api/v1/users"+query, serverHeaders(f))
	if r.status != 200 {
		t.Fatalf("list%s: %d %s", query, r.status, r.body)
	}
	var b listBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	if !b.IsPaginated || b.Items == nil {
		t.Fatalf("list shape: %s", r.body)
	}
	return b
}

func itemIDs(t *testing.T, items []json.RawMessage) []string {
	var out []string
	for _, it := range items {
		var u struct{ ID string }
		if err := json.Unmarshal(it, &u); err != nil {
			t.Fatal(err)
		}
		out = append(out, u.ID)
	}
	return out
}

func TestList(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 3})
	defer f.Close()
	ids := f.Seed(5)
	// The e2e test "lists users with pagination": limit=2, then limit=3 from
	// next_cursor, covers exactly all 5.
	p1 := list(t, f, "?limit=2")
	if got := itemIDs(t, p1.Items); len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] || p1.Pagination.NextCursor == nil || *p1.Pagination.NextCursor != ids[2] {
		t.Fatalf("page 1: %v next %v", got, p1.Pagination.NextCursor)
	}
	p2 := list(t, f, "?limit=3&cursor="+*p1.Pagination.NextCursor)
	if got := itemIDs(t, p2.Items); strings.Join(got, ",") != strings.Join(ids[2:], ",") || p2.Pagination.NextCursor != nil {
		t.Fatalf("page 2: %v next %v", got, p2.Pagination.NextCursor)
	}
	// No limit: everyone, no cursor. order_by accepted.
	if all := list(t, f, "?order_by=signed_up_at"); len(all.Items) != 5 || all.Pagination.NextCursor != nil {
		t.Fatalf("no limit: %d items", len(all.Items))
	}
	// desc.
	if d := itemIDs(t, list(t, f, "?desc=true&limit=2").Items); d[0] != ids[4] || d[1] != ids[3] {
		t.Fatalf("desc: %v", d)
	}
	// A cursor naming an absent user: 200, empty, null next_cursor.
	f.DeleteUser(ids[2])
	gone := list(t, f, "?limit=3&cursor="+ids[2])
	if len(gone.Items) != 0 || gone.Pagination.NextCursor != nil {
		t.Fatalf("deleted cursor: %+v", gone)
	}
	// Bad parameters.
	h := serverHeaders(f)
	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=abc", "?limit=1.5", "?cursor=nope", "?order_by=email", "?desc=maybe"} {
		expectKnownError(t, call(t, f, "/api/v1/users"+q, h), 400, "SCHEMA_ERROR")
	}
}

func TestDeletionKeepsOrder(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 4})
	defer f.Close()
	ids := f.Seed(1000)
	var want []string
	for i, id := range ids { // delete 60%, enough to compact
		if i%5 < 3 {
			f.DeleteUser(id)
		} else {
			want = append(want, id)
		}
	}
	want = append(want, f.CreateUser())
	var got []string
	q := "?limit=37"
	for {
		b := list(t, f, q)
		got = append(got, itemIDs(t, b.Items)...)
		if b.Pagination.NextCursor == nil {
			break
		}
		q = "?limit=37&cursor=" + *b.Pagination.NextCursor
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %d users, want %d in order", len(got), len(want))
	}
	if f.Len() != len(want) || len(f.Snapshot()) != len(want) {
		t.Fatal("Len/Snapshot disagree with the list")
	}
}

func TestFaults(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 5})
	defer f.Close()
	h := serverHeaders(f)
	before := f.Requests()
	f.FailNext(2, 503, 0)
	for range 2 {
		if r := call(t, f, "/api/v1/users", h); r.status != 503 {
			t.Fatalf("status %d, want 503", r.status)
		}
	}
	if r := call(t, f, "/api/v1/users", h); r.status != 200 {
		t.Fatalf("after faults: %d", r.status)
	}
	f.FailNext(-1, 429, 0)
	for range 3 {
		if r := call(t, f, "/api/v1/users", h); r.status != 429 || r.header.Get("Retry-After") != "1" {
			t.Fatalf("429: %d %q", r.status, r.header.Get("Retry-After"))
		}
	}
	f.ClearFaults()
	if got := f.Requests() - before; got != 6 {
		t.Fatalf("Requests counted %d, want 6", got)
	}
	// A reset: the client sees an error, no answer.
	f.FailNext(1, 0, 0)
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/api/v1/users", nil)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	if resp, err := tr.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatalf("reset: got HTTP %d", resp.StatusCode)
	}
}

func TestWebhookBodies(t *testing.T) {
	f := stackfake.New(stackfake.Options{Seed: 6})
	defer f.Close()
	id := f.CreateUser()
	body, h := f.Webhook(provider.EventUserDeleted, id)
	if string(body) != `{"type":"user.deleted","data":{"id":"`+id+`","teams":[]}}` {
		t.Fatalf("deleted body: %s", body)
	}
	if h.Get("svix-id") == "" || h.Get("svix-timestamp") == "" || !strings.HasPrefix(h.Get("svix-signature"), "v1,") {
		t.Fatalf("headers: %v", h)
	}
	_, h2 := f.Webhook(provider.EventUserDeleted, id)
	if h2.Get("svix-id") == h.Get("svix-id") {
		t.Fatal("svix-id reused across messages")
	}
	body, _ = f.Webhook(provider.EventUserChanged, id)
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "user.created" || !bytes.Equal(env.Data, f.Snapshot()[id]) {
		t.Fatalf("changed body: %v %s", err, body)
	}
	f.UpdateUser(id)
	f.DeleteUser(id)
	body, _ = f.Webhook(provider.EventUserChanged, id) // a late event: the last state
	if err := json.Unmarshal(body, &env); err != nil || env.Type != "user.updated" || !bytes.Contains(env.Data, []byte(id)) {
		t.Fatalf("late body: %v %s", err, body)
	}
	body, _ = f.Webhook(provider.EventUserChanged, "weird\"id\x00")
	if !json.Valid(body) {
		t.Fatalf("invalid JSON for an odd id: %s", body)
	}
}

// TestMillionUsers checks the fake stays cheap at the scale of the benchmarks.
func TestMillionUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a million users")
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f := stackfake.New(stackfake.Options{Seed: 7})
	defer f.Close()
	ids := f.Seed(1_000_000)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perUser := float64(m1.HeapAlloc-m0.HeapAlloc) / 1e6
	t.Logf("heap per user: %.0f bytes (ids slice included)", perUser)
	if perUser > 1024 {
		t.Errorf("%.0f bytes per user, want < 1 KB", perUser)
	}
	b := list(t, f, "?limit=1000&cursor="+ids[777_777])
	if got := itemIDs(t, b.Items); len(got) != 1000 || got[0] != ids[777_777] || *b.Pagination.NextCursor != ids[778_777] {
		t.Fatal("page from the middle is wrong")
	}
}

func BenchmarkSeed(b *testing.B) {
	for b.Loop() {
		f := stackfake.New(stackfake.Options{Seed: 8})
		f.Seed(100_000)
		f.Close()
	}
}

func BenchmarkListPage1000(b *testing.B) {
	f := stackfake.New(stackfake.Options{Seed: 9})
	defer f.Close()
	ids := f.Seed(1_000_000)
	h := serverHeaders(f)
	i := 0
	for b.Loop() {
		r := call(b, f, "/api/v1/users?limit=1000&order_by=signed_up_at&cursor="+ids[(i*1000)%len(ids)], h)
		if r.status != 200 {
			b.Fatal(r.status)
		}
		i++
	}
}

func BenchmarkGetUser(b *testing.B) {
	f := stackfake.New(stackfake.Options{Seed: 10})
	defer f.Close()
	ids := f.Seed(100_000)
	h := serverHeaders(f)
	i := 0
	for b.Loop() {
		if r := call(b, f, "/api/v1/users/"+ids[i%len(ids)], h); r.status != 200 {
			b.Fatal(r.status)
		}
		i++
	}
}
