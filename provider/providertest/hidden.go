package providertest

import (
	"context"
	"slices"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// runHiddenUsers checks, for a [fakekit.HiddenUsersFake], that the users its list
// leaves out by default are listed, fetched and named by webhooks like any
// other: users_sync holds every user (docs/data-model.md).
func runHiddenUsers(t *testing.T, fresh func(t *testing.T) fakekit.Fake) {
	t.Run("HiddenUsers", func(t *testing.T) {
		t.Parallel()
		f, ok := fresh(t).(fakekit.HiddenUsersFake)
		if !ok {
			t.Skip("this provider's list leaves no user out by default")
		}
		f.Seed(30)
		hidden := f.CreateHiddenUsers()
		f.Seed(10)
		if len(hidden) == 0 {
			t.Fatal("CreateHiddenUsers created no user")
		}
		p := f.Provider()
		snap := f.Snapshot()
		listed := listAll(t, p)
		if len(listed) != len(snap) {
			t.Errorf("listed %d users, the provider has %d", len(listed), len(snap))
		}
		for _, id := range hidden {
			if !slices.Contains(listed, id) {
				t.Errorf("user %s, left out of the provider's list by default, was not listed", id)
			}
			u, err := p.FetchUser(context.Background(), id)
			if err != nil {
				t.Fatalf("FetchUser(%s): %v", id, err)
			}
			checkUser(t, p.Name(), u, snap[id])
			body, h := f.Webhook(provider.EventUserChanged, id)
			ev, err := p.ParseWebhook(body, h)
			if err != nil || ev.Kind != provider.EventUserChanged || ev.UserID != id {
				t.Errorf("webhook for %s: %+v, %v", id, ev, err)
			}
		}
	})
}
