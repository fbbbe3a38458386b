package provider

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Organizations is the optional part of a [Provider] that reads
// organizations (Stack Auth calls them teams) and their memberships, for
// USERSYNC_ORGANIZATIONS=on (docs/data-model.md, "Organizations"). Every
// provider usersync ships implements it.
type Organizations interface {
	// FetchOrganization returns the organization's current object. It
	// returns an error wrapping [ErrOrganizationNotFound] when the provider
	// says, in its own format, that the organization does not exist.
	FetchOrganization(ctx context.Context, id string) (Organization, error)

	// ListOrganizations returns one page of the organization list in a stable
	// order, starting at cursor ("" = the first page). Page.Next is "" on the
	// last page. It returns an error wrapping [ErrCursorNotFound] when cursor
	// no longer resolves.
	ListOrganizations(ctx context.Context, cursor string) (OrganizationPage, error)

	// ListMemberships returns one page of the organization's memberships,
	// every status included (WorkOS inactive and pending ones, Stack Auth's
	// anonymous and restricted members unless the client was built to leave
	// anonymous users out), starting at cursor ("" = the first page). An
	// organization that does not exist gives an error wrapping
	// [ErrOrganizationNotFound] or an empty last page, as the provider does.
	ListMemberships(ctx context.Context, organizationID, cursor string) (MembershipPage, error)
}

// Organization is one organization as the provider reports it, with the
// columns of organizations_sync derived from the full object.
type Organization struct {
	ID        string
	Name      *string
	CreatedAt *time.Time
	// UpdatedAt is the provider's own last-change time; nil when it has none
	// (Stack Auth teams).
	UpdatedAt *time.Time
	// Raw is the provider's full organization object exactly as received.
	Raw json.RawMessage
}

// Membership is one user's membership of one organization, with the columns
// of memberships_sync derived from the full object.
type Membership struct {
	OrganizationID string
	UserID         string
	// Role is the provider's role key (Clerk "org:admin", WorkOS role slug);
	// nil for Stack Auth, which has permissions instead of roles.
	Role      *string
	CreatedAt *time.Time
	UpdatedAt *time.Time
	// Raw is the provider's membership object as received (for Stack Auth,
	// which has none, an object with at least team_id and user_id).
	Raw json.RawMessage
}

// OrganizationPage is one page of a provider's organization list.
type OrganizationPage struct {
	Organizations []Organization
	// Next is the cursor of the following page; "" when this page is the last.
	Next string
}

// MembershipPage is one page of one organization's memberships.
type MembershipPage struct {
	Memberships []Membership
	// Next is the cursor of the following page; "" when this page is the last.
	Next string
}

// ErrOrganizationNotFound: the provider says the organization does not exist.
var ErrOrganizationNotFound = errors.New("organization not found at provider")
