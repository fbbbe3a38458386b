package clerk_test

import (
	"testing"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
)

func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) fakekit.Fake {
		return clerkfake.New(clerkfake.Options{})
	})
}

// TestContractSmallPages runs the contract with pages smaller than the groups
// of users sharing a millisecond, to exercise the listing's overlap.
func TestContractSmallPages(t *testing.T) {
	providertest.Run(t, func(t *testing.T) fakekit.Fake {
		return clerkfake.New(clerkfake.Options{PageSize: 2})
	})
}
