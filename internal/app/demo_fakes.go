package app

import (
	"fmt"

	"github.com/usersync/usersync/provider/providertest"
)

func newOtherDemoFake(name string) (providertest.Fake, error) {
	return nil, fmt.Errorf("--provider %q: must be stackauth, clerk or workos", name)
}
