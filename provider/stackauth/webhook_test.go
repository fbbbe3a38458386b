package stackauth_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// Stack Auth's documented webhook payloads, verbatim except for the
// snapshot placeholders (<stripped UUID>, <stripped field ...>), which are
// replaced by real values.
const (
	verbatimCreated = `{ "data": {
    "auth_with_email": false, "client_metadata": null, "client_read_only_metadata": null,
    "display_name": null, "has_password": false, "id": "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60",
    "last_active_at_millis": 1739980800123, "oauth_providers": [],
    "otp_auth_enabled": false, "passkey_auth_enabled": false, "primary_email": "test@example.com",
    "primary_email_auth_enabled": false, "primary_email_verified": false, "profile_image_url": null,
    "requires_totp_mfa": false, "selected_team": null, "selected_team_id": null, "server_metadata": null,
    "signed_up_at_millis": 1739980800123 },
  "type": "user.created" }`
	verbatimDeleted = `{ "data": { "id": "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60", "teams": [] }, "type": "user.deleted" }`
)

func TestParseWebhookEvents(t *testing.T) {
	f := newFake(t, 10)
	ids := f.Seed(2)
	p := f.Provider()
	f.UpdateUser(ids[1])

	check := func(name string, body []byte, h http.Header, kind provider.EventKind, typ, id string) {
		t.Helper()
		ev, err := p.ParseWebhook(body, h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ev.Kind != kind || ev.Type != typ || ev.UserID != id {
			t.Fatalf("%s: got %+v, want kind %d type %s id %q", name, ev, kind, typ, id)
		}
	}
	body, h := f.Webhook(provider.EventUserChanged, ids[0])
	check("created", body, h, provider.EventUserChanged, "user.created", ids[0])
	body, h = f.Webhook(provider.EventUserChanged, ids[1])
	check("updated", body, h, provider.EventUserChanged, "user.updated", ids[1])
	body, h = f.Webhook(provider.EventUserDeleted, ids[0])
	check("deleted", body, h, provider.EventUserDeleted, "user.deleted", ids[0])
	body, h = f.IgnoredWebhook()
	check("ignored", body, h, provider.EventIgnored, "team_permission.created", "")

	now := time.Now()
	check("verbatim created", []byte(verbatimCreated), f.SignWebhook([]byte(verbatimCreated), now), provider.EventUserChanged, "user.created", testUUID)
	check("verbatim deleted", []byte(verbatimDeleted), f.SignWebhook([]byte(verbatimDeleted), now), provider.EventUserDeleted, "user.deleted", testUUID)
	upper := strings.ToUpper(testUUID)
	b := []byte(`{"type":"user.updated","data":{"id":"` + upper + `"}}`)
	check("upper-case uuid", b, f.SignWebhook(b, now), provider.EventUserChanged, "user.updated", strings.ToLower(upper))

	for _, typ := range []string{"team_permission.created", "team_permission.deleted", "project.updated", "user.exploded",
		"team_membership.updated", "stack.test"} {
		// Events about neither users nor teams are ignored whatever their data looks like.
		b := []byte(`{"type":"` + typ + `","data":{"team_id":"` + testUUID + `","user_id":42}}`)
		check(typ, b, f.SignWebhook(b, now), provider.EventIgnored, typ, "")
	}
}

func TestParseWebhookBadPayload(t *testing.T) {
	f := newFake(t, 11)
	p := f.Provider()
	long := strings.Repeat("a", 256)
	cases := map[string]string{
		"not json":          `{"type":"user.created","data":`,
		"array":             `[{"type":"user.created"}]`,
		"null":              `null`,
		"string":            `"user.created"`,
		"missing type":      `{"data":{"id":"` + testUUID + `"}}`,
		"type number":       `{"type":1,"data":{"id":"` + testUUID + `"}}`,
		"type null":         `{"type":null,"data":{"id":"` + testUUID + `"}}`,
		"type empty":        `{"type":"","data":{"id":"` + testUUID + `"}}`,
		"missing data":      `{"type":"user.created"}`,
		"data null":         `{"type":"user.updated","data":null}`,
		"data array":        `{"type":"user.updated","data":["` + testUUID + `"]}`,
		"missing id":        `{"type":"user.created","data":{"display_name":"x"}}`,
		"empty id":          `{"type":"user.created","data":{"id":""}}`,
		"number id":         `{"type":"user.deleted","data":{"id":12345,"teams":[]}}`,
		"null id":           `{"type":"user.deleted","data":{"id":null,"teams":[]}}`,
		"object id":         `{"type":"user.updated","data":{"id":{"id":"` + testUUID + `"}}}`,
		"256-byte id":       `{"type":"user.created","data":{"id":"` + long + `"}}`,
		"NUL id":            `{"type":"user.created","data":{"id":"` + testUUID[:35] + `\u0000"}}`,
		"NUL suffix":        `{"type":"user.created","data":{"id":"` + testUUID + `\u0000"}}`,
		"U+0085 id":         `{"type":"user.created","data":{"id":"` + testUUID[:35] + `\u0085"}}`,
		"non-uuid id":       `{"type":"user.created","data":{"id":"user_2abc"}}`,
		"uuid without dash": `{"type":"user.deleted","data":{"id":"5c7bd3a10f384c8e9d6a1b2c3d4e5f60"}}`,
		"padded uuid":       `{"type":"user.deleted","data":{"id":" ` + testUUID + `"}}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := p.ParseWebhook([]byte(body), f.SignWebhook([]byte(body), time.Now()))
			if !errors.Is(err, provider.ErrBadPayload) {
				t.Fatalf("got %+v, %v; want ErrBadPayload", ev, err)
			}
			if errors.Is(err, provider.ErrBadSignature) {
				t.Fatalf("also ErrBadSignature: %v", err)
			}
		})
	}
	// The fake's Webhook builds events around any id, for such tests.
	body, h := f.Webhook(provider.EventUserChanged, "not-a-uuid")
	if _, err := p.ParseWebhook(body, h); !errors.Is(err, provider.ErrBadPayload) {
		t.Fatalf("fake event with a bad id: %v", err)
	}
}

func TestParseWebhookBadSignature(t *testing.T) {
	f := newFake(t, 12)
	id := f.CreateUser()
	p := f.Provider()
	body, h := f.Webhook(provider.EventUserChanged, id)
	if _, err := p.ParseWebhook(body, h); err != nil {
		t.Fatal(err)
	}
	other := stackfake.New(stackfake.Options{Seed: 12}) // another secret
	t.Cleanup(other.Close)

	mutate := map[string]func() ([]byte, http.Header){
		"forged signature": func() ([]byte, http.Header) {
			h2 := h.Clone()
			h2.Set("svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
			return body, h2
		},
		"other secret": func() ([]byte, http.Header) { return body, other.SignWebhook(body, time.Now()) },
		"tampered body": func() ([]byte, http.Header) {
			return []byte(strings.Replace(string(body), `"user.created"`, `"user.deleted"`, 1)), h
		},
		"stale":      func() ([]byte, http.Header) { return body, f.SignWebhook(body, time.Now().Add(-6*time.Minute)) },
		"future":     func() ([]byte, http.Header) { return body, f.SignWebhook(body, time.Now().Add(6*time.Minute)) },
		"no headers": func() ([]byte, http.Header) { return body, http.Header{} },
		"nil header": func() ([]byte, http.Header) { return body, nil },
		"bad timestamp": func() ([]byte, http.Header) {
			h2 := h.Clone()
			h2.Set("svix-timestamp", "yesterday")
			return body, h2
		},
		"v1a only": func() ([]byte, http.Header) {
			h2 := h.Clone()
			h2.Set("svix-signature", strings.Replace(h.Get("svix-signature"), "v1,", "v1a,", 1))
			return body, h2
		},
	}
	for _, missing := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		mutate["missing "+missing] = func() ([]byte, http.Header) {
			h2 := h.Clone()
			h2.Del(missing)
			return body, h2
		}
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			b, hh := m()
			ev, err := p.ParseWebhook(b, hh)
			if !errors.Is(err, provider.ErrBadSignature) {
				t.Fatalf("got %+v, %v; want ErrBadSignature", ev, err)
			}
		})
	}
	// Within tolerance (4 minutes old), and with several signatures, accepted.
	h2 := f.SignWebhook(body, time.Now().Add(-4*time.Minute))
	h2.Set("svix-signature", "v1,bogus v1a,x "+h2.Get("svix-signature"))
	if _, err := p.ParseWebhook(body, h2); err != nil {
		t.Fatalf("4-minute-old, multi-signature delivery: %v", err)
	}
}

// FuzzParseWebhook feeds arbitrary bodies, correctly signed (or with a fuzzed
// signature header), to ParseWebhook: it must never panic, must classify
// every error, and must only accept user events with a valid UUID id.
func FuzzParseWebhook(f *testing.F) {
	fake := stackfake.New(stackfake.Options{Seed: 99})
	defer fake.Close()
	ids := fake.Seed(2)
	p := fake.Provider()
	for _, s := range []string{
		verbatimCreated, verbatimDeleted,
		`{"type":"team.created","data":{"id":"` + testUUID + `"}}`,
		`{"type":"team_membership.created","data":{"team_id":"` + testUUID + `","user_id":"` + testUUID + `"}}`,
		`{"type":"team_membership.deleted","data":{"team_id":"` + testUUID + `","user_id":5}}`,
		`{"type":"team.deleted","data":{"id":"` + strings.ToUpper(testUUID) + `"}}`,
		`{"type":"team_permission.created","data":{"id":"team_member","team_id":"` + testUUID + `","user_id":"` + testUUID + `"}}`,
		`{"type":"user.updated","data":{"id":"` + testUUID[:35] + `\u0085"}}`,
		`{"type":"user.deleted","data":{"id":12,"teams":[]}}`,
		`{"type":"user.deleted","data":{"id":null}}`,
		`{"type":"user.created","data":{"id":"","ID":"` + testUUID + `"}}`,
		`{"type":"user.created","type":"team.created","data":{}}`,
		`{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s), "")
	}
	for _, kind := range []provider.EventKind{provider.EventUserChanged, provider.EventUserDeleted, provider.EventIgnored} {
		body, _ := fake.Webhook(kind, ids[0])
		f.Add(body, "")
	}
	f.Add([]byte(verbatimDeleted), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	f.Fuzz(func(t *testing.T, body []byte, signature string) {
		h := fake.SignWebhook(body, time.Now())
		forged := signature != ""
		if forged {
			h.Set("svix-signature", signature)
		}
		ev, err := p.ParseWebhook(body, h)
		if err != nil {
			if !errors.Is(err, provider.ErrBadSignature) && !errors.Is(err, provider.ErrBadPayload) {
				t.Fatalf("unclassified error: %v", err)
			}
			if !forged && errors.Is(err, provider.ErrBadSignature) {
				t.Fatalf("correctly signed body rejected: %v", err)
			}
			return
		}
		if forged {
			// The message id is random per call: no fuzzed header can match.
			t.Fatalf("forged signature %q accepted", signature)
		}
		switch ev.Kind {
		case provider.EventUserChanged, provider.EventUserDeleted:
			if err := provider.ValidateUserID(ev.UserID); err != nil || !stackauth.IsUUID(ev.UserID) {
				t.Fatalf("accepted user event with invalid id %q: %v", ev.UserID, err)
			}
		case provider.EventOrganizationChanged, provider.EventOrganizationDeleted:
			if err := provider.ValidateUserID(ev.OrganizationID); err != nil || !stackauth.IsUUID(ev.OrganizationID) || ev.OrganizationID != strings.ToLower(ev.OrganizationID) || ev.UserID != "" {
				t.Fatalf("accepted team event with invalid ids: %+v", ev)
			}
		case provider.EventMembershipChanged:
			for _, id := range []string{ev.OrganizationID, ev.UserID} {
				if err := provider.ValidateUserID(id); err != nil || !stackauth.IsUUID(id) || id != strings.ToLower(id) {
					t.Fatalf("accepted membership event with invalid ids: %+v", ev)
				}
			}
		case provider.EventIgnored:
			if ev.UserID != "" || ev.OrganizationID != "" {
				t.Fatalf("ignored event with an id: %+v", ev)
			}
		default:
			t.Fatalf("unknown kind %d", ev.Kind)
		}
		if ev.Type == "" {
			t.Fatal("accepted an event without a type")
		}
	})
}
