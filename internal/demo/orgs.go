package demo

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// maxDemoOrganizations bounds the organizations the demo seeds (one per 20
// users up to this), so each simulated change stays cheap.
const maxDemoOrganizations = 200

// demoRoles are the roles a simulated membership changes between, by
// provider (Stack Auth has none).
var demoRoles = map[string][]string{
	"clerk":  {"org:admin", "org:member"},
	"workos": {"admin", "member"},
}

// delivery is one signed webhook delivery of the simulated provider.
type delivery struct {
	body   []byte
	header http.Header
}

// orgEvent makes one organization change at the simulated provider (an
// organization created, renamed or deleted; a member added, given another
// role or removed) and returns the webhooks the provider sends about it: as
// the real one, Stack Auth announces neither a team's creator joining nor
// the memberships a team's deletion ends.
func orgEvent(rng *rand.Rand, prov string, f fakekit.OrganizationsFake, users []string) []delivery {
	orgs := sortedKeys(f.OrganizationsSnapshot())
	members := sortedKeys(f.MembershipsSnapshot())
	orgHook := func(kind provider.EventKind, id string) []delivery {
		b, h := f.OrganizationWebhook(kind, id)
		return []delivery{{b, h}}
	}
	memberHook := func(org, user string, deleted bool) []delivery {
		b, h := f.MembershipWebhook(org, user, deleted)
		return []delivery{{b, h}}
	}
	randomUser := func() string {
		if len(users) == 0 {
			return ""
		}
		return users[rng.IntN(len(users))]
	}
	switch r := rng.IntN(10); {
	case r < 2 || len(orgs) < 2:
		creator := randomUser()
		id := f.CreateOrganization(creator)
		ds := orgHook(provider.EventOrganizationChanged, id)
		if creator != "" && prov != "stackauth" {
			ds = append(ds, memberHook(id, creator, false)...)
		}
		return ds
	case r < 4:
		id := orgs[rng.IntN(len(orgs))]
		f.UpdateOrganization(id)
		return orgHook(provider.EventOrganizationChanged, id)
	case r < 5 && len(orgs) > 3:
		id := orgs[rng.IntN(len(orgs))]
		f.DeleteOrganization(id)
		return orgHook(provider.EventOrganizationDeleted, id)
	case r < 8 || len(members) == 0:
		org, user := orgs[rng.IntN(len(orgs))], randomUser()
		if user == "" || !f.AddMember(org, user, "") {
			return nil
		}
		return memberHook(org, user, false)
	case r < 9 && len(demoRoles[prov]) > 0:
		org, user, _ := strings.Cut(members[rng.IntN(len(members))], ":")
		roles := demoRoles[prov]
		if !f.UpdateMember(org, user, roles[rng.IntN(len(roles))]) {
			return nil
		}
		return memberHook(org, user, false)
	default:
		org, user, _ := strings.Cut(members[rng.IntN(len(members))], ":")
		if !f.RemoveMember(org, user) {
			return nil
		}
		return memberHook(org, user, true)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
