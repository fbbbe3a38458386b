package clerk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/provider"
)

func TestMapUser(t *testing.T) {
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	emails := `"email_addresses":[{"id":"idn_a","object":"email_address","email_address":"a@example.org"},` +
		`{"id":"idn_b","object":"email_address","email_address":"b@example.org"}]`
	cases := []struct {
		name, raw, wantName, wantEmail string
	}{
		{"names", `{"id":"user_1","first_name":"Ada","last_name":"Lovelace","username":"ada"}`, "Ada Lovelace", "<nil>"},
		{"only username", `{"id":"user_1","first_name":null,"last_name":null,"username":"ada99"}`, "ada99", "<nil>"},
		{"empty names, username", `{"id":"user_1","first_name":"","last_name":"  ","username":"ada99"}`, "ada99", "<nil>"},
		{"nothing", `{"id":"user_1","first_name":null,"last_name":null,"username":null}`, "<nil>", "<nil>"},
		{"empty username", `{"id":"user_1","first_name":"","last_name":"","username":""}`, "<nil>", "<nil>"},
		{"first only", `{"id":"user_1","first_name":"Ada","last_name":null}`, "Ada", "<nil>"},
		{"last only", `{"id":"user_1","first_name":"","last_name":"Lovelace"}`, "Lovelace", "<nil>"},
		{"primary not first", `{"id":"user_1","primary_email_address_id":"idn_b",` + emails + `}`, "<nil>", "b@example.org"},
		{"primary first", `{"id":"user_1","primary_email_address_id":"idn_a",` + emails + `}`, "<nil>", "a@example.org"},
		{"primary unknown", `{"id":"user_1","primary_email_address_id":"idn_z",` + emails + `}`, "<nil>", "<nil>"},
		{"no primary", `{"id":"user_1","primary_email_address_id":null,` + emails + `}`, "<nil>", "<nil>"},
	}
	for _, tc := range cases {
		u, err := userFromRaw(json.RawMessage(tc.raw))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := str(u.Name); got != tc.wantName {
			t.Errorf("%s: name = %q, want %q", tc.name, got, tc.wantName)
		}
		if got := str(u.Email); got != tc.wantEmail {
			t.Errorf("%s: email = %q, want %q", tc.name, got, tc.wantEmail)
		}
		if string(u.Raw) != tc.raw {
			t.Errorf("%s: Raw was re-encoded", tc.name)
		}
	}
	if _, err := userFromRaw(json.RawMessage(`{"first_name":"x"}`)); err == nil {
		t.Errorf("user without id: no error")
	}
}

func TestMapUserVerbatim(t *testing.T) {
	body, err := os.ReadFile("testdata/user_created.json")
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	u, err := userFromRaw(env.Data)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "user_29w83sxmDNGwOuEthce5gg56FcC" || *u.Name != "Example Example" || *u.Email != "example@example.org" {
		t.Errorf("got %+v", u)
	}
	if !u.CreatedAt.Equal(time.UnixMilli(1654012591514)) || !u.UpdatedAt.Equal(time.UnixMilli(1654012591835)) {
		t.Errorf("times = %v, %v", u.CreatedAt, u.UpdatedAt)
	}
}

func TestNewConfig(t *testing.T) {
	good := Config{SecretKey: "sk_test_x", WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	c, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "clerk" || c.pageSize != 500 {
		t.Errorf("defaults: name %q page %d", c.Name(), c.pageSize)
	}
	bad := map[string]Config{
		"no key":          {},
		"no /v1":          {SecretKey: "k", APIURL: "https://api.clerk.com"},
		"v2":              {SecretKey: "k", APIURL: "https://api.clerk.com/v2"},
		"not a URL":       {SecretKey: "k", APIURL: "api.clerk.com/v1"},
		"page size 501":   {SecretKey: "k", PageSize: 501},
		"page size -1":    {SecretKey: "k", PageSize: -1},
		"bad whsec":       {SecretKey: "k", WebhookSecret: "whsec_!!!"},
		"key with spaces": {SecretKey: "sk_test x"},
	}
	for name, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		} else if cfg.SecretKey != "" && len(cfg.SecretKey) > 2 && strings.Contains(err.Error(), cfg.SecretKey) {
			t.Errorf("%s: error %q contains the key", name, err)
		}
	}
	if _, err := New(Config{SecretKey: "k", APIURL: "http://127.0.0.1:1/v1/"}); err != nil {
		t.Errorf("trailing slash: %v", err)
	}
	hc := wrapHTTPClient(&http.Client{Timeout: time.Minute}, nil)
	if hc.Timeout >= 20*time.Second {
		t.Errorf("timeout %s not capped", hc.Timeout)
	}
}

// TestErrorsWithoutClerkBody checks classification when the body is not
// ClerkErrors (the SDK then returns errors.New(body) with no status).
func TestErrorsWithoutClerkBody(t *testing.T) {
	const key = "sk_test_supersecretkeyvalue"
	var status int
	var body, retryAfter string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := New(Config{SecretKey: key, APIURL: srv.URL + "/v1", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	status, body = 404, "<html>not found</html>"
	_, err = c.FetchUser(ctx, "user_abc")
	var se *provider.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || errors.Is(err, provider.ErrUserNotFound) {
		t.Errorf("HTML 404: %v, want StatusError 404 (not user-not-found: maybe a wrong URL)", err)
	}
	status, body = 401, "unauthorized"
	if _, err = c.FetchUser(ctx, "user_abc"); !errors.Is(err, provider.ErrBadCredentials) {
		t.Errorf("plain 401: %v", err)
	}
	status, body = 403, `{"errors":[{"code":"forbidden","message":"nope"}]}`
	if _, err = c.ListUsers(ctx, ""); !errors.Is(err, provider.ErrBadCredentials) {
		t.Errorf("403: %v", err)
	}
	status, body, retryAfter = 429, "{}", "3"
	_, err = c.ListUsers(ctx, "")
	var rl *provider.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
		t.Errorf("429 without errors: %v", err)
	}
	status, body, retryAfter = 429, `{"errors":[{"code":"too_many_requests","message":"slow down"}]}`, time.Now().Add(9*time.Second).UTC().Format(http.TimeFormat)
	_, err = c.FetchUser(ctx, "user_abc")
	if !errors.As(err, &rl) || rl.RetryAfter < 7*time.Second || rl.RetryAfter > 10*time.Second {
		t.Errorf("429 with an HTTP-date Retry-After: %v", err)
	}
	status, body, retryAfter = 502, "Bad Gateway", ""
	if _, err = c.FetchUser(ctx, "user_abc"); !errors.As(err, &se) || se.StatusCode != 502 {
		t.Errorf("plain 502: %v", err)
	}
	status, body = 200, "not json"
	if _, err = c.FetchUser(ctx, "user_abc"); err == nil || errors.As(err, &se) {
		t.Errorf("200 garbage: %v", err)
	}
	status, body = 200, `{"object":"user","id":"user_other"}`
	if _, err = c.FetchUser(ctx, "user_abc"); err == nil {
		t.Errorf("200 for another user: no error")
	}
	for _, id := range []string{"", "user_", "user_a/../b", "user_a?x=1", "usr_abc", strings.Repeat("a", 300)} {
		if _, err := c.FetchUser(ctx, id); !errors.Is(err, provider.ErrUserNotFound) {
			t.Errorf("FetchUser(%q) = %v, want ErrUserNotFound without a request", id, err)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{T: 1654012591514, K: 3, Seen: []string{"user_a", "user_b"}}
	got, err := decodeCursor(encodeCursor(c))
	if err != nil || got.T != c.T || got.K != c.K || len(got.Seen) != 2 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, s := range []string{"!!", "e30", encodeCursor(cursor{T: -1}), encodeCursor(cursor{T: 5, K: 1, Seen: []string{"a", "b"}}), encodeCursor(cursor{UserID: "bad id"})} {
		if _, err := decodeCursor(s); !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("decodeCursor(%q) = %v, want ErrCursorNotFound", s, err)
		}
	}
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func sign(t testing.TB, body []byte, at time.Time) http.Header {
	wh, err := svix.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", at, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("svix-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("svix-signature", sig)
	return h
}

func TestParseWebhookVerbatim(t *testing.T) {
	c, err := New(Config{SecretKey: "sk_test_x", WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]provider.Event{
		"testdata/user_created.json":     {Type: "user.created", Kind: provider.EventUserChanged, UserID: "user_29w83sxmDNGwOuEthce5gg56FcC"},
		"testdata/user_deleted.json":     {Type: "user.deleted", Kind: provider.EventUserDeleted, UserID: "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"},
		"testdata/user_deleted_old.json": {Type: "user.deleted", Kind: provider.EventUserDeleted, UserID: "user_29wBMCtzATuFJut8jO2VNTVekS4"},
	}
	for file, want := range cases {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := c.ParseWebhook(body, sign(t, body, time.Now()))
		if err != nil || ev != want {
			t.Errorf("%s: %+v, %v; want %+v", file, ev, err, want)
		}
		// svix's 5-minute tolerance, both ways.
		for _, d := range []time.Duration{-6 * time.Minute, 6 * time.Minute} {
			if _, err := c.ParseWebhook(body, sign(t, body, time.Now().Add(d))); !errors.Is(err, provider.ErrBadSignature) {
				t.Errorf("%s signed %s from now: %v", file, d, err)
			}
		}
		if _, err := c.ParseWebhook(body, sign(t, body, time.Now().Add(-4*time.Minute))); err != nil {
			t.Errorf("%s signed 4 minutes ago: %v", file, err)
		}
	}
	bad := []string{
		`{"type":"user.updated","data":{"id":"usr_123"}}`,
		`{"type":"user.updated","data":{"id":"user_12-3"}}`,
		`{"type":"user.updated","data":{"id":"user_"}}`,
		`{"type":"user.updated","data":{"id":"user_abc\u00e9"}}`,
		`{"type":"user.deleted","data":{"id":["user_abc"]}}`,
		`{"type":42,"data":{"id":"user_abc"}}`,
		`{"data":{"id":"user_abc"}}`,
	}
	for _, b := range bad {
		if _, err := c.ParseWebhook([]byte(b), sign(t, []byte(b), time.Now())); !errors.Is(err, provider.ErrBadPayload) {
			t.Errorf("%s: %v, want ErrBadPayload", b, err)
		}
	}
	ignored := `{"type":"email.created","object":"event","data":{"id":"ema_1","user_id":"user_abc"}}`
	if ev, err := c.ParseWebhook([]byte(ignored), sign(t, []byte(ignored), time.Now())); err != nil || ev.Kind != provider.EventIgnored || ev.Type != "email.created" {
		t.Errorf("ignored: %+v, %v", ev, err)
	}

	noSecret, _ := New(Config{SecretKey: "sk_test_x"})
	body, _ := os.ReadFile("testdata/user_created.json")
	if _, err := noSecret.ParseWebhook(body, sign(t, body, time.Now())); !errors.Is(err, provider.ErrBadSignature) {
		t.Errorf("no webhook secret: %v", err)
	}
}

func FuzzParseWebhook(f *testing.F) {
	for _, file := range []string{"testdata/user_created.json", "testdata/user_deleted.json", "testdata/user_deleted_old.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"user.updated","data":{"id":"user_a\u0000"}}`))
	f.Add([]byte(`{"type":"session.created","data":{}}`))
	f.Add([]byte(`{"type":"organization.updated","data":{"object":"organization","id":"org_2g7np7Hrk0SN6kj5EDMLDaKNL0S","name":"Acme"}}`))
	f.Add([]byte(`{"type":"organization.deleted","data":{"object":"organization","id":"org_2g7np7Hrk0SN6kj5EDMLDaKNL0S","slug":"acme","deleted":true}}`))
	f.Add([]byte(`{"type":"organizationMembership.deleted","data":{"object":"organization_membership","organization":{"id":"org_2g7"},"public_user_data":{"user_id":"user_2h8"}}}`))
	f.Add([]byte(`{"type":"user.deleted","data":{"id":"user_29wBMCtzATuFJut8jO2VNTVekS4","deleted":true},"type":"user.created"}`))
	c, err := New(Config{SecretKey: "sk_test_x", WebhookSecret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// Signed now, not when fuzzing began: Svix's 5-minute tolerance
		// would otherwise reject every input of a longer fuzzing run (the
		// first 10-minute run found exactly that; its input is kept in
		// testdata/fuzz).
		ev, err := c.ParseWebhook(body, sign(t, body, time.Now()))
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
		case provider.EventOrganizationChanged, provider.EventOrganizationDeleted, provider.EventMembershipChanged:
			if err := ValidateOrganizationID(ev.OrganizationID); err != nil {
				t.Fatalf("accepted invalid organization id %q: %v", ev.OrganizationID, err)
			}
			if ev.Kind == provider.EventMembershipChanged {
				if err := ValidateUserID(ev.UserID); err != nil {
					t.Fatalf("accepted invalid member id %q: %v", ev.UserID, err)
				}
			} else if ev.UserID != "" {
				t.Fatalf("organization event with user id %q", ev.UserID)
			}
		case provider.EventIgnored:
			if ev.UserID != "" || ev.OrganizationID != "" {
				t.Fatalf("ignored event with ids %q, %q", ev.UserID, ev.OrganizationID)
			}
		default:
			t.Fatalf("unknown kind %v", ev.Kind)
		}
		// The unsigned body must be refused.
		if _, err := c.ParseWebhook(body, http.Header{}); !errors.Is(err, provider.ErrBadSignature) {
			t.Fatalf("unsigned body: %v", err)
		}
	})
}
