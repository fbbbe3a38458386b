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
