package workosfake

import (
	"encoding/json"
	"strings"
	"time"
)

// orgJSON is WorkOS's Organization, in the field order of workos-go
// testdata/organization.json. Stored values are replaced, never mutated.
type orgJSON struct {
	Object           string            `json:"object"`
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Domains          []domainJSON      `json:"domains"`
	Metadata         map[string]string `json:"metadata"`
	ExternalID       *string           `json:"external_id"`
	StripeCustomerID *string           `json:"stripe_customer_id,omitempty"`
	CreatedAt        string            `json:"created_at"`
	UpdatedAt        string            `json:"updated_at"`
	// AllowProfilesOutsideOrganization (deprecated) is in the API's answers
	// and not in webhook payloads.
	AllowProfilesOutsideOrganization *bool `json:"allow_profiles_outside_organization,omitempty"`

	// raw, when set, is served instead of the fields above (by the API as
	// is, in webhooks without allow_profiles_outside_organization): an
	// object given to PutOrganization.
	raw json.RawMessage
}

// domainJSON is an organization_domain.
type domainJSON struct {
	Object               string `json:"object"`
	ID                   string `json:"id"`
	OrganizationID       string `json:"organization_id"`
	Domain               string `json:"domain"`
	State                string `json:"state"`
	VerificationPrefix   string `json:"verification_prefix"`
	VerificationToken    string `json:"verification_token"`
	VerificationStrategy string `json:"verification_strategy"`
	CreatedAt            string `json:"created_at"`
	UpdatedAt            string `json:"updated_at"`
}

// apiBody is the organization as GET /organizations/{id} and the list
// return it.
func (o *orgJSON) apiBody() json.RawMessage {
	if o.raw != nil {
		return o.raw
	}
	c := *o
	f := false
	c.AllowProfilesOutsideOrganization = &f
	return mustJSON(&c)
}

// eventBody is the organization as organization.* webhooks carry it.
func (o *orgJSON) eventBody() json.RawMessage {
	if o.raw != nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(o.raw, &m) != nil {
			return o.raw
		}
		delete(m, "allow_profiles_outside_organization")
		return mustJSON(m)
	}
	c := *o
	c.AllowProfilesOutsideOrganization = nil
	return mustJSON(&c)
}

type slimRole struct {
	Slug string `json:"slug"`
}

// memberJSON is an AuthKit organization membership as stored: the API adds
// organization_name and user when it answers (apiBody), webhooks do not
// (eventBody). Stored values are replaced, never mutated.
type memberJSON struct {
	ID               string
	UserID           string
	OrganizationID   string
	Status           string
	DirectoryManaged bool
	CustomAttributes map[string]any
	CreatedAt        string
	UpdatedAt        string
	Role             string
}

func (m *memberJSON) key() string { return m.OrganizationID + ":" + m.UserID }

// memberAPIJSON is UserlandUserOrganizationMembership, in the field order
// of workos-go testdata/organization_membership.json.
type memberAPIJSON struct {
	Object           string          `json:"object"`
	ID               string          `json:"id"`
	UserID           string          `json:"user_id"`
	OrganizationID   string          `json:"organization_id"`
	Status           string          `json:"status"`
	DirectoryManaged bool            `json:"directory_managed"`
	OrganizationName string          `json:"organization_name"`
	CustomAttributes map[string]any  `json:"custom_attributes"`
	CreatedAt        string          `json:"created_at"`
	UpdatedAt        string          `json:"updated_at"`
	Role             slimRole        `json:"role"`
	Roles            []slimRole      `json:"roles"`
	User             json.RawMessage `json:"user"`
}

// memberEventJSON is the data of organization_membership.* events, in the
// field order of workos-go testdata/organization_membership_created.json:
// no organization_name, no user.
type memberEventJSON struct {
	Object           string         `json:"object"`
	ID               string         `json:"id"`
	UserID           string         `json:"user_id"`
	OrganizationID   string         `json:"organization_id"`
	Status           string         `json:"status"`
	Role             slimRole       `json:"role"`
	Roles            []slimRole     `json:"roles"`
	CustomAttributes map[string]any `json:"custom_attributes"`
	DirectoryManaged bool           `json:"directory_managed"`
	CreatedAt        string         `json:"created_at"`
	UpdatedAt        string         `json:"updated_at"`
}

func (m *memberJSON) apiBody(orgName string, user json.RawMessage) json.RawMessage {
	return mustJSON(&memberAPIJSON{
		Object: "organization_membership", ID: m.ID, UserID: m.UserID, OrganizationID: m.OrganizationID,
		Status: m.Status, DirectoryManaged: m.DirectoryManaged, OrganizationName: orgName,
		CustomAttributes: m.CustomAttributes, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		Role: slimRole{m.Role}, Roles: []slimRole{{m.Role}}, User: user,
	})
}

func (m *memberJSON) eventBody() json.RawMessage {
	return mustJSON(&memberEventJSON{
		Object: "organization_membership", ID: m.ID, UserID: m.UserID, OrganizationID: m.OrganizationID,
		Status: m.Status, Role: slimRole{m.Role}, Roles: []slimRole{{m.Role}},
		CustomAttributes: m.CustomAttributes, DirectoryManaged: m.DirectoryManaged,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	})
}

var (
	orgNames    = []string{"Acme", "Foo", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Soylent", "Wonka", "Möbius"}
	orgSuffixes = []string{"Inc.", "Corp", "LLC", "GmbH", "Ltd", "& Co.", "S.A.", "Labs"}
	departments = []string{"Engineering", "Sales", "Support", "Finance", "Design"}
)

// newOrgLocked makes a realistic organization created at t: a name, zero to
// two domains (verified or pending), sometimes metadata, an external_id and
// a Stripe customer id.
func (f *Fake) newOrgLocked(t time.Time) *orgJSON {
	t = t.UTC().Truncate(time.Millisecond)
	id := "org_" + f.ulidLocked(t)
	base := orgNames[f.rng.IntN(len(orgNames))]
	o := &orgJSON{
		Object:    "organization",
		ID:        id,
		Name:      base + " " + orgSuffixes[f.rng.IntN(len(orgSuffixes))],
		Domains:   []domainJSON{},
		Metadata:  map[string]string{},
		CreatedAt: isoTime(t),
		UpdatedAt: isoTime(t),
	}
	slug := strings.ToLower(strings.NewReplacer("ö", "o").Replace(base)) + "-" + strings.ToLower(id[len(id)-6:])
	for i, n := 0, f.rng.IntN(3); i < n; i++ {
		d := domainJSON{
			Object:               "organization_domain",
			ID:                   "org_domain_" + f.ulidLocked(t),
			OrganizationID:       id,
			Domain:               slug + []string{".com", ".io"}[i],
			State:                []string{"verified", "pending"}[f.rng.IntN(2)],
			VerificationPrefix:   "superapp-domain-verification-" + strings.ToLower(id[len(id)-6:]),
			VerificationToken:    randomBase62(25),
			VerificationStrategy: "dns",
			CreatedAt:            isoTime(t),
			UpdatedAt:            isoTime(t),
		}
		o.Domains = append(o.Domains, d)
	}
	if f.rng.IntN(2) == 0 {
		o.Metadata = map[string]string{"tier": []string{"gold", "diamond", "free"}[f.rng.IntN(3)]}
	}
	if f.rng.IntN(3) == 0 {
		ext := requestID()
		o.ExternalID = &ext
	}
	if f.rng.IntN(4) == 0 {
		cus := "cus_" + randomBase62(14)
		o.StripeCustomerID = &cus
	}
	return o
}

// newMemberLocked makes an active membership created at t.
func (f *Fake) newMemberLocked(orgID, userID, role string, t time.Time) *memberJSON {
	t = t.UTC().Truncate(time.Millisecond)
	m := &memberJSON{
		ID:               "om_" + f.ulidLocked(t),
		UserID:           userID,
		OrganizationID:   orgID,
		Status:           "active",
		CustomAttributes: map[string]any{},
		CreatedAt:        isoTime(t),
		UpdatedAt:        isoTime(t),
		Role:             role,
	}
	if f.rng.IntN(4) == 0 {
		m.CustomAttributes = map[string]any{"department": departments[f.rng.IntN(len(departments))]}
	}
	return m
}

// bumpedTime returns now, or a millisecond after prev if now is not later
// (update times strictly increase).
func bumpedTime(prev string) string {
	p, _ := time.Parse(time.RFC3339Nano, prev)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if !now.After(p) {
		now = p.Add(time.Millisecond)
	}
	return isoTime(now)
}
