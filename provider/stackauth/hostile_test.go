package stackauth_test

import (
	"net/http"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/stackauth"
)

// TestHostileServers (docs/http.md; docs/guarantees.md §9, §10): only Stack Auth's own
// USER_NOT_FOUND answer is a deletion; redirects are not followed; echoed
// keys are scrubbed; endless answers are cut.
func TestHostileServers(t *testing.T) {
	providertest.RunHostile(t, providertest.Hostile{
		New: func(t *testing.T, root, key string) provider.Provider {
			c, err := stackauth.New(stackauth.Config{ProjectID: "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f61", SecretServerKey: key,
				WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: root})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Key:    "ssk_hostile0test0secret0server0key0value",
		UserID: "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60",
		// As Stack Auth answers a deleted user (its e2e snapshot of GET
		// /api/v1/users/{id} after a delete).
		NotFound: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("X-Stack-Known-Error", "USER_NOT_FOUND")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"USER_NOT_FOUND","error":"User not found."}`))
		},
		EnvVar: "STACK_API_URL",
	})
}
