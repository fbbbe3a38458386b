package stackfake_test

import (
	"testing"

	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
)

// TestContract runs the provider contract suite against the Stack Auth
// client and this fake.
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) fakekit.Fake {
		// A project that requires email verification: users with an unverified
		// email are restricted, and the list leaves them out unless asked.
		return stackfake.New(stackfake.Options{Seed: int64(len(t.Name())), RequireEmailVerification: true})
	})
}

// TestOrganizationsContract runs the organization contract suite against
// the Stack Auth client and this fake's teams.
func TestOrganizationsContract(t *testing.T) {
	providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
		return stackfake.New(stackfake.Options{Seed: int64(len(t.Name())), RequireEmailVerification: true})
	})
}
