package provider_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider"
)

func TestParseUserEvent(t *testing.T) {
	long := strings.Repeat("a", 256)
	cases := []struct {
		body     string
		wantKind provider.EventKind
		wantID   string
		bad      bool
	}{
		{`{"type":"user.created","data":{"id":"u1","name":"x"}}`, provider.EventUserChanged, "u1", false},
		{`{"type":"user.updated","data":{"id":"u\u00e91"}}`, provider.EventUserChanged, "ué1", false},
		{`{"type":"user.deleted","data":{"id":"u1","teams":[]}}`, provider.EventUserDeleted, "u1", false},
		{`{"type":"team.created","data":{"id":5}}`, provider.EventIgnored, "", false},
		{`{"TYPE":"user.created","data":{"id":"u1"}}`, 0, "", true}, // keys match exactly
		{`{"type":"user.created","data":{"ID":"u1"}}`, 0, "", true},
		{`{"type":"user.created","data":{"id":1}}`, 0, "", true},
		{`{"type":"user.created","data":{"id":null}}`, 0, "", true},
		{`{"type":"user.created","data":{"id":""}}`, 0, "", true},
		{`{"type":"user.created","data":{"id":"` + long + `"}}`, 0, "", true},
		{`{"type":"user.created","data":{"id":"a\u0000b"}}`, 0, "", true},
		{`{"type":"user.created","data":{"id":"a\u0085b"}}`, 0, "", true},
		{`{"type":"user.created","data":[{"id":"u1"}]}`, 0, "", true},
		{`{"type":"user.created"}`, 0, "", true},
		{`{"type":7,"data":{"id":"u1"}}`, 0, "", true},
		{`{"type":"","data":{"id":"u1"}}`, 0, "", true},
		{`["type"]`, 0, "", true},
		{`{"type":"user.created","data":{"id":"u1"}`, 0, "", true},
		{``, 0, "", true},
	}
	for _, c := range cases {
		ev, err := provider.ParseUserEvent([]byte(c.body), "type", nil)
		if c.bad {
			if !errors.Is(err, provider.ErrBadPayload) {
				t.Errorf("%s: err = %v, want ErrBadPayload", c.body, err)
			}
			continue
		}
		if err != nil || ev.Kind != c.wantKind || ev.UserID != c.wantID {
			t.Errorf("%s: got %+v, %v", c.body, ev, err)
		}
	}
	// The provider's own id rule applies on top.
	_, err := provider.ParseUserEvent([]byte(`{"event":"user.created","data":{"id":"u1"}}`), "event",
		func(string) error { return provider.ErrBadPayload })
	if !errors.Is(err, provider.ErrBadPayload) {
		t.Errorf("validID not applied: %v", err)
	}
}

func TestParseAPIURLAndPageSize(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://api.clerk.com/v1/": true, "http://127.0.0.1:9/": true,
		"ftp://x": false, "api.stack-auth.com": false, "https://u:secret@h": false, "https://h/?a=1": false, "https://h/#f": false,
	} {
		u, err := provider.ParseAPIURL(raw)
		if (err == nil) != ok {
			t.Errorf("%s: err = %v", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error echoes the URL: %v", raw, err)
		}
		if ok && strings.HasSuffix(u.String(), "/") {
			t.Errorf("%s: trailing slash kept: %s", raw, u)
		}
	}
	if n, err := provider.PageSize(0, 500); n != 500 || err != nil {
		t.Errorf("PageSize(0) = %d, %v", n, err)
	}
	if n, err := provider.PageSize(7, 500); n != 7 || err != nil {
		t.Errorf("PageSize(7) = %d, %v", n, err)
	}
	if _, err := provider.PageSize(501, 500); err == nil {
		t.Error("PageSize(501, 500) accepted")
	}
}
