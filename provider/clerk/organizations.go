package clerk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/organization"
	"github.com/clerk/clerk-sdk-go/v2/organizationmembership"

	"github.com/usersync/usersync/provider"
)

var _ provider.Organizations = (*Client)(nil)

// Listing scheme for organizations and memberships.
//
// Clerk's organization list and an organization's membership list page by
// offset only (the organization list has no created_at filter to key pages
// by, as the user listing does). Both are listed order_by=+created_at
// (oldest first), so organizations and memberships created during a listing
// join its end and shift nothing. A deletion of an already-listed item
// between two pages shifts every later item one place left, which plain
// offset paging would turn into a skipped item. So each page after the first
// is asked for from `overlap` items before the end of the previous page (the
// overlap is min(page/3, 50), at least 1 and below the page size, which is
// at least 2 here), and the
// cursor carries the ids of the last `overlap` items returned:
//
//   - overlapped items are recognised by id and dropped (never listed twice);
//   - if the page holds at least one of them, nothing can have been skipped:
//     every item before it was listed before, and items after it are either
//     overlapped or new;
//   - if it holds none (as many deletions as the overlap between two page
//     reads, or a short list where the previous page was), an item may have
//     been skipped, and the call returns an error wrapping
//     [provider.ErrCursorNotFound]: the caller lists again from the start.
//
// The next page starts where this page's answer ended (its offset plus its
// length), so deletions do not accumulate across pages. The listing ends on
// a page shorter than the limit. The order among items created in the same
// millisecond is Clerk's; a reordering of such ties across a page boundary
// between two requests is the one case this scheme cannot see.

// orgCursor is the decoded form of the organization and membership cursors.
type orgCursor struct {
	// Offset is where the previous page's answer ended.
	Offset int `json:"o"`
	// Seen holds the ids (organization ids, or members' user ids) of the last
	// items returned, in list order, at most the overlap.
	Seen []string `json:"s,omitempty"`
}

// orgPageSize is the limit of organization and membership pages: the
// configured page size, but at least 2, so that a page holds more than its
// overlap.
func (c *Client) orgPageSize() int { return max(c.pageSize, 2) }

func (c *Client) orgOverlap() int {
	n := c.orgPageSize()
	return max(1, min(n/3, maxOverlap, n-1))
}

func encodeOrgCursor(c orgCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeOrgCursor(s string, validID func(string) error) (orgCursor, error) {
	var c orgCursor
	bad := fmt.Errorf("%w: malformed cursor", provider.ErrCursorNotFound)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return orgCursor{}, bad
	}
	if c.Offset <= 0 || len(c.Seen) == 0 || len(c.Seen) > maxOverlap || len(c.Seen) > c.Offset {
		return orgCursor{}, bad
	}
	for _, id := range c.Seen {
		if validID(id) != nil {
			return orgCursor{}, bad
		}
	}
	return c, nil
}

// ValidateOrganizationID reports whether id is a plausible Clerk organization
// id: it passes [provider.ValidateUserID]'s rules and is "org_" followed by
// ASCII letters and digits. The error wraps [provider.ErrBadPayload].
func ValidateOrganizationID(id string) error {
	if err := provider.ValidateUserID(id); err != nil {
		return fmt.Errorf("organization id: %w", err)
	}
	rest, ok := strings.CutPrefix(id, "org_")
	if !ok || rest == "" || !alnum(rest) {
		return fmt.Errorf("%w: %q is not a Clerk organization id (org_ followed by letters and digits)", provider.ErrBadPayload, id)
	}
	return nil
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return false
		}
	}
	return true
}

// FetchOrganization returns the organization's current object (GET
// /organizations/{id}). Raw is the response body exactly as received. A 404
// means the organization does not exist only in Clerk's own format (a
// ClerkErrors body with code resource_not_found); any other 404 is a
// [provider.StatusError] wrapping [provider.ErrForeignNotFound].
func (c *Client) FetchOrganization(ctx context.Context, id string) (provider.Organization, error) {
	if err := ValidateOrganizationID(id); err != nil {
		// No Clerk organization can have this id; it would not even make a
		// safe path (the SDK does not escape it).
		return provider.Organization{}, fmt.Errorf("clerk: fetch organization %q: %w (%v)", id, provider.ErrOrganizationNotFound, err)
	}
	ctx, rec := withRecorderLimit(ctx, provider.MaxUserResponseBytes)
	o, err := (&organization.Client{Backend: c.backend}).Get(ctx, id)
	if err != nil {
		return provider.Organization{}, fmt.Errorf("clerk: fetch organization %s: %w", id, classifyNotFound(err, rec, provider.ErrOrganizationNotFound))
	}
	if o.Response == nil || len(o.Response.RawJSON) == 0 {
		return provider.Organization{}, fmt.Errorf("clerk: fetch organization %s: empty response", id)
	}
	out, err := organizationFromRaw(o.Response.RawJSON)
	if err != nil {
		return provider.Organization{}, fmt.Errorf("clerk: fetch organization %s: %w", id, err)
	}
	if out.ID != id {
		return provider.Organization{}, fmt.Errorf("clerk: fetch organization %s: response is for organization %q", id, out.ID)
	}
	return out, nil
}

// orgFields are the Organization keys usersync reads.
type orgFields struct {
	Object    string `json:"object"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

// organizationFromRaw derives the organizations_sync columns
// (docs/data-model.md) from one Organization object.
func organizationFromRaw(raw json.RawMessage) (provider.Organization, error) {
	var f orgFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return provider.Organization{}, fmt.Errorf("decode organization: %w", err)
	}
	if err := ValidateOrganizationID(f.ID); err != nil {
		return provider.Organization{}, fmt.Errorf("organization object: %w", err)
	}
	out := provider.Organization{ID: f.ID, Raw: raw, CreatedAt: unixTime(f.CreatedAt), UpdatedAt: unixTime(f.UpdatedAt)}
	if f.Name != "" {
		name := f.Name
		out.Name = &name
	}
	return out, nil
}

// membershipFields are the OrganizationMembership keys usersync reads.
type membershipFields struct {
	Role         string `json:"role"`
	Organization *struct {
		ID string `json:"id"`
	} `json:"organization"`
	PublicUserData *struct {
		UserID string `json:"user_id"`
	} `json:"public_user_data"`
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
}

// membershipFromRaw derives the memberships_sync columns from one
// OrganizationMembership object: the organization is organization.id, the
// user public_user_data.user_id (the object has no other reference to
// either).
func membershipFromRaw(raw json.RawMessage) (provider.Membership, error) {
	var f membershipFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return provider.Membership{}, fmt.Errorf("decode membership: %w", err)
	}
	if f.Organization == nil {
		return provider.Membership{}, errors.New("membership object has no organization")
	}
	if f.PublicUserData == nil {
		return provider.Membership{}, errors.New("membership object has no public_user_data")
	}
	if err := ValidateOrganizationID(f.Organization.ID); err != nil {
		return provider.Membership{}, fmt.Errorf("membership object: %w", err)
	}
	if err := ValidateUserID(f.PublicUserData.UserID); err != nil {
		return provider.Membership{}, fmt.Errorf("membership object: user id: %w", err)
	}
	out := provider.Membership{
		OrganizationID: f.Organization.ID,
		UserID:         f.PublicUserData.UserID,
		CreatedAt:      unixTime(f.CreatedAt),
		UpdatedAt:      unixTime(f.UpdatedAt),
		Raw:            raw,
	}
	if f.Role != "" {
		role := f.Role
		out.Role = &role
	}
	return out, nil
}

// rawList receives a {data, total_count} list, keeping each item's bytes.
type rawList struct {
	Data       []json.RawMessage `json:"data"`
	TotalCount *int64            `json:"total_count"`
}

// Read implements clerk.ResponseReader.
func (*rawList) Read(*clerksdk.APIResponse) {}

// listPage fetches one page of a {data,total_count} list (req must carry
// limit and offset) and applies the listing scheme above: it returns the
// page's items that were not returned before, decoded, and the next cursor
// ("" on the last page). decode returns an item and its id.
func listPage[T any](ctx context.Context, c *Client, req *clerksdk.APIRequest, cur orgCursor, decode func(json.RawMessage) (T, string, error), notFound error) ([]T, string, error) {
	var list rawList
	ctx, rec := withRecorder(ctx)
	if err := c.backend.Call(ctx, req, &list); err != nil {
		return nil, "", classifyNotFound(err, rec, notFound)
	}
	if list.Data == nil {
		return nil, "", errors.New("answer has no data array")
	}
	start := cur.Offset - len(cur.Seen)
	seen := make(map[string]bool, len(cur.Seen)+len(list.Data))
	for _, id := range cur.Seen {
		seen[id] = true
	}
	overlapped := false
	var out []T
	var ids []string
	for i, raw := range list.Data {
		item, id, err := decode(raw)
		if err != nil {
			return nil, "", fmt.Errorf("item %d: %w", i, err)
		}
		if seen[id] {
			overlapped = true
			continue
		}
		seen[id] = true
		out = append(out, item)
		ids = append(ids, id)
	}
	if start > 0 && !overlapped {
		return nil, "", fmt.Errorf("%w: none of the %d items that ended the previous page is listed where they were (deleted since?); an item may have moved before this page",
			provider.ErrCursorNotFound, len(cur.Seen))
	}
	if len(list.Data) < c.orgPageSize() {
		return out, "", nil
	}
	next := orgCursor{Offset: start + len(list.Data)}
	all := append(append([]string(nil), cur.Seen...), ids...)
	next.Seen = all[max(0, len(all)-c.orgOverlap()):]
	return out, encodeOrgCursor(next), nil
}

// pageStart returns the offset to ask for: the previous page's end less the
// overlap.
func pageStart(cur orgCursor) int64 { return int64(cur.Offset - len(cur.Seen)) }

// ListOrganizations returns one page of the instance's organizations, oldest
// first (GET /organizations?order_by=+created_at); see the listing scheme
// above for the cursor.
func (c *Client) ListOrganizations(ctx context.Context, cursorStr string) (provider.OrganizationPage, error) {
	var cur orgCursor
	if cursorStr != "" {
		var err error
		if cur, err = decodeOrgCursor(cursorStr, ValidateOrganizationID); err != nil {
			return provider.OrganizationPage{}, fmt.Errorf("clerk: list organizations: %w", err)
		}
	}
	params := &organization.ListParams{OrderBy: clerksdk.String("+created_at")}
	params.Limit = clerksdk.Int64(int64(c.orgPageSize()))
	if off := pageStart(cur); off > 0 {
		params.Offset = clerksdk.Int64(off)
	}
	req := clerksdk.NewAPIRequest(http.MethodGet, "/organizations")
	req.SetParams(params)
	orgs, next, err := listPage(ctx, c, req, cur, func(raw json.RawMessage) (provider.Organization, string, error) {
		o, err := organizationFromRaw(raw)
		return o, o.ID, err
	}, nil)
	if err != nil {
		return provider.OrganizationPage{}, fmt.Errorf("clerk: list organizations: %w", err)
	}
	page := provider.OrganizationPage{Organizations: orgs, Next: next}
	return page, nil
}

// ListMemberships returns one page of the organization's memberships, oldest
// first (GET /organizations/{id}/memberships?order_by=+created_at); see the
// listing scheme above for the cursor. A 404 in Clerk's own format (the
// organization does not exist) is [provider.ErrOrganizationNotFound].
func (c *Client) ListMemberships(ctx context.Context, organizationID, cursorStr string) (provider.MembershipPage, error) {
	if err := ValidateOrganizationID(organizationID); err != nil {
		return provider.MembershipPage{}, fmt.Errorf("clerk: list memberships of %q: %w (%v)", organizationID, provider.ErrOrganizationNotFound, err)
	}
	var cur orgCursor
	if cursorStr != "" {
		var err error
		if cur, err = decodeOrgCursor(cursorStr, ValidateUserID); err != nil {
			return provider.MembershipPage{}, fmt.Errorf("clerk: list memberships of %s: %w", organizationID, err)
		}
	}
	params := &organizationmembership.ListParams{OrderBy: clerksdk.String("+created_at")}
	params.Limit = clerksdk.Int64(int64(c.orgPageSize()))
	if off := pageStart(cur); off > 0 {
		params.Offset = clerksdk.Int64(off)
	}
	req := clerksdk.NewAPIRequest(http.MethodGet, "/organizations/"+organizationID+"/memberships")
	req.SetParams(params)
	ms, next, err := listPage(ctx, c, req, cur, func(raw json.RawMessage) (provider.Membership, string, error) {
		m, err := membershipFromRaw(raw)
		if err == nil && m.OrganizationID != organizationID {
			err = fmt.Errorf("membership of organization %q in the list of %s", m.OrganizationID, organizationID)
		}
		return m, m.UserID, err
	}, provider.ErrOrganizationNotFound)
	if err != nil {
		return provider.MembershipPage{}, fmt.Errorf("clerk: list memberships of %s: %w", organizationID, err)
	}
	page := provider.MembershipPage{Memberships: ms, Next: next}
	return page, nil
}
