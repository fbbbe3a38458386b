package workosfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/workos"
)

var _ fakekit.OrganizationsFake = (*Fake)(nil)

// orgState is the fake's organizations and AuthKit memberships, guarded by
// Fake.mu.
type orgState struct {
	byID    map[string]*orgJSON
	sorted  []*orgJSON // by id, which is creation order
	deleted map[string]*orgJSON

	members        map[string]*memberJSON   // by "<org>:<user>"
	memberByID     map[string]*memberJSON   // by om_ id
	byOrg          map[string][]*memberJSON // each by id (creation order)
	membersDeleted map[string]*memberJSON   // last state, by "<org>:<user>"
}

func newOrgState() orgState {
	return orgState{
		byID:           map[string]*orgJSON{},
		deleted:        map[string]*orgJSON{},
		members:        map[string]*memberJSON{},
		memberByID:     map[string]*memberJSON{},
		byOrg:          map[string][]*memberJSON{},
		membersDeleted: map[string]*memberJSON{},
	}
}

// Membership roles of the fake's environment (WorkOS's defaults).
const (
	// RoleAdmin is the role the creator of an organization gets.
	RoleAdmin = "admin"
	// RoleMember is the default role.
	RoleMember = "member"
)

// Organizations returns the client, which implements provider.Organizations.
func (f *Fake) Organizations() provider.Organizations { return f.client(f.key) }

// CreateOrganization adds an organization created now and returns its id.
// When creatorID names a user, that user becomes an active member with the
// admin role.
func (f *Fake) CreateOrganization(creatorID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	o := f.newOrgLocked(now)
	f.orgs.byID[o.ID] = o
	f.orgs.sorted = append(f.orgs.sorted, o)
	if _, ok := f.byID[creatorID]; ok {
		f.addMemberLocked(f.newMemberLocked(o.ID, creatorID, RoleAdmin, now))
	}
	return o.ID
}

// UpdateOrganization renames the organization and bumps its updated_at. Its
// memberships' organization_name changes with it (their updated_at does
// not: the name is read from the organization when the API answers).
func (f *Fake) UpdateOrganization(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.orgs.byID[id]
	if !ok {
		return false
	}
	o := *old
	// From now on the fake's own shape, not a raw object given to
	// PutOrganization.
	o.raw = nil
	for o.Name == old.Name {
		o.Name = orgNames[f.rng.IntN(len(orgNames))] + " " + orgSuffixes[f.rng.IntN(len(orgSuffixes))]
	}
	o.UpdatedAt = bumpedTime(o.UpdatedAt)
	f.replaceOrgLocked(old, &o)
	return true
}

// SetOrganizationFields overwrites fields of a stored organization (name,
// metadata, external_id, ...; not id, object or domains) and bumps its
// updated_at; false if it does not exist or a value has the wrong type.
func (f *Fake) SetOrganizationFields(id string, fields map[string]any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.orgs.byID[id]
	if !ok {
		return false
	}
	var m map[string]any
	if json.Unmarshal(old.apiBody(), &m) != nil {
		return false
	}
	for k, v := range fields {
		if k == "id" || k == "object" || k == "domains" {
			return false
		}
		m[k] = v
	}
	var o orgJSON
	if json.Unmarshal(mustJSON(m), &o) != nil {
		return false
	}
	if _, set := fields["updated_at"]; !set {
		o.UpdatedAt = bumpedTime(old.UpdatedAt)
	}
	o.AllowProfilesOutsideOrganization = nil
	if old.raw != nil {
		if _, set := fields["updated_at"]; !set {
			m["updated_at"] = o.UpdatedAt
		}
		o.raw = mustJSON(m)
	}
	f.replaceOrgLocked(old, &o)
	return true
}

// PutOrganization adds, or replaces, an organization whose
// GET /organizations/{id} answer (and list entry) is exactly raw, e.g. a
// payload WorkOS itself published; its webhooks carry raw without
// allow_profiles_outside_organization. raw must be a JSON object whose "id"
// is a WorkOS organization id. It returns the id.
func (f *Fake) PutOrganization(raw json.RawMessage) (string, error) {
	var o orgJSON
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("workosfake: PutOrganization: %w", err)
	}
	if err := workos.ValidateOrganizationID(o.ID); err != nil {
		return "", fmt.Errorf("workosfake: PutOrganization: %w", err)
	}
	o.raw = append(json.RawMessage(nil), raw...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.orgs.byID[o.ID]; ok {
		f.replaceOrgLocked(old, &o)
		return o.ID, nil
	}
	delete(f.orgs.deleted, o.ID)
	f.orgs.byID[o.ID] = &o
	i := f.orgIndexLocked(o.ID)
	f.orgs.sorted = slices.Insert(f.orgs.sorted, i, &o)
	return o.ID, nil
}

func (f *Fake) replaceOrgLocked(old, o *orgJSON) {
	f.orgs.byID[o.ID] = o
	if i := f.orgIndexLocked(o.ID); i < len(f.orgs.sorted) && f.orgs.sorted[i] == old {
		f.orgs.sorted[i] = o
	}
}

// orgIndexLocked returns the position of the first organization with id >= id.
func (f *Fake) orgIndexLocked(id string) int {
	return sort.Search(len(f.orgs.sorted), func(i int) bool { return f.orgs.sorted[i].ID >= id })
}

// DeleteOrganization removes the organization and all its memberships (as
// WorkOS does; no membership events are sent for them).
func (f *Fake) DeleteOrganization(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orgs.byID[id]
	if !ok {
		return false
	}
	delete(f.orgs.byID, id)
	f.orgs.deleted[id] = o
	if i := f.orgIndexLocked(id); i < len(f.orgs.sorted) && f.orgs.sorted[i] == o {
		f.orgs.sorted = slices.Delete(f.orgs.sorted, i, i+1)
	}
	for _, m := range slices.Clone(f.orgs.byOrg[id]) {
		f.removeMemberLocked(m)
	}
	delete(f.orgs.byOrg, id)
	return true
}

// deleteUserMembershipsLocked removes every membership of a deleted user.
func (f *Fake) deleteUserMembershipsLocked(userID string) {
	for _, m := range f.orgs.members {
		if m.UserID == userID {
			f.removeMemberLocked(m)
		}
	}
}

// AddMember makes the user an active member with the role (RoleMember when
// role is ""); false if either does not exist or the membership exists
// (whatever its status).
func (f *Fake) AddMember(orgID, userID, role string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.orgs.byID[orgID]; !ok {
		return false
	}
	if _, ok := f.byID[userID]; !ok {
		return false
	}
	if _, ok := f.orgs.members[orgID+":"+userID]; ok {
		return false
	}
	if role == "" {
		role = RoleMember
	}
	f.addMemberLocked(f.newMemberLocked(orgID, userID, role, time.Now()))
	return true
}

func (f *Fake) addMemberLocked(m *memberJSON) {
	f.orgs.members[m.key()] = m
	f.orgs.memberByID[m.ID] = m
	delete(f.orgs.membersDeleted, m.key())
	list := f.orgs.byOrg[m.OrganizationID]
	i := sort.Search(len(list), func(i int) bool { return list[i].ID >= m.ID })
	f.orgs.byOrg[m.OrganizationID] = slices.Insert(list, i, m)
}

func (f *Fake) removeMemberLocked(m *memberJSON) {
	delete(f.orgs.members, m.key())
	delete(f.orgs.memberByID, m.ID)
	f.orgs.membersDeleted[m.key()] = m
	list := f.orgs.byOrg[m.OrganizationID]
	if i := sort.Search(len(list), func(i int) bool { return list[i].ID >= m.ID }); i < len(list) && list[i].ID == m.ID {
		f.orgs.byOrg[m.OrganizationID] = slices.Delete(list, i, i+1)
	}
}

func (f *Fake) replaceMemberLocked(old, m *memberJSON) {
	f.orgs.members[m.key()] = m
	f.orgs.memberByID[m.ID] = m
	list := f.orgs.byOrg[m.OrganizationID]
	if i := sort.Search(len(list), func(i int) bool { return list[i].ID >= m.ID }); i < len(list) && list[i] == old {
		list[i] = m
	}
}

// UpdateMember changes the membership's role (role "" switches between
// RoleAdmin and RoleMember) and bumps its updated_at; false if there is no
// such membership.
func (f *Fake) UpdateMember(orgID, userID, role string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.orgs.members[orgID+":"+userID]
	if !ok {
		return false
	}
	m := *old
	switch {
	case role != "":
		m.Role = role
	case m.Role == RoleAdmin:
		m.Role = RoleMember
	default:
		m.Role = RoleAdmin
	}
	m.UpdatedAt = bumpedTime(m.UpdatedAt)
	f.replaceMemberLocked(old, &m)
	return true
}

// SetMembershipStatus sets the membership's status ("active", "inactive" or
// "pending", as PUT …/deactivate, …/reactivate or an invitation do) and
// bumps its updated_at; false if there is no such membership or the status
// is not one of those.
func (f *Fake) SetMembershipStatus(orgID, userID, status string) bool {
	if status != "active" && status != "inactive" && status != "pending" {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.orgs.members[orgID+":"+userID]
	if !ok {
		return false
	}
	m := *old
	m.Status = status
	m.UpdatedAt = bumpedTime(m.UpdatedAt)
	f.replaceMemberLocked(old, &m)
	return true
}

// RemoveMember deletes the membership; false if there was none.
func (f *Fake) RemoveMember(orgID, userID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.orgs.members[orgID+":"+userID]
	if !ok {
		return false
	}
	f.removeMemberLocked(m)
	return true
}

// SeedOrganizations creates n organizations quickly, each with up to perOrg
// distinct members drawn at random from the existing users (the first an
// admin, the rest members), and returns their ids in creation order.
func (f *Fake) SeedOrganizations(n, perOrg int) []string {
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	users := make([]string, 0, len(f.sorted))
	for _, u := range f.sorted {
		users = append(users, u.ID)
	}
	now := time.Now()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		o := f.newOrgLocked(now)
		f.orgs.byID[o.ID] = o
		f.orgs.sorted = append(f.orgs.sorted, o)
		ids = append(ids, o.ID)
		k := min(perOrg, len(users))
		for j := 0; j < k; j++ {
			// A partial Fisher-Yates shuffle draws k distinct users.
			r := j + f.rng.IntN(len(users)-j)
			users[j], users[r] = users[r], users[j]
			role := RoleMember
			if j == 0 {
				role = RoleAdmin
			}
			f.addMemberLocked(f.newMemberLocked(o.ID, users[j], role, now))
		}
	}
	return ids
}

// OrganizationsSnapshot returns every live organization's object as
// GET /organizations/{id} returns it, by id.
func (f *Fake) OrganizationsSnapshot() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]json.RawMessage, len(f.orgs.byID))
	for id, o := range f.orgs.byID {
		out[id] = o.apiBody()
	}
	return out
}

// MembershipsSnapshot returns every membership (of every status) as the
// membership list returns it, by "<organization_id>:<user_id>".
func (f *Fake) MembershipsSnapshot() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]json.RawMessage, len(f.orgs.members))
	for k, m := range f.orgs.members {
		out[k] = f.memberAPIBodyLocked(m)
	}
	return out
}

// memberAPIBodyLocked is the membership as the API returns it, with the
// organization's current name and the user's current object embedded.
func (f *Fake) memberAPIBodyLocked(m *memberJSON) json.RawMessage {
	var name string
	if o, ok := f.orgs.byID[m.OrganizationID]; ok {
		name = o.Name
	}
	var user json.RawMessage
	if u, ok := f.byID[m.UserID]; ok {
		user = u.body()
	} else {
		user = json.RawMessage("null")
	}
	return m.apiBody(name, user)
}

// OrganizationWebhook builds a signed delivery: organization.created (never
// updated) or organization.updated with the organization's current object,
// or organization.deleted with its last object. WorkOS's payloads lack the
// deprecated allow_profiles_outside_organization.
func (f *Fake) OrganizationWebhook(kind provider.EventKind, orgID string) ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	o, live := f.orgs.byID[orgID]
	if !live {
		o = f.orgs.deleted[orgID]
	}
	if o == nil {
		o = f.newOrgLocked(now)
		o.ID = orgID
	}
	typ := "organization.updated"
	switch {
	case kind == provider.EventOrganizationDeleted:
		typ = "organization.deleted"
	case o.CreatedAt == o.UpdatedAt:
		typ = "organization.created"
	}
	evID := "event_" + f.ulidLocked(now)
	data := o.eventBody()
	f.mu.Unlock()
	return f.event(evID, typ, data, now)
}

// MembershipWebhook builds a signed delivery: organization_membership.created
// (never updated) or .updated with the membership's current state, or
// .deleted with its last state; the data has neither organization_name nor
// user, as WorkOS sends it.
func (f *Fake) MembershipWebhook(orgID, userID string, deleted bool) ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	key := orgID + ":" + userID
	m := f.orgs.members[key]
	if m == nil {
		m = f.orgs.membersDeleted[key]
	}
	if m == nil {
		m = f.newMemberLocked(orgID, userID, RoleMember, now)
	}
	typ := "organization_membership.updated"
	switch {
	case deleted:
		typ = "organization_membership.deleted"
	case m.CreatedAt == m.UpdatedAt:
		typ = "organization_membership.created"
	}
	evID := "event_" + f.ulidLocked(now)
	data := m.eventBody()
	f.mu.Unlock()
	return f.event(evID, typ, data, now)
}

// OrganizationDomainWebhook builds a signed organization_domain.verified
// delivery for one of the organization's domains (one is made up when it
// has none).
func (f *Fake) OrganizationDomainWebhook(orgID string) ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	var d domainJSON
	if o, ok := f.orgs.byID[orgID]; ok && len(o.Domains) > 0 {
		d = o.Domains[0]
	} else {
		o := f.newOrgLocked(now)
		d = domainJSON{Object: "organization_domain", ID: "org_domain_" + f.ulidLocked(now), Domain: strings.ToLower(o.ID[4:]) + ".com",
			State: "verified", VerificationStrategy: "dns", VerificationToken: randomBase62(25), CreatedAt: isoTime(now), UpdatedAt: isoTime(now)}
	}
	d.OrganizationID = orgID
	evID := "event_" + f.ulidLocked(now)
	f.mu.Unlock()
	return f.event(evID, "organization_domain.verified", d, now)
}
