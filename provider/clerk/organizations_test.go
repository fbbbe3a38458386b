package clerk_test

import (
	"testing"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
)

func TestOrganizationsContract(t *testing.T) {
	providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
		return clerkfake.New(clerkfake.Options{})
	})
}

// TestOrganizationsContractSmallPages runs the organization contract with
// pages of 7 (an overlap of 1), so that every listing has many pages and the
// deletions between them exercise the overlap check.
func TestOrganizationsContractSmallPages(t *testing.T) {
	providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
		return clerkfake.New(clerkfake.Options{PageSize: 7})
	})
}
