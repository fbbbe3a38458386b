package workos_test

import (
	"net/http"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/workos"
)

const hostileUser = "user_01E4ZCR3C56J083X43JQXF3JK5"

// TestHostileServers (docs/http.md; docs/guarantees.md §9, §10): only WorkOS's own
// entity_not_found answer is a deletion; redirects are not followed; echoed
// keys are scrubbed; endless answers are cut.
func TestHostileServers(t *testing.T) {
	h := providertest.Hostile{
		New: func(t *testing.T, root, key string) provider.Provider {
			c, err := workos.New(workos.Config{APIKey: key, WebhookSecret: "hostile-test-webhook-secret", APIURL: root})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Key:    "sk_test_hostile0test0secret0key0value",
		UserID: hostileUser,
		NotFound: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"entity_not_found","entity_id":"` + hostileUser + `","message":"User not found: '` + hostileUser + `'."}`))
		},
		EnvVar: "WORKOS_API_URL",
	}
	providertest.RunHostile(t, h)
	// The API reference requires only "message": a message naming the
	// requested user is WorkOS's answer too.
	h.NotFound = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"User not found: '` + hostileUser + `'."}`))
	}
	t.Run("MessageOnly", func(t *testing.T) { providertest.RunHostile(t, h) })
}
