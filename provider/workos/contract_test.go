package workos_test

import (
	"testing"

	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) fakekit.Fake {
		return workosfake.New(workosfake.Options{})
	})
}

// TestContractLenientCursor runs the contract against a fake whose cursors
// keep working after the user they name is deleted.
func TestContractLenientCursor(t *testing.T) {
	providertest.Run(t, func(t *testing.T) fakekit.Fake {
		return workosfake.New(workosfake.Options{LenientCursor: true, PageSize: 7})
	})
}

// TestContractOrganizations runs the organizations contract against the
// fake, with strict cursors (refused once their object is deleted) and with
// lenient ones at a small page size.
func TestContractOrganizations(t *testing.T) {
	t.Run("strict", func(t *testing.T) {
		providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
			return workosfake.New(workosfake.Options{})
		})
	})
	t.Run("lenient", func(t *testing.T) {
		providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
			return workosfake.New(workosfake.Options{LenientCursor: true, PageSize: 7})
		})
	})
}
