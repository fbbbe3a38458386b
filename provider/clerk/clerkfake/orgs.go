package clerkfake

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// Organizations and memberships, as docs/providers.md ("Organizations")
// describes Clerk's: an Organization object served by GET
// /v1/organizations/{id_or_slug} and listed ({data, total_count}) by GET
// /v1/organizations; OrganizationMembership objects, which embed the whole
// organization (as it is now) and the member's public user data (as the user
// is now), listed by GET /v1/organizations/{id}/memberships. Deleting an
// organization deletes its memberships, deleting a user deletes theirs, and
// an organization's created_by user becomes its first member, org:admin.

var _ fakekit.OrganizationsFake = (*Fake)(nil)

// orgJSON is Clerk's Organization object, in the field order of the
// documented organization.created example. The counts appear only where
// Clerk adds them (webhooks, include_members_count).
type orgJSON struct {
	Object                               string         `json:"object"`
	ID                                   string         `json:"id"`
	Name                                 string         `json:"name"`
	Slug                                 string         `json:"slug"`
	ImageURL                             string         `json:"image_url"`
	HasImage                             bool           `json:"has_image"`
	MembersCount                         *int           `json:"members_count,omitempty"`
	MissingMemberWithElevatedPermissions *bool          `json:"missing_member_with_elevated_permissions,omitempty"`
	PendingInvitationsCount              *int           `json:"pending_invitations_count,omitempty"`
	MaxAllowedMemberships                int            `json:"max_allowed_memberships"`
	AdminDeleteEnabled                   bool           `json:"admin_delete_enabled"`
	PublicMetadata                       map[string]any `json:"public_metadata"`
	PrivateMetadata                      map[string]any `json:"private_metadata"`
	CreatedBy                            string         `json:"created_by,omitempty"`
	CreatedAt                            int64          `json:"created_at"`
	UpdatedAt                            int64          `json:"updated_at"`
}

// membershipJSON is Clerk's OrganizationMembership object, in the field
// order of the documented organizationMembership.created example.
type membershipJSON struct {
	Object          string          `json:"object"`
	ID              string          `json:"id"`
	Role            string          `json:"role"`
	RoleName        string          `json:"role_name"`
	Permissions     []string        `json:"permissions"`
	PublicMetadata  map[string]any  `json:"public_metadata"`
	PrivateMetadata map[string]any  `json:"private_metadata"`
	Organization    json.RawMessage `json:"organization"`
	PublicUserData  publicUserData  `json:"public_user_data"`
	CreatedAt       int64           `json:"created_at"`
	UpdatedAt       int64           `json:"updated_at"`
}

// publicUserData is the member as a membership shows them.
type publicUserData struct {
	UserID          string  `json:"user_id"`
	FirstName       *string `json:"first_name"`
	LastName        *string `json:"last_name"`
	ProfileImageURL string  `json:"profile_image_url"`
	ImageURL        string  `json:"image_url"`
	HasImage        bool    `json:"has_image"`
	Identifier      string  `json:"identifier"`
}

type fakeOrg struct {
	seq     int64
	obj     orgJSON
	members map[string]*fakeMember // by user id
	sorted  []*fakeMember          // by (CreatedAt, seq): the +created_at order
}

type fakeMember struct {
	seq       int64
	id        string
	userID    string
	role      string
	createdAt int64
	updatedAt int64
}

// orgState is the organization side of the fake, guarded by Fake.mu.
type orgState struct {
	orgs      map[string]*fakeOrg
	orgSorted []*fakeOrg // by (CreatedAt, seq)
	bySlug    map[string]*fakeOrg
	// gone keeps what webhooks about deleted organizations and ended
	// memberships carry: the slug of a deleted organization, the last
	// membership object (as a webhook embeds it) of an ended membership.
	goneSlug       map[string]string
	goneMembership map[string]json.RawMessage
}

func (s *orgState) init() {
	if s.orgs == nil {
		s.orgs = map[string]*fakeOrg{}
		s.bySlug = map[string]*fakeOrg{}
		s.goneSlug = map[string]string{}
		s.goneMembership = map[string]json.RawMessage{}
	}
}

var orgWords = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne",
	"Aperture", "Soylent", "Wonka", "Vandelay", "Pied Piper", "Nakatomi", "Zoë's", "Café", "O'Brien & Sons"}
var orgSuffixes = []string{"Corp", "Labs", "Inc", "GmbH", "Team", "Studio", "Collective", "Partners"}

// Organizations returns the client's organization reader (the same client
// as Provider).
func (f *Fake) Organizations() provider.Organizations { return f.client(f.key) }

func orgLess(a, b *fakeOrg) bool {
	if a.obj.CreatedAt != b.obj.CreatedAt {
		return a.obj.CreatedAt < b.obj.CreatedAt
	}
	return a.seq < b.seq
}

func memberLess(a, b *fakeMember) bool {
	if a.createdAt != b.createdAt {
		return a.createdAt < b.createdAt
	}
	return a.seq < b.seq
}

// insertSorted inserts x into the sorted slice s.
func insertSorted[T any](s []T, x T, less func(a, b T) bool) []T {
	i := sort.Search(len(s), func(i int) bool { return less(x, s[i]) })
	s = append(s, x)
	copy(s[i+1:], s[i:])
	s[i] = x
	return s
}

// removeSorted removes x from the sorted slice s.
func removeSorted[T comparable](s []T, x T, less func(a, b T) bool) []T {
	i := sort.Search(len(s), func(i int) bool { return !less(s[i], x) })
	for ; i < len(s); i++ {
		if s[i] == x {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// newOrgLocked makes an organization created at createdMs (not inserted).
func (f *Fake) newOrgLocked(createdMs int64, creatorID string) *fakeOrg {
	f.seq++
	name := orgWords[f.rng.IntN(len(orgWords))] + " " + orgSuffixes[f.rng.IntN(len(orgSuffixes))]
	id := "org_" + f.ksuidLocked(time.UnixMilli(createdMs))
	o := &fakeOrg{seq: f.seq, members: map[string]*fakeMember{}, obj: orgJSON{
		Object:             "organization",
		ID:                 id,
		Name:               name,
		Slug:               f.slugLocked(name),
		ImageURL:           "https://img.clerk.com/" + f.base62(32),
		AdminDeleteEnabled: true,
		PublicMetadata:     map[string]any{},
		PrivateMetadata:    map[string]any{},
		CreatedBy:          creatorID,
		CreatedAt:          createdMs,
		UpdatedAt:          createdMs,
	}}
	if f.rng.IntN(4) == 0 {
		o.obj.PublicMetadata = map[string]any{"plan": plans[f.rng.IntN(len(plans))]}
		o.obj.PrivateMetadata = map[string]any{"stripe_customer_id": "cus_" + f.base62(14)}
	}
	if f.rng.IntN(5) == 0 {
		o.obj.MaxAllowedMemberships = 5 * (1 + f.rng.IntN(4))
	}
	return o
}

// slugLocked returns a slug for name that no organization has (lowercase
// letters, digits and dashes).
func (f *Fake) slugLocked(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.TrimRight(b.String(), "-")
	for {
		slug := base + "-" + strings.ToLower(f.base62(6))
		if _, taken := f.org.bySlug[slug]; !taken {
			return slug
		}
	}
}

func (f *Fake) insertOrgLocked(o *fakeOrg) {
	f.org.init()
	f.org.orgs[o.obj.ID] = o
	f.org.bySlug[o.obj.Slug] = o
	f.org.orgSorted = insertSorted(f.org.orgSorted, o, orgLess)
}

// addMemberLocked makes userID a member of o created at createdMs.
func (f *Fake) addMemberLocked(o *fakeOrg, userID, role string, createdMs int64) {
	f.seq++
	m := &fakeMember{seq: f.seq, id: "orgmem_" + f.ksuidLocked(time.UnixMilli(createdMs)), userID: userID, role: role,
		createdAt: createdMs, updatedAt: createdMs}
	o.members[userID] = m
	o.sorted = insertSorted(o.sorted, m, memberLess)
}

// CreateOrganization adds an organization created now; creatorID, when not
// "", is its created_by and first member (org:admin), as Clerk does it.
func (f *Fake) CreateOrganization(creatorID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	if _, ok := f.byID[creatorID]; creatorID != "" && !ok {
		creatorID = "" // Clerk refuses an unknown created_by; the fake drops it
	}
	now := time.Now().UnixMilli()
	o := f.newOrgLocked(now, creatorID)
	f.insertOrgLocked(o)
	if creatorID != "" {
		f.addMemberLocked(o, creatorID, roleAdmin, now)
	}
	return o.obj.ID
}

// UpdateOrganization renames the organization and bumps updated_at; its
// memberships, which embed it, change with it.
func (f *Fake) UpdateOrganization(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	o, ok := f.org.orgs[id]
	if !ok {
		return false
	}
	old := o.obj.Name
	for o.obj.Name == old {
		o.obj.Name = orgWords[f.rng.IntN(len(orgWords))] + " " + orgSuffixes[f.rng.IntN(len(orgSuffixes))]
	}
	o.obj.UpdatedAt = max(time.Now().UnixMilli(), o.obj.UpdatedAt+1)
	return true
}

// DeleteOrganization removes the organization and all its memberships
// (Clerk sends no membership events for them).
func (f *Fake) DeleteOrganization(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	o, ok := f.org.orgs[id]
	if !ok {
		return false
	}
	for _, m := range o.sorted {
		f.org.goneMembership[id+":"+m.userID] = f.membershipLocked(o, m, true)
	}
	delete(f.org.orgs, id)
	delete(f.org.bySlug, o.obj.Slug)
	f.org.goneSlug[id] = o.obj.Slug
	f.org.orgSorted = removeSorted(f.org.orgSorted, o, orgLess)
	return true
}

const (
	roleAdmin  = "org:admin"
	roleMember = "org:member"
)

// validRole reports whether role is a role key the fake's instance has: the
// two default roles and custom "org:<key>" roles.
func validRole(role string) bool {
	key, ok := strings.CutPrefix(role, "org:")
	if !ok || key == "" || strings.HasPrefix(key, "sys_") {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// AddMember makes the user a member with role (default org:member); false if
// either does not exist, the membership exists or the role is not a role key.
func (f *Fake) AddMember(orgID, userID, role string) bool {
	if role == "" {
		role = roleMember
	}
	if !validRole(role) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	o, ok := f.org.orgs[orgID]
	if !ok {
		return false
	}
	if _, ok := f.byID[userID]; !ok {
		return false
	}
	if _, ok := o.members[userID]; ok {
		return false
	}
	f.addMemberLocked(o, userID, role, time.Now().UnixMilli())
	delete(f.org.goneMembership, orgID+":"+userID)
	return true
}

// UpdateMember changes the membership's role (role "" = org:member) and bumps
// its updated_at; false if there is no such membership or role.
func (f *Fake) UpdateMember(orgID, userID, role string) bool {
	if role == "" {
		role = roleMember
	}
	if !validRole(role) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	o, ok := f.org.orgs[orgID]
	if !ok {
		return false
	}
	m, ok := o.members[userID]
	if !ok {
		return false
	}
	m.role = role
	m.updatedAt = max(time.Now().UnixMilli(), m.updatedAt+1)
	return true
}

// RemoveMember ends the membership.
func (f *Fake) RemoveMember(orgID, userID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	o, ok := f.org.orgs[orgID]
	if !ok {
		return false
	}
	if _, ok := o.members[userID]; !ok {
		return false
	}
	f.removeMemberLocked(o, userID)
	return true
}

func (f *Fake) removeMemberLocked(o *fakeOrg, userID string) {
	m := o.members[userID]
	delete(o.members, userID)
	o.sorted = removeSorted(o.sorted, m, memberLess)
	// The deletion event carries the membership as it was, with the
	// organization's counts after it.
	f.org.goneMembership[o.obj.ID+":"+userID] = f.membershipWithUserLocked(o, m, true, f.publicUserDataLocked(userID))
}

// dropUserMembershipsLocked ends every membership of a user being deleted,
// as Clerk does; call it before the user is removed.
func (f *Fake) dropUserMembershipsLocked(userID string) {
	f.org.init()
	for _, o := range f.org.orgs {
		if _, ok := o.members[userID]; ok {
			f.removeMemberLocked(o, userID)
		}
	}
}

// SeedOrganizations creates n organizations quickly, created over the last
// n/3 milliseconds in groups of three sharing a millisecond, each with up to
// perOrg distinct members drawn at random from the existing users (the first
// its creator, org:admin; the others org:member), and returns their ids in
// creation order.
func (f *Fake) SeedOrganizations(n, perOrg int) []string {
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.org.init()
	users := make([]string, 0, len(f.sorted))
	for _, u := range f.sorted {
		users = append(users, u.obj.ID)
	}
	now := time.Now().UnixMilli()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		created := now - int64((n-1-i)/3)
		picked := f.sampleLocked(users, perOrg)
		creator := ""
		if len(picked) > 0 {
			creator = picked[0]
		}
		o := f.newOrgLocked(created, creator)
		f.org.orgs[o.obj.ID] = o
		f.org.bySlug[o.obj.Slug] = o
		f.org.orgSorted = append(f.org.orgSorted, o) // sorted once below
		for j, u := range picked {
			role := roleMember
			if j == 0 {
				role = roleAdmin
			}
			f.addMemberLocked(o, u, role, created)
		}
		ids = append(ids, o.obj.ID)
	}
	sort.SliceStable(f.org.orgSorted, func(i, j int) bool { return orgLess(f.org.orgSorted[i], f.org.orgSorted[j]) })
	return ids
}

// sampleLocked returns up to k distinct elements of s, at random.
func (f *Fake) sampleLocked(s []string, k int) []string {
	k = max(0, min(k, len(s)))
	if 2*k >= len(s) {
		out := make([]string, 0, k)
		for _, j := range f.rng.Perm(len(s))[:k] {
			out = append(out, s[j])
		}
		return out
	}
	taken := make(map[int]bool, k)
	out := make([]string, 0, k)
	for len(out) < k {
		j := f.rng.IntN(len(s))
		if !taken[j] {
			taken[j] = true
			out = append(out, s[j])
		}
	}
	return out
}

// OrganizationsSnapshot returns every live organization's object as GET
// /v1/organizations/{id} returns it.
func (f *Fake) OrganizationsSnapshot() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]json.RawMessage, len(f.org.orgs))
	for id, o := range f.org.orgs {
		out[id] = f.orgBodyLocked(o, false, false)
	}
	return out
}

// MembershipsSnapshot returns every membership's object as the
// organization's membership list returns it, by "<org id>:<user id>".
func (f *Fake) MembershipsSnapshot() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]json.RawMessage{}
	for id, o := range f.org.orgs {
		for uid, m := range o.members {
			out[id+":"+uid] = f.membershipLocked(o, m, false)
		}
	}
	return out
}

// orgBodyLocked renders the organization: with members_count (the API's
// include_members_count), and with every count a webhook carries.
func (f *Fake) orgBodyLocked(o *fakeOrg, membersCount, webhook bool) json.RawMessage {
	obj := o.obj
	if membersCount || webhook {
		n := len(o.members)
		obj.MembersCount = &n
	}
	if webhook {
		missing := true
		for _, m := range o.members {
			if m.role == roleAdmin {
				missing = false
				break
			}
		}
		zero := 0
		obj.MissingMemberWithElevatedPermissions, obj.PendingInvitationsCount = &missing, &zero
	}
	return mustJSON(&obj)
}

func (f *Fake) membershipLocked(o *fakeOrg, m *fakeMember, webhook bool) json.RawMessage {
	return f.membershipWithUserLocked(o, m, webhook, f.publicUserDataLocked(m.userID))
}

func (f *Fake) membershipWithUserLocked(o *fakeOrg, m *fakeMember, webhook bool, pud publicUserData) json.RawMessage {
	roleName, perms := roleInfo(m.role)
	return mustJSON(&membershipJSON{
		Object:          "organization_membership",
		ID:              m.id,
		Role:            m.role,
		RoleName:        roleName,
		Permissions:     perms,
		PublicMetadata:  map[string]any{},
		PrivateMetadata: map[string]any{},
		Organization:    f.orgBodyLocked(o, false, webhook),
		PublicUserData:  pud,
		CreatedAt:       m.createdAt,
		UpdatedAt:       m.updatedAt,
	})
}

// publicUserDataLocked is the user as memberships show them now: names,
// image, and their identifier (primary email address, else username, else
// primary phone number).
func (f *Fake) publicUserDataLocked(userID string) publicUserData {
	pud := publicUserData{UserID: userID, ProfileImageURL: "https://www.gravatar.com/avatar?d=mp"}
	u, ok := f.byID[userID]
	if !ok {
		return pud
	}
	o := &u.obj
	pud.FirstName, pud.LastName = o.FirstName, o.LastName
	pud.ImageURL, pud.HasImage = o.ImageURL, o.HasImage
	if o.ProfileImageURL != "" {
		pud.ProfileImageURL = o.ProfileImageURL
	}
	if o.PrimaryEmailAddressID != nil {
		for _, e := range o.EmailAddresses {
			if e.ID == *o.PrimaryEmailAddressID {
				pud.Identifier = e.EmailAddress
			}
		}
	}
	if pud.Identifier == "" && o.Username != nil {
		pud.Identifier = *o.Username
	}
	if pud.Identifier == "" && o.PrimaryPhoneNumberID != nil {
		for _, p := range o.PhoneNumbers {
			if pm, ok := p.(map[string]any); ok && pm["id"] == *o.PrimaryPhoneNumberID {
				pud.Identifier, _ = pm["phone_number"].(string)
			}
		}
	}
	return pud
}

// roleInfo returns a role's name and permissions as Clerk's default roles
// have them (custom roles: a name from the key, no permissions).
func roleInfo(role string) (string, []string) {
	switch role {
	case roleAdmin:
		return "Admin", []string{"org:sys_profile:manage", "org:sys_profile:delete", "org:sys_memberships:read",
			"org:sys_memberships:manage", "org:sys_domains:read", "org:sys_domains:manage", "org:sys_billing:read",
			"org:sys_billing:manage"}
	case roleMember:
		return "Member", []string{"org:sys_memberships:read", "org:sys_billing:read"}
	}
	key := strings.TrimPrefix(role, "org:")
	name := strings.ReplaceAll(key, "_", " ")
	if name != "" {
		name = strings.ToUpper(name[:1]) + name[1:]
	}
	return name, []string{}
}

// OrganizationWebhook builds a signed organization.created (never updated)
// or organization.updated delivery with the organization's current object
// and counts, or organization.deleted with {object, id, slug, deleted}.
func (f *Fake) OrganizationWebhook(kind provider.EventKind, orgID string) ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	f.org.init()
	var typ string
	var data any
	o, ok := f.org.orgs[orgID]
	switch {
	case kind == provider.EventOrganizationDeleted:
		typ = "organization.deleted"
		slug := f.org.goneSlug[orgID]
		if ok {
			slug = o.obj.Slug
		}
		data = map[string]any{"object": "organization", "id": orgID, "slug": slug, "deleted": true}
	case ok:
		typ = "organization.updated"
		if o.obj.UpdatedAt == o.obj.CreatedAt {
			typ = "organization.created"
		}
		data = f.orgBodyLocked(o, false, true)
	default:
		typ = "organization.updated"
		data = map[string]any{"object": "organization", "id": orgID}
	}
	f.mu.Unlock()
	return f.event(typ, data, now)
}

// MembershipWebhook builds a signed organizationMembership.created (never
// updated), .updated or, with deleted, .deleted delivery; each carries the
// whole membership (the organization embedded with its counts). The
// deletion of a membership that has ended carries it as it was.
func (f *Fake) MembershipWebhook(orgID, userID string, deleted bool) ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	f.org.init()
	var data json.RawMessage
	typ := "organizationMembership.updated"
	if o, ok := f.org.orgs[orgID]; ok {
		if m, ok := o.members[userID]; ok {
			data = f.membershipLocked(o, m, true)
			if m.updatedAt == m.createdAt {
				typ = "organizationMembership.created"
			}
		}
	}
	if deleted {
		typ = "organizationMembership.deleted"
		if data == nil {
			data = f.org.goneMembership[orgID+":"+userID]
		}
	}
	if data == nil {
		// Never a membership: the shape all the same.
		f.seq++
		m := &fakeMember{seq: f.seq, id: "orgmem_" + f.ksuidLocked(now), userID: userID, role: roleMember,
			createdAt: now.UnixMilli(), updatedAt: now.UnixMilli()}
		o := &fakeOrg{obj: orgJSON{Object: "organization", ID: orgID, PublicMetadata: map[string]any{}, PrivateMetadata: map[string]any{},
			CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()}}
		data = f.membershipLocked(o, m, true)
	}
	f.mu.Unlock()
	return f.event(typ, data, now)
}
