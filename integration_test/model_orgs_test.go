package integration_test

// The organization part of the model test (model_test.go): with
// USERSYNC_ORGANIZATIONS=on, the schedule also draws organization and
// membership operations, each followed by the provider's webhook (with the
// same fates as user deliveries: duplicated, delayed, dropped, resent
// stale); the check then requires both organization tables to equal the
// provider and every row version of them to follow the provider's history.

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// modelOrgsFor decides whether a seed runs with organizations (-model-orgs).
// The decision has a generator of its own, so the rest of the seed's
// configuration and schedule do not depend on it.
func modelOrgsFor(t *testing.T, seed int) bool {
	switch *modelOrgsFlag {
	case "on":
		return true
	case "off":
		return false
	case "auto":
		return rand.New(rand.NewPCG(uint64(seed), 0x6f726773)).IntN(2) == 0
	}
	t.Fatalf("-model-orgs=%q: want auto, on or off", *modelOrgsFlag)
	return false
}

// modelOrgs is the organization state of one seed.
type modelOrgs struct {
	f       fakekit.OrganizationsFake
	live    []string // organizations live at the provider
	orgs    *objectHistory
	members *objectHistory
}

// startOrgs sets up the organization model: organizations that exist before
// the start without webhooks (when users were preloaded), and the
// histories.
func (m *modelRun) startOrgs() {
	f := m.s.Orgs()
	m.org = &modelOrgs{f: f, orgs: newObjectHistory(m.redactSet()), members: newObjectHistory(m.redactSet())}
	m.s.addOrgAudit()
	if m.cfg.Preload > 0 && len(m.live) > 0 {
		n := 1 + m.rng.IntN(8)
		m.org.live = append(m.org.live, f.SeedOrganizations(n, min(5, len(m.live)))...)
		m.mix["preload_organizations"] += n
	}
	m.observeOrgs()
}

// observeOrgs records the provider's organizations and memberships in the
// histories; called after every change at the provider (a user change may
// change the memberships that embed the user).
func (m *modelRun) observeOrgs() {
	if m.org == nil {
		return
	}
	m.org.orgs.observe(m.org.f.OrganizationsSnapshot())
	m.org.members.observe(m.org.f.MembershipsSnapshot())
}

// emitOrg sends the provider's organization event (the fate of the
// delivery is drawn as for users).
func (m *modelRun) emitOrg(kind provider.EventKind, id string) {
	body, h := m.org.f.OrganizationWebhook(kind, id)
	m.emitDelivery(modelDelivery{user: "organization " + id, kind: kind, body: body, header: h})
}

// emitMember sends the provider's membership event.
func (m *modelRun) emitMember(orgID, userID string, deleted bool) {
	body, h := m.org.f.MembershipWebhook(orgID, userID, deleted)
	m.emitDelivery(modelDelivery{user: "membership " + memberKey(orgID, userID), kind: provider.EventMembershipChanged, body: body, header: h})
}

func (m *modelRun) randomOrg() (string, int) {
	i := m.rng.IntN(len(m.org.live))
	return m.org.live[i], i
}

// randomMembership returns a membership live at the provider.
func (m *modelRun) randomMembership() (orgID, userID string, ok bool) {
	keys := make([]string, 0)
	for k := range m.org.f.MembershipsSnapshot() {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return "", "", false
	}
	slices.Sort(keys)
	orgID, userID, _ = strings.Cut(keys[m.rng.IntN(len(keys))], ":")
	return orgID, userID, true
}

// modelRoles are, per provider, the roles a membership changes between.
var modelRoles = map[string][]string{
	"stackauth": {""},
	"clerk":     {"org:admin", "org:member"},
	"workos":    {"admin", "member"},
}

func (m *modelRun) orgOps() []modelOp {
	f := m.org.f
	hasOrg := func() bool { return len(m.org.live) > 0 }
	hasOrgAndUser := func() bool { return len(m.org.live) > 0 && len(m.live) > 0 }
	hasMember := func() bool { return len(m.org.live) > 0 && len(f.MembershipsSnapshot()) > 0 }
	return []modelOp{
		{"org_create", 5, func() bool { return len(m.org.live) < 25 }, func() {
			creator := ""
			if len(m.live) > 0 && m.rng.IntN(3) > 0 {
				creator, _, _ = m.randomLive()
			}
			id := f.CreateOrganization(creator)
			m.org.live = append(m.org.live, id)
			m.observeOrgs()
			m.emitOrg(provider.EventOrganizationChanged, id)
			if creator != "" && m.s.CreatorSendsMembershipEvent() {
				m.emitMember(id, creator, false)
			}
		}},
		{"org_rename", 5, hasOrg, func() {
			id, _ := m.randomOrg()
			f.UpdateOrganization(id)
			m.observeOrgs()
			m.emitOrg(provider.EventOrganizationChanged, id)
		}},
		{"org_delete", 2, hasOrg, func() {
			id, i := m.randomOrg()
			if !f.DeleteOrganization(id) {
				m.t.Fatalf("model: DeleteOrganization(%s) = false for a live organization", id)
			}
			m.org.live = slices.Delete(m.org.live, i, i+1)
			m.observeOrgs()
			m.emitOrg(provider.EventOrganizationDeleted, id)
		}},
		{"member_add", 12, hasOrgAndUser, func() {
			org, _ := m.randomOrg()
			user, _, _ := m.randomLive()
			if f.AddMember(org, user, "") {
				m.observeOrgs()
				m.emitMember(org, user, false)
			}
		}},
		{"member_update", 3, hasMember, func() {
			org, user, _ := m.randomMembership()
			roles := modelRoles[m.cfg.Provider]
			if f.UpdateMember(org, user, roles[m.rng.IntN(len(roles))]) {
				m.observeOrgs()
				m.emitMember(org, user, false)
			}
		}},
		{"member_remove", 4, hasMember, func() {
			org, user, _ := m.randomMembership()
			if f.RemoveMember(org, user) {
				m.observeOrgs()
				m.emitMember(org, user, true)
			}
		}},
		{"org_burst", 1, hasOrg, func() {
			// Renames and membership changes of one organization in quick
			// succession: events during a running sync of it.
			id, _ := m.randomOrg()
			for range 2 + m.rng.IntN(3) {
				if len(m.live) > 0 && m.rng.IntN(2) == 0 {
					user, _, _ := m.randomLive()
					if f.AddMember(id, user, "") {
						m.observeOrgs()
						m.emitMember(id, user, false)
					} else if f.RemoveMember(id, user) {
						m.observeOrgs()
						m.emitMember(id, user, true)
					}
				} else {
					f.UpdateOrganization(id)
					m.observeOrgs()
					m.emitOrg(provider.EventOrganizationChanged, id)
				}
				time.Sleep(time.Duration(m.rng.IntN(30)) * time.Millisecond)
			}
		}},
	}
}

// checkOrgs requires both organization tables to equal the provider and
// every row version of them to follow the provider's history.
func (m *modelRun) checkOrgs(timeout time.Duration) {
	s, t := m.s, m.t
	modelAwait(t, timeout, "organizations_sync and memberships_sync converge to the provider", s.OrgDiff)
	versions := s.checkOrgAudit(t, m.org.orgs, m.org.members)
	m.mix["org_row_versions"] += versions
	if len(m.org.f.OrganizationsSnapshot()) > 0 && versions == 0 {
		t.Error("the provider has organizations, but no organization row was ever written")
	}
	t.Logf("seed %d: %d organizations, %d memberships at the provider; %d organization row versions",
		m.seed, len(m.org.f.OrganizationsSnapshot()), len(m.org.f.MembershipsSnapshot()), versions)
}
