package stackauth

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// Svix's published test vector (svix go/webhook_test.go TestWebhookSign).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSvixPublishedVector(t *testing.T) {
	c, err := New(Config{ProjectID: "p", SecretServerKey: "ssk_x", WebhookSecret: vectorSecret})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := c.wh.Sign(vectorID, time.Unix(vectorTS, 0), []byte(vectorBody))
	if err != nil || sig != vectorSig {
		t.Fatalf("Sign = %q, %v; want %q", sig, err, vectorSig)
	}
	h := http.Header{}
	h.Set("svix-id", vectorID)
	h.Set("svix-timestamp", strconv.Itoa(vectorTS))
	h.Set("svix-signature", "v1,bogus "+vectorSig)
	if err := c.wh.VerifyIgnoringTimestamp([]byte(vectorBody), h); err != nil {
		t.Fatalf("the client's verifier rejects the published vector: %v", err)
	}
	// The same delivery through ParseWebhook is years old: rejected.
	if _, err := c.ParseWebhook([]byte(vectorBody), h); !errors.Is(err, provider.ErrBadSignature) {
		t.Fatalf("stale vector: err = %v, want ErrBadSignature", err)
	}
	// One flipped byte of the body breaks the signature.
	if err := c.wh.VerifyIgnoringTimestamp([]byte(`{"test": 2432232315}`), h); err == nil {
		t.Fatal("tampered body verified")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"7", 7 * time.Second},
		{" 12 ", 12 * time.Second},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999999999", time.Duration(1<<63-1) / time.Second * time.Second},
	}
	for _, c := range cases {
		if got := parseRetryAfter(c.in, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestAPIBase(t *testing.T) {
	cases := map[string]string{
		"":                                 "https://api.stack-auth.com/api/v1",
		"https://api.stack-auth.com/":      "https://api.stack-auth.com/api/v1",
		"http://127.0.0.1:8102":            "http://127.0.0.1:8102/api/v1",
		"https://stack.example.com/auth//": "https://stack.example.com/auth/api/v1",
		"https://stack.example.com/api/v1": "https://stack.example.com/api/v1",
	}
	for in, want := range cases {
		got, err := apiBase(in)
		if err != nil || got != want {
			t.Errorf("apiBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"api.stack-auth.com", "ftp://x", "https://", "https://u:p@x", "https://x/?a=b", "://"} {
		if _, err := apiBase(bad); err == nil {
			t.Errorf("apiBase(%q) accepted", bad)
		}
	}
}

func TestDecodeUser(t *testing.T) {
	raw := []byte(`{"id":"5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60","display_name":"","primary_email":"a@example.com","signed_up_at_millis":1700000000123.4,"unknown":{"x":[1,2]}}`)
	u, err := decodeUser(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != nil {
		t.Errorf("empty display_name gave Name %q, want nil", *u.Name)
	}
	if u.Email == nil || *u.Email != "a@example.com" {
		t.Errorf("Email = %v", u.Email)
	}
	if u.CreatedAt == nil || !u.CreatedAt.Equal(time.UnixMilli(1700000000123)) || u.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v", u.CreatedAt)
	}
	if u.UpdatedAt != nil {
		t.Errorf("UpdatedAt = %v, want nil", u.UpdatedAt)
	}
	if string(u.Raw) != string(raw) {
		t.Errorf("Raw was re-encoded: %s", u.Raw)
	}
	for _, bad := range []string{
		`{"display_name":"x"}`, `{"id":null}`, `{"id":42}`, `{"id":""}`, `[]`, `null`, `{`,
		`{"id":"5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60","signed_up_at_millis":"1700000000000"}`,
		`{"id":"5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60","signed_up_at_millis":1e300}`,
	} {
		if _, err := decodeUser([]byte(bad)); err == nil {
			t.Errorf("decodeUser(%s) accepted", bad)
		}
	}
}

func TestIsUUID(t *testing.T) {
	for _, ok := range []string{"5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60", "5C7BD3A1-0F38-4C8E-9D6A-1B2C3D4E5F60", "00000000-0000-0000-0000-000000000000"} {
		if !IsUUID(ok) {
			t.Errorf("IsUUID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "5c7bd3a10f384c8e9d6a1b2c3d4e5f60", "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f6", "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f6g", "{5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f6}", "5c7bd3a1_0f38-4c8e-9d6a-1b2c3d4e5f60"} {
		if IsUUID(bad) {
			t.Errorf("IsUUID(%q) = true", bad)
		}
	}
}
