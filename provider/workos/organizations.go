package workos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/usersync/usersync/provider"
)

var _ provider.Organizations = (*Client)(nil)

// MembershipStatuses is the statuses parameter ListMemberships sends: every
// status, because WorkOS lists only active memberships unless asked
// (docs/providers.md, "Organizations").
const MembershipStatuses = "active,inactive,pending"

// FetchOrganization returns the organization's current object
// (GET /organizations/{id}); Raw is the response body as received. A 404 in
// WorkOS's own format ("Organization not found: '<id>'.", or code
// entity_not_found) wraps provider.ErrOrganizationNotFound; any other 404 is
// a foreign answer (provider.ErrForeignNotFound), retried.
func (c *Client) FetchOrganization(ctx context.Context, id string) (provider.Organization, error) {
	if err := provider.ValidateUserID(id); err != nil {
		// No WorkOS object can have this id (an id of the right characters
		// but another format is left to WorkOS to judge).
		return provider.Organization{}, fmt.Errorf("workos: fetch organization: %w (%v)", provider.ErrOrganizationNotFound, err)
	}
	body, err := c.get(ctx, "/organizations/"+url.PathEscape(id), nil, organizationEntity(id, true))
	if err != nil {
		return provider.Organization{}, fmt.Errorf("workos: fetch organization %s: %w", id, err)
	}
	o, err := mapOrganization(body)
	if err != nil {
		return provider.Organization{}, fmt.Errorf("workos: fetch organization %s: %w", id, err)
	}
	if o.ID != id {
		return provider.Organization{}, fmt.Errorf("workos: fetch organization %s: response is for organization %q", id, o.ID)
	}
	return o, nil
}

func organizationEntity(id string, single bool) *entity {
	return &entity{noun: "organization", id: id, err: provider.ErrOrganizationNotFound, single: single}
}

// ListOrganizations returns one page of organizations, oldest first
// (GET /organizations?limit&order=asc&after): ascending creation order, so
// that organizations created during a run come after the cursor and are
// listed too (WorkOS's default order, desc, and "normal" both list newest
// first). The cursor is the id of the last organization of the previous page
// (list_metadata.after), an exclusive object-id cursor. As for users, a
// cursor naming an organization deleted since is answered in an undocumented
// way: ListOrganizations returns provider.ErrCursorNotFound when, with a
// cursor, the API answers 400/404/422, or answers an empty page and the
// cursor's organization no longer exists (so such a page never ends a run).
func (c *Client) ListOrganizations(ctx context.Context, cursor string) (provider.OrganizationPage, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.pageSize))
	q.Set("order", "asc")
	if cursor != "" {
		if provider.ValidateUserID(cursor) != nil {
			return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations: %w: malformed cursor", provider.ErrCursorNotFound)
		}
		q.Set("after", cursor)
	}
	body, err := c.get(ctx, "/organizations", q, nil)
	if err != nil {
		if cursor != "" && isCursorRefusal(err) {
			return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations after %s: %w: %w", cursor, provider.ErrCursorNotFound, err)
		}
		return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations: %w", err)
	}
	var resp listResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations: decode: %w", err)
	}
	page := provider.OrganizationPage{Organizations: make([]provider.Organization, 0, len(resp.Data))}
	for i, raw := range resp.Data {
		o, err := mapOrganization(raw)
		if err != nil {
			return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations: item %d: %w", i, err)
		}
		page.Organizations = append(page.Organizations, o)
	}
	if len(page.Organizations) == 0 {
		if cursor != "" {
			_, err := c.FetchOrganization(ctx, cursor)
			if errors.Is(err, provider.ErrOrganizationNotFound) {
				return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations after %s: %w: empty page and the organization is gone", cursor, provider.ErrCursorNotFound)
			}
			if err != nil {
				return provider.OrganizationPage{}, fmt.Errorf("workos: list organizations after %s: empty page, checking the cursor: %w", cursor, err)
			}
		}
		return page, nil
	}
	if a := resp.ListMetadata.After; a != nil && *a != "" && *a != cursor {
		page.Next = *a
	}
	return page, nil
}

// ListMemberships returns one page of the organization's AuthKit
// memberships of every status, oldest first
// (GET /user_management/organization_memberships?organization_id&statuses=active,inactive,pending&limit&order=asc&after;
// statuses is a comma-separated list, the document's form style without
// explode). The cursor is the id (om_…) of the last membership of the
// previous page. An organization that does not exist gives an error wrapping
// provider.ErrOrganizationNotFound (WorkOS answers 404 in its own format). A
// cursor that no longer resolves (400/422, or an empty page after a
// membership that is gone) gives provider.ErrCursorNotFound.
func (c *Client) ListMemberships(ctx context.Context, organizationID, cursor string) (provider.MembershipPage, error) {
	if err := provider.ValidateUserID(organizationID); err != nil {
		return provider.MembershipPage{}, fmt.Errorf("workos: list memberships: %w (%v)", provider.ErrOrganizationNotFound, err)
	}
	if cursor != "" && provider.ValidateUserID(cursor) != nil {
		return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s: %w: malformed cursor", organizationID, provider.ErrCursorNotFound)
	}
	q := url.Values{}
	q.Set("organization_id", organizationID)
	q.Set("limit", strconv.Itoa(c.pageSize))
	q.Set("order", "asc")
	if cursor != "" {
		q.Set("after", cursor)
	}
	// The commas are the array's delimiters: sent as they are.
	query := q.Encode() + "&statuses=" + MembershipStatuses
	body, err := c.getQuery(ctx, "/user_management/organization_memberships", query, organizationEntity(organizationID, false))
	if err != nil {
		if cursor != "" && !errors.Is(err, provider.ErrOrganizationNotFound) && !errors.Is(err, provider.ErrForeignNotFound) && isCursorRefusal(err) {
			return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s after %s: %w: %w", organizationID, cursor, provider.ErrCursorNotFound, err)
		}
		return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s: %w", organizationID, err)
	}
	var resp listResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s: decode: %w", organizationID, err)
	}
	page := provider.MembershipPage{Memberships: make([]provider.Membership, 0, len(resp.Data))}
	for i, raw := range resp.Data {
		m, err := mapMembership(raw)
		if err != nil {
			return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s: item %d: %w", organizationID, i, err)
		}
		if m.OrganizationID != organizationID {
			return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s: item %d is a membership of %q", organizationID, i, m.OrganizationID)
		}
		page.Memberships = append(page.Memberships, m)
	}
	if len(page.Memberships) == 0 {
		if cursor != "" {
			gone, err := c.membershipGone(ctx, cursor)
			if err != nil {
				return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s after %s: empty page, checking the cursor: %w", organizationID, cursor, err)
			}
			if gone {
				return provider.MembershipPage{}, fmt.Errorf("workos: list memberships of %s after %s: %w: empty page and the membership is gone", organizationID, cursor, provider.ErrCursorNotFound)
			}
		}
		return page, nil
	}
	if a := resp.ListMetadata.After; a != nil && *a != "" && *a != cursor {
		page.Next = *a
	}
	return page, nil
}

// errMembershipNotFound classifies WorkOS's not-found answer for one
// membership (GET /user_management/organization_memberships/{id}).
var errMembershipNotFound = errors.New("organization membership not found at provider")

// membershipGone reports whether WorkOS says, in its own format, that the
// membership (om_…) does not exist.
func (c *Client) membershipGone(ctx context.Context, id string) (bool, error) {
	_, err := c.get(ctx, "/user_management/organization_memberships/"+url.PathEscape(id), nil,
		&entity{noun: "organization membership", id: id, err: errMembershipNotFound, single: true})
	if errors.Is(err, errMembershipNotFound) {
		return true, nil
	}
	return false, err
}

// isCursorRefusal reports whether err is a 400, 404 or 422 answer, which a
// list request with a cursor gets when WorkOS does not resolve the cursor.
func isCursorRefusal(err error) bool {
	var se *provider.StatusError
	return errors.As(err, &se) &&
		(se.StatusCode == http.StatusBadRequest || se.StatusCode == http.StatusNotFound || se.StatusCode == http.StatusUnprocessableEntity)
}

// organizationJSON holds the fields of Organization that usersync derives
// columns from.
type organizationJSON struct {
	ID        string  `json:"id"`
	Name      *string `json:"name"`
	CreatedAt *string `json:"created_at"`
	UpdatedAt *string `json:"updated_at"`
}

// mapOrganization derives the organizations_sync columns from a raw
// organization object, which it keeps as is in Raw.
func mapOrganization(raw json.RawMessage) (provider.Organization, error) {
	var o organizationJSON
	if err := json.Unmarshal(raw, &o); err != nil {
		return provider.Organization{}, fmt.Errorf("decode organization: %w", err)
	}
	if o.ID == "" {
		return provider.Organization{}, errors.New("organization object has no id")
	}
	if err := provider.ValidateUserID(o.ID); err != nil {
		return provider.Organization{}, fmt.Errorf("organization object: id: %v", err)
	}
	out := provider.Organization{ID: o.ID, Raw: raw}
	if o.Name != nil && *o.Name != "" {
		name := *o.Name
		out.Name = &name
	}
	out.CreatedAt = parseTime(o.CreatedAt)
	out.UpdatedAt = parseTime(o.UpdatedAt)
	return out, nil
}

// membershipJSON holds the fields of UserlandUserOrganizationMembership that
// usersync derives columns from.
type membershipJSON struct {
	UserID         string `json:"user_id"`
	OrganizationID string `json:"organization_id"`
	Role           *struct {
		Slug *string `json:"slug"`
	} `json:"role"`
	CreatedAt *string `json:"created_at"`
	UpdatedAt *string `json:"updated_at"`
}

// mapMembership derives the memberships_sync columns from a raw membership
// object (which embeds organization_name and the whole user), kept as is in
// Raw. Role is the primary role's slug.
func mapMembership(raw json.RawMessage) (provider.Membership, error) {
	var m membershipJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return provider.Membership{}, fmt.Errorf("decode membership: %w", err)
	}
	if err := provider.ValidateUserID(m.UserID); err != nil {
		return provider.Membership{}, fmt.Errorf("membership object: user_id: %v", err)
	}
	if err := provider.ValidateUserID(m.OrganizationID); err != nil {
		return provider.Membership{}, fmt.Errorf("membership object: organization_id: %v", err)
	}
	out := provider.Membership{OrganizationID: m.OrganizationID, UserID: m.UserID, Raw: raw}
	if m.Role != nil && m.Role.Slug != nil && *m.Role.Slug != "" {
		role := *m.Role.Slug
		out.Role = &role
	}
	out.CreatedAt = parseTime(m.CreatedAt)
	out.UpdatedAt = parseTime(m.UpdatedAt)
	return out, nil
}

// ValidateOrganizationID reports whether id is a WorkOS organization id:
// "org_" followed by a 26-character ULID (Crockford base32, upper case),
// which also meets [provider.ValidateUserID]'s rules. The error wraps
// [provider.ErrBadPayload].
func ValidateOrganizationID(id string) error {
	return validatePrefixedULID(id, "org_", "organization")
}

// validatePrefixedULID checks that id is prefix followed by a ULID; what
// names the kind of id in the error, which wraps provider.ErrBadPayload.
func validatePrefixedULID(id, prefix, what string) error {
	if id == "" {
		return fmt.Errorf("%w: %s id is empty", provider.ErrBadPayload, what)
	}
	if len(id) != len(prefix)+26 {
		if len(id) > 64 {
			return fmt.Errorf("%w: %s id is %d bytes long, not a WorkOS id (%s followed by a ULID)", provider.ErrBadPayload, what, len(id), prefix)
		}
		return fmt.Errorf("%w: %q is not a WorkOS %s id (%s followed by a ULID)", provider.ErrBadPayload, id, what, prefix)
	}
	ulid, ok := strings.CutPrefix(id, prefix)
	if !ok || ulid[0] > '7' {
		return fmt.Errorf("%w: %q is not a WorkOS %s id (%s followed by a ULID)", provider.ErrBadPayload, id, what, prefix)
	}
	for i := 0; i < len(ulid); i++ {
		if strings.IndexByte(crockford, ulid[i]) < 0 {
			return fmt.Errorf("%w: %q is not a WorkOS %s id (%s followed by a ULID)", provider.ErrBadPayload, id, what, prefix)
		}
	}
	return nil
}
