package clerk_test

import (
	"net/http"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/providertest"
)

// TestHostileServers (docs/http.md; docs/guarantees.md §9, §10): only Clerk's own
// resource_not_found answer is a deletion; redirects are not followed;
// echoed keys are scrubbed; endless answers are cut.
func TestHostileServers(t *testing.T) {
	providertest.RunHostile(t, providertest.Hostile{
		New: func(t *testing.T, root, key string) provider.Provider {
			c, err := clerk.New(clerk.Config{SecretKey: key, WebhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", APIURL: root + "/v1"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Key:    "sk_test_hostile0test0secret0key0value",
		UserID: "user_2abcDEF345ghiJKL678",
		// Clerk's ClerkErrors answer for a missing user.
		NotFound: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"message":"not found","long_message":"Resource not found","code":"resource_not_found"}],"clerk_trace_id":"abc123"}`))
		},
		EnvVar: "CLERK_API_URL",
	})
}
