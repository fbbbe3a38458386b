package integration_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// redactKeys are, per provider, the raw_json keys the redaction test drops:
// they include the sources of name and email (docs/data-model.md), so the test shows
// that those columns come from the full profile.
var redactKeys = map[string]string{
	"stackauth": "display_name,primary_email,server_metadata",
	"clerk":     "first_name,last_name,email_addresses,private_metadata",
	"workos":    "first_name,last_name,email",
}

// TestConvergence (docs/guarantees.md §2): after sign-ups, edits and deletions (each with its
// webhook), users_sync equals the provider, in soft and hard delete mode and
// with USERSYNC_REDACT.
func TestConvergence(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"soft", "hard", "redact"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				extra := map[string]string{"USERSYNC_DELETE_MODE": "soft"}
				switch mode {
				case "hard":
					extra["USERSYNC_DELETE_MODE"] = "hard"
				case "redact":
					keys, ok := redactKeys[prov]
					if !ok {
						t.Fatalf("add the redacted keys of %s to redactKeys", prov)
					}
					extra["USERSYNC_REDACT"] = keys
				}
				s := NewSystem(t, prov, extra)
				sv := s.Serve(nil)
				ids := s.Fake.Seed(40)
				s.SendAll(sv.Addr, provider.EventUserChanged, ids, 8)
				s.WaitConverged(15 * time.Second)

				for _, id := range ids[:10] {
					s.Fake.UpdateUser(id)
				}
				for _, id := range ids[10:15] {
					s.Fake.DeleteUser(id)
				}
				s.SendAll(sv.Addr, provider.EventUserChanged, ids[:10], 4)
				s.SendAll(sv.Addr, provider.EventUserDeleted, ids[10:15], 4)
				s.WaitConverged(15 * time.Second)

				rows := s.Rows()
				for _, id := range ids[10:15] {
					r, ok := rows[id]
					switch {
					case mode == "hard" && ok:
						t.Errorf("hard mode: row of deleted user %s still present", id)
					case mode != "hard" && !ok:
						t.Errorf("soft mode: row of deleted user %s is gone", id)
					case mode != "hard" && (r.DeletedAt == nil || r.UpdatedAt == nil || r.UpdatedAt.Before(*r.DeletedAt)):
						t.Errorf("soft-deleted %s: deleted_at %v, updated_at %v (want both set, updated_at ≥ deleted_at)", id, r.DeletedAt, r.UpdatedAt)
					}
				}
				if mode != "redact" {
					return
				}
				// Redaction: the keys are gone from raw_json, the derived
				// columns still come from the full profile.
				p := s.Fake.Provider()
				for _, id := range ids[:15] {
					r, ok := rows[id]
					if !ok {
						continue
					}
					var m map[string]json.RawMessage
					if err := json.Unmarshal(r.Raw, &m); err != nil {
						t.Fatal(err)
					}
					for k := range strings.SplitSeq(redactKeys[prov], ",") {
						if _, ok := m[k]; ok {
							t.Errorf("raw_json of %s still has redacted key %q", id, k)
						}
					}
					if r.DeletedAt != nil {
						continue
					}
					u, err := p.FetchUser(context.Background(), id)
					if err != nil {
						t.Fatal(err)
					}
					if str(r.Name) != str(u.Name) || str(r.Email) != str(u.Email) {
						t.Errorf("redacted %s: name/email = %q/%q, want %q/%q (from the full profile)", id, str(r.Name), str(r.Email), str(u.Name), str(u.Email))
					}
					if (r.CreatedAt == nil) != (u.CreatedAt == nil) || r.CreatedAt != nil && !r.CreatedAt.Equal(*u.CreatedAt) {
						t.Errorf("redacted %s: created_at = %v, want %v", id, r.CreatedAt, u.CreatedAt)
					}
				}
				var named int
				for _, r := range s.Rows() {
					if r.Name != nil && r.Email != nil {
						named++
					}
				}
				if named == 0 {
					t.Error("no row has both name and email: the redaction check proves nothing")
				}
			})
		}
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
