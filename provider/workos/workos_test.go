package workos

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

func TestMapUser(t *testing.T) {
	raw, err := os.ReadFile("testdata/user.json")
	if err != nil {
		t.Fatal(err)
	}
	u, err := mapUser(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "user_01E4ZCR3C56J083X43JQXF3JK5" || *u.Name != "Marcelina Davis" || *u.Email != "marcelina.davis@example.com" {
		t.Errorf("got %+v", u)
	}
	want := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	if !u.CreatedAt.Equal(want) || !u.UpdatedAt.Equal(want) {
		t.Errorf("times %v %v", u.CreatedAt, u.UpdatedAt)
	}
	if string(u.Raw) != string(raw) {
		t.Errorf("Raw was re-encoded")
	}

	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	cases := []struct{ raw, name, email string }{
		{`{"id":"user_1","first_name":"Ada","last_name":null,"email":"a@x.org"}`, "Ada", "a@x.org"},
		{`{"id":"user_1","first_name":null,"last_name":"Lovelace","email":""}`, "Lovelace", "<nil>"},
		{`{"id":"user_1","first_name":null,"last_name":null,"email":"a@x.org"}`, "<nil>", "a@x.org"},
		{`{"id":"user_1","first_name":" ","last_name":"","name":"ignored"}`, "<nil>", "<nil>"},
		{`{"id":"user_1","first_name":"Ada","last_name":"Lovelace","created_at":"bad","updated_at":"2026-01-15T12:00:00+02:00"}`, "Ada Lovelace", "<nil>"},
	}
	for _, tc := range cases {
		u, err := mapUser(json.RawMessage(tc.raw))
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		if str(u.Name) != tc.name || str(u.Email) != tc.email {
			t.Errorf("%s: name %q email %q, want %q %q", tc.raw, str(u.Name), str(u.Email), tc.name, tc.email)
		}
	}
	u, _ = mapUser(json.RawMessage(cases[4].raw))
	if u.CreatedAt != nil || !u.UpdatedAt.Equal(time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("times: %v %v", u.CreatedAt, u.UpdatedAt)
	}
}

func TestValidateUserID(t *testing.T) {
	good := []string{"user_01E4ZCR3C56J083X43JQXF3JK5", "user_01EHWNCE74X7JSDV0X3SZ3KJNY", "user_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"}
	bad := []string{"", "user_", "user_01E4ZCR3C56J083X43JQXF3JK", "user_01E4ZCR3C56J083X43JQXF3JK55", "user_01e4zcr3c56j083x43jqxf3jk5",
		"user_01E4ZCR3C56J083X43JQXF3JKU", "user_01E4ZCR3C56J083X43JQXF3JKI", "user_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "usr_01E4ZCR3C56J083X43JQXF3JK5",
		"user_01E4ZCR3C56J083X43JQXF3J\x00", "org_01E4ZCR3C56J083X43JQXF3JK5"}
	for _, id := range good {
		if err := ValidateUserID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range bad {
		if err := ValidateUserID(id); !errors.Is(err, provider.ErrBadPayload) {
			t.Errorf("%q: %v, want ErrBadPayload", id, err)
		}
	}
}

const exampleSecret = "sk_example_123456789"

// TestSignatureExample checks the helper against the §3.4 algorithm applied
// to the verbatim user_created.json, computed independently (Python hmac).
func TestSignatureExample(t *testing.T) {
	body, err := os.ReadFile("testdata/user_created.json")
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1768478400000)
	const want = "t=1768478400000, v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c"
	if got := ComputeSignature(exampleSecret, at, body); got != want {
		t.Fatalf("ComputeSignature = %q, want %q", got, want)
	}
	ok := func(header string, now time.Time) error {
		return VerifySignature([]byte(exampleSecret), header, body, now)
	}
	if err := ok(want, at); err != nil {
		t.Errorf("valid: %v", err)
	}
	for _, h := range []string{
		"t=1768478400000,v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
		" v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c , t=1768478400000 ",
		"t=1768478400000, v1=00, v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
	} {
		if err := ok(h, at); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	// Tolerance: 180 s either way, in milliseconds.
	for _, d := range []time.Duration{179 * time.Second, -179 * time.Second, 180 * time.Second} {
		if err := ok(want, at.Add(d)); err != nil {
			t.Errorf("now = t%+v: %v", d, err)
		}
	}
	for _, d := range []time.Duration{180*time.Second + time.Millisecond, -180*time.Second - time.Millisecond, time.Hour} {
		if err := ok(want, at.Add(d)); !errors.Is(err, provider.ErrBadSignature) {
			t.Errorf("now = t%+v: %v, want ErrBadSignature", d, err)
		}
	}
	if err := VerifySignature([]byte("sk_wrong_secret"), want, body, at); !errors.Is(err, provider.ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	for _, h := range []string{
		"", "garbage", "t=1768478400000", "v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
		"t=abc, v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
		"t=1768478400000, v1=zz", "t=1768478400000, v0=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
		"t=1768478400, v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c", // seconds, not ms
		"t=-1, v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
		"t=99999999999999999999999, v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c",
	} {
		if err := ok(h, at); !errors.Is(err, provider.ErrBadSignature) {
			t.Errorf("%q: %v, want ErrBadSignature", h, err)
		}
	}
	if err := VerifySignature(nil, want, body, at); !errors.Is(err, provider.ErrBadSignature) {
		t.Errorf("no secret: %v", err)
	}
}

func TestParseWebhook(t *testing.T) {
	c, err := New(Config{APIKey: "sk_test_x", WebhookSecret: exampleSecret})
	if err != nil {
		t.Fatal(err)
	}
	header := func(body []byte) http.Header {
		h := http.Header{}
		// Servers may lowercase header names; http.Header.Get canonicalises.
		h["workos-signature"] = nil
		h.Set("workos-signature", ComputeSignature(exampleSecret, time.Now(), body))
		return h
	}
	for file, want := range map[string]provider.Event{
		"testdata/user_created.json": {Type: "user.created", Kind: provider.EventUserChanged, UserID: "user_01E4ZCR3C56J083X43JQXF3JK5"},
		"testdata/user_deleted.json": {Type: "user.deleted", Kind: provider.EventUserDeleted, UserID: "user_01E4ZCR3C56J083X43JQXF3JK5"},
	} {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := c.ParseWebhook(body, header(body)); err != nil || ev != want {
			t.Errorf("%s: %+v, %v", file, ev, err)
		}
	}
	for _, b := range []string{
		`{"event":"user.updated","data":{"id":"user_123"}}`,
		`{"event":"user.updated","data":{"id":"user_01e4zcr3c56j083x43jqxf3jk5"}}`,
		`{"event":"user.deleted","data":null}`,
		`{"event":["user.created"],"data":{"id":"user_01E4ZCR3C56J083X43JQXF3JK5"}}`,
	} {
		if _, err := c.ParseWebhook([]byte(b), header([]byte(b))); !errors.Is(err, provider.ErrBadPayload) {
			t.Errorf("%s: %v, want ErrBadPayload", b, err)
		}
	}
	b := []byte(`{"object":"event","id":"event_1","event":"session.created","data":{"user_id":"user_01E4ZCR3C56J083X43JQXF3JK5"}}`)
	if ev, err := c.ParseWebhook(b, header(b)); err != nil || ev.Kind != provider.EventIgnored || ev.Type != "session.created" {
		t.Errorf("ignored: %+v %v", ev, err)
	}
}

func TestNewConfig(t *testing.T) {
	c, err := New(Config{APIKey: "sk_test_x"})
	if err != nil || c.Name() != "workos" || c.pageSize != 100 || c.base != DefaultAPIURL || c.hc.Timeout >= 20*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for name, cfg := range map[string]Config{
		"no key":   {},
		"bad URL":  {APIKey: "k", APIURL: "ftp://x"},
		"page 101": {APIKey: "k", PageSize: 101},
		"page -1":  {APIKey: "k", PageSize: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	const key = "sk_test_verysecretworkoskey"
	var status int
	var body, retryAfter string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			t.Errorf("Authorization header %q", r.Header.Get("Authorization"))
		}
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := New(Config{APIKey: key, APIURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const id = "user_01E4ZCR3C56J083X43JQXF3JK5"
	var se *provider.StatusError
	var rl *provider.RateLimitedError

	status, body = 404, `{"message":"User not found","code":"entity_not_found"}`
	if _, err := c.FetchUser(ctx, id); !errors.Is(err, provider.ErrUserNotFound) {
		t.Errorf("404: %v", err)
	}
	status, body = 404, `<html>Not Found</html>`
	if _, err := c.FetchUser(ctx, id); errors.Is(err, provider.ErrUserNotFound) || !errors.As(err, &se) {
		t.Errorf("HTML 404 (a wrong URL?): %v, want StatusError", err)
	}
	status, body = 401, `{"message":"Unauthorized"}`
	if _, err := c.ListUsers(ctx, ""); !errors.Is(err, provider.ErrBadCredentials) || strings.Contains(err.Error(), key) {
		t.Errorf("401: %v", err)
	}
	status, body, retryAfter = 429, `{"message":"Too many requests"}`, "12"
	if _, err := c.ListUsers(ctx, id); !errors.As(err, &rl) || rl.RetryAfter != 12*time.Second {
		t.Errorf("429: %v", err)
	}
	status, body, retryAfter = 422, `{"message":"Invalid cursor"}`, ""
	if _, err := c.ListUsers(ctx, id); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("422 with cursor: %v", err)
	}
	if _, err := c.ListUsers(ctx, ""); errors.Is(err, provider.ErrCursorNotFound) || !errors.As(err, &se) {
		t.Errorf("422 without cursor: %v", err)
	}
	status, body = 503, `upstream`
	if _, err := c.FetchUser(ctx, id); !errors.As(err, &se) || se.StatusCode != 503 {
		t.Errorf("503: %v", err)
	}
	status, body = 200, `{"object":"list","data":[{"id":"user_01E4ZCR3C56J083X43JQXF3JK6"}],"list_metadata":{"before":null,"after":"user_01E4ZCR3C56J083X43JQXF3JK6"}}`
	page, err := c.ListUsers(ctx, "")
	if err != nil || len(page.Users) != 1 || page.Next != "user_01E4ZCR3C56J083X43JQXF3JK6" {
		t.Errorf("list: %+v %v", page, err)
	}
	status, body = 200, `{"object":"list","data":[],"list_metadata":{"before":null,"after":null}}`
	if page, err := c.ListUsers(ctx, ""); err != nil || len(page.Users) != 0 || page.Next != "" {
		t.Errorf("empty list: %+v %v", page, err)
	}
	for _, bad := range []string{"", "x/y", "user_01E4ZCR3C56J083X43JQXF3JK"} {
		if _, err := c.FetchUser(ctx, bad); !errors.Is(err, provider.ErrUserNotFound) {
			t.Errorf("FetchUser(%q): %v", bad, err)
		}
	}
	if _, err := c.ListUsers(ctx, "bogus"); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("bogus cursor: %v", err)
	}
}

func FuzzParseWebhook(f *testing.F) {
	for _, file := range []string{"testdata/user_created.json", "testdata/user_deleted.json", "testdata/user.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
	f.Add([]byte(`{"event":"user.updated","data":{"id":"user_01E4ZCR3C56J083X43JQXF3JK5"}}`), "t=1, v1=00")
	f.Add([]byte(`{"event":"organization.created","data":{}}`), "t=1768478400000,v1=a3860c3e98dbf774ceddbd238ce03b66f980ab8c657c1caa76ed4200b932d22c")
	f.Add([]byte(`{"event":"organization.updated","data":{"id":"org_01EHWNCE74X7JSDV0X3SZ3KJNY"}}`), "")
	f.Add([]byte(`{"event":"organization_membership.deleted","data":{"organization_id":"org_01EHWNCE74X7JSDV0X3SZ3KJNY","user_id":"user_01E4ZCR3C56J083X43JQXF3JK5"}}`), "")
	f.Add([]byte(`{"event":"organization_domain.verification_failed","data":{"organization_domain":{"organization_id":"org_01EHWNCE74X7JSDV0X3SZ3KJNY"}}}`), "")
	c, err := New(Config{APIKey: "sk_test_x", WebhookSecret: exampleSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, rawHeader string) {
		// An arbitrary header must be refused (or, by a miracle, be valid).
		h := http.Header{}
		h.Set(SignatureHeader, rawHeader)
		if _, err := c.ParseWebhook(body, h); err != nil && !errors.Is(err, provider.ErrBadSignature) && !errors.Is(err, provider.ErrBadPayload) {
			t.Fatalf("unclassified error %v", err)
		}
		h.Set(SignatureHeader, ComputeSignature(exampleSecret, time.Now(), body))
		ev, err := c.ParseWebhook(body, h)
		if err != nil {
			if !errors.Is(err, provider.ErrBadPayload) {
				t.Fatalf("signed body rejected with %v, want ErrBadPayload", err)
			}
			return
		}
		switch ev.Kind {
		case provider.EventUserChanged, provider.EventUserDeleted:
			if err := ValidateUserID(ev.UserID); err != nil {
				t.Fatalf("accepted invalid user id %q: %v", ev.UserID, err)
			}
		case provider.EventOrganizationChanged, provider.EventOrganizationDeleted:
			if err := ValidateOrganizationID(ev.OrganizationID); err != nil || ev.UserID != "" {
				t.Fatalf("accepted invalid organization id %q (user id %q): %v", ev.OrganizationID, ev.UserID, err)
			}
		case provider.EventMembershipChanged:
			if ValidateOrganizationID(ev.OrganizationID) != nil || ValidateUserID(ev.UserID) != nil {
				t.Fatalf("accepted invalid membership ids %q %q", ev.OrganizationID, ev.UserID)
			}
		case provider.EventIgnored:
			if ev.UserID != "" || ev.OrganizationID != "" {
				t.Fatalf("ignored event with user id %q, organization id %q", ev.UserID, ev.OrganizationID)
			}
		default:
			t.Fatalf("unknown kind %v", ev.Kind)
		}
	})
}
