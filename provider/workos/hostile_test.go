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

const hostileOrg = "org_01EHWNCE74X7JSDV0X3SZ3KJNY"

// TestHostileServersOrganizations is TestHostileServers for the organization
// calls: only WorkOS's own not-found answer (entity_not_found, or a message
// naming the organization) is a deletion.
func TestHostileServersOrganizations(t *testing.T) {
	h := providertest.HostileOrganizations{
		New: func(t *testing.T, root, key string) provider.Organizations {
			c, err := workos.New(workos.Config{APIKey: key, WebhookSecret: "hostile-test-webhook-secret", APIURL: root})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Key:            "sk_test_hostile0test0secret0key0value",
		OrganizationID: hostileOrg,
		NotFound: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"entity_not_found","entity_id":"` + hostileOrg + `","message":"Organization not found: '` + hostileOrg + `'."}`))
		},
		EnvVar: "WORKOS_API_URL",
	}
	providertest.RunHostileOrganizations(t, h)
	h.NotFound = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Organization not found: '` + hostileOrg + `'."}`))
	}
	t.Run("MessageOnly", func(t *testing.T) { providertest.RunHostileOrganizations(t, h) })
}
