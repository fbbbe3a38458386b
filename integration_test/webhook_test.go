package integration_test

import (
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// TestWebhookFlow: sign-ups, edits and deletions sent as webhooks end up in
// users_sync (guarantee 2, convergence).
func TestWebhookFlow(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			sv := s.Serve(nil)
			var ids []string
			for range 20 {
				id := s.Fake.CreateUser()
				ids = append(ids, id)
				if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
					t.Fatalf("webhook answered %d", code)
				}
			}
			s.WaitConverged(10 * time.Second)
			for _, id := range ids[:5] {
				s.Fake.UpdateUser(id)
				s.Send(sv.Addr, provider.EventUserChanged, id)
			}
			for _, id := range ids[5:8] {
				s.Fake.DeleteUser(id)
				s.Send(sv.Addr, provider.EventUserDeleted, id)
			}
			s.WaitConverged(10 * time.Second)
		})
	}
}
