package providertest

import (
	"context"
	"net/http"
	"testing"

	"github.com/usersync/usersync/provider"
)

// HostileOrganizations describes a provider client for
// [RunHostileOrganizations].
type HostileOrganizations struct {
	// New returns a client of the API served at root (scheme://host:port,
	// no path) that authenticates with key.
	New func(t *testing.T, root, key string) provider.Organizations
	// Key is the client's secret credential.
	Key string
	// OrganizationID is a well-formed organization id for the provider.
	OrganizationID string
	// NotFound writes the provider's own answer for an organization that
	// does not exist (status, headers and body as the real API sends them).
	NotFound http.HandlerFunc
	// EnvVar names the API URL variable the error hints must name.
	EnvVar string
}

// RunHostileOrganizations is [RunHostile] for the organization calls
// (docs/http.md; docs/guarantees.md §9, §10): only the provider's own
// not-found answer says an organization is gone; a redirect is never
// followed with the credential; an error answer that echoes the credential
// does not put it in the error; an answer announced too large is refused.
func RunHostileOrganizations(t *testing.T, h HostileOrganizations) {
	t.Helper()
	ctx := context.Background()
	runHostile(t, hostileCase{key: h.Key, envVar: h.EnvVar, notFound: h.NotFound, id: h.OrganizationID,
		target: func(t *testing.T, root string) hostileTarget {
			o := h.New(t, root, h.Key)
			return hostileTarget{
				gone:  provider.ErrOrganizationNotFound,
				fetch: func() error { _, err := o.FetchOrganization(ctx, h.OrganizationID); return err },
				others: map[string]func() error{
					"ListOrganizations": func() error { _, err := o.ListOrganizations(ctx, ""); return err },
					"ListMemberships":   func() error { _, err := o.ListMemberships(ctx, h.OrganizationID, ""); return err },
				},
			}
		}})
}
