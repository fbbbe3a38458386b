package stacksnap_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersync/usersync/internal/stacksnap"
)

// TestParseInline checks the conversion on a snapshot written here in the
// serializer's format.
func TestParseInline(t *testing.T) {
	const snap = `      NiceResponse {
        "status": 200,
        "body": {
          "id": "<stripped UUID>",
          "items": [
            { "a": 1 },
          ],
          "primary_email": "x--<stripped UUID>@example.com",
          "signed_up_at_millis": <stripped field 'signed_up_at_millis'>,
          "last_active_at_millis": <stripped field 'last_active_at_millis'>,
        },
        "headers": Headers {
          "x-stack-known-error": "USER_NOT_FOUND",
          <some fields may have been hidden>,
        },
      }`
	r, err := stacksnap.ParseResponse([]byte(snap), nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		ID           string
		Items        []map[string]int
		PrimaryEmail string  `json:"primary_email"`
		SignedUp     float64 `json:"signed_up_at_millis"`
		LastActive   float64 `json:"last_active_at_millis"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || r.Headers["x-stack-known-error"] != "USER_NOT_FOUND" || len(body.Items) != 1 ||
		len(body.ID) != 36 || !strings.HasPrefix(body.PrimaryEmail, "x--") || strings.Contains(body.PrimaryEmail, body.ID) ||
		body.SignedUp != stacksnap.BaseMillis || body.LastActive != stacksnap.BaseMillis+1000 {
		t.Errorf("parsed %+v, body %s", r, r.Body)
	}
	if _, err := stacksnap.Parse([]byte(`{ "a": <unknown placeholder> }`), nil); err == nil {
		t.Error("an unknown placeholder was accepted")
	}
}

// TestParseRealSnapshots parses every Stack Auth snapshot file.
func TestParseRealSnapshots(t *testing.T) {
	dir, err := stacksnap.Dir("stackauth")
	if err != nil {
		t.Skipf("Stack Auth's own snapshots are not here: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no snapshot files in %s (%v)", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		if strings.HasPrefix(name, "webhook_") {
			p, err := stacksnap.ParseWebhookMessage(b, nil)
			var body struct {
				Type string
				Data map[string]any
			}
			if err != nil || json.Unmarshal(p, &body) != nil || !strings.HasPrefix(body.Type, "user.") || body.Data["id"] == nil {
				t.Errorf("%s: payload %s, %v", name, p, err)
			}
			continue
		}
		r, err := stacksnap.ParseResponse(b, nil)
		if err != nil || r.Status < 200 || len(r.Body) == 0 {
			t.Errorf("%s: %+v, %v", name, r, err)
		}
	}
}
