package demo

import (
	"fmt"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

func newOtherDemoFake(name string) (fakekit.Fake, error) {
	switch name {
	case "clerk":
		return clerkfake.New(clerkfake.Options{}), nil
	case "workos":
		return workosfake.New(workosfake.Options{}), nil
	}
	return nil, fmt.Errorf("--provider %q: must be stackauth, clerk or workos", name)
}
