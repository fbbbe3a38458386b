package stackauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/usersync/usersync/provider"
)

// Stack Auth teams are usersync's organizations (docs/providers.md,
// "Organizations"). What this file relies on:
//
//   - GET /api/v1/teams/{team_id} returns the team object (id, display_name,
//     profile_image_url, created_at_millis and three metadata keys; no
//     update time), 404 TEAM_NOT_FOUND (known error) when there is none,
//     and 400 for an id that is not a UUID.
//   - GET /api/v1/teams is not paginated: it returns every team of the
//     project at once, oldest first (ties in no defined order).
//   - A team's members are the user list filtered by team
//     (GET /api/v1/users?team_id=...), with the user list's paging and its
//     anonymous/restricted filters; an unknown team lists nobody.
//   - A membership has no object of its own: {team_id, user_id}.

var _ provider.Organizations = (*Client)(nil)

// MaxOrganizationPageSize is the largest page ListOrganizations returns
// (Stack Auth's team list is paged by the client, see ListOrganizations).
const MaxOrganizationPageSize = 100

// MaxMembershipPageSize is the largest page ListMemberships returns: it
// asks for one member more than it returns, and no request asks for more
// than the user list's largest page ([MaxPageSize]).
const MaxMembershipPageSize = MaxPageSize - 1

// Cursor prefixes: the version of each cursor format.
const (
	teamCursorPrefix   = "t1:"
	memberCursorPrefix = "m1:"
)

// FetchOrganization returns the team's current object
// (GET /api/v1/teams/{id}). It returns an error wrapping
// [provider.ErrOrganizationNotFound] only when Stack Auth answers 404 with
// its own TEAM_NOT_FOUND known error (header and body); an id that is not a
// UUID is refused without a request, with an error that is not a deletion.
func (c *Client) FetchOrganization(ctx context.Context, id string) (provider.Organization, error) {
	if err := checkTeamID(id); err != nil {
		return provider.Organization{}, fmt.Errorf("stackauth: fetch organization %q: %w", provider.Snippet([]byte(id), 64), err)
	}
	what := "stackauth: fetch organization " + id
	status, header, body, err := c.get(ctx, "/teams/"+url.PathEscape(id), nil, maxUserBody)
	if err != nil {
		return provider.Organization{}, fmt.Errorf("%s: %w", what, err)
	}
	if status < 200 || status > 299 {
		if status == http.StatusNotFound {
			if isKnownError(header, body, "TEAM_NOT_FOUND") {
				return provider.Organization{}, fmt.Errorf("%s: %w", what, provider.ErrOrganizationNotFound)
			}
			return provider.Organization{}, fmt.Errorf("%s: %w", what, provider.ForeignNotFound(c.snippet(body), "Stack Auth", "STACK_API_URL"))
		}
		return provider.Organization{}, fmt.Errorf("%s: %w", what, c.classify(status, header, body))
	}
	o, _, err := decodeTeam(body)
	if err != nil {
		return provider.Organization{}, fmt.Errorf("%s: %w", what, err)
	}
	if !strings.EqualFold(o.ID, id) {
		return provider.Organization{}, fmt.Errorf("%s: the API returned team %q instead", what, provider.Snippet([]byte(o.ID), 64))
	}
	return o, nil
}

// listPos is a place in a list: a team's in the order ListOrganizations
// pages in (creation time, then id), or a member's in the member list's
// (sign-up time, then id).
type listPos struct {
	ms int64
	id string
}

func (a listPos) compare(b listPos) int {
	switch {
	case a.ms < b.ms:
		return -1
	case a.ms > b.ms:
		return 1
	}
	return strings.Compare(a.id, b.id)
}

func (p listPos) cursor(prefix string) string {
	return prefix + strconv.FormatInt(p.ms, 10) + ":" + p.id
}

// parsePos parses a cursor written by listPos.cursor with the given prefix.
func parsePos(cursor, prefix string) (listPos, error) {
	rest, ok := strings.CutPrefix(cursor, prefix)
	if !ok {
		return listPos{}, fmt.Errorf("%w: cursor %q is not one this client writes", provider.ErrCursorNotFound, provider.Snippet([]byte(cursor), 64))
	}
	msText, id, ok := strings.Cut(rest, ":")
	ms, err := strconv.ParseInt(msText, 10, 64)
	if !ok || err != nil || ms < minMillis || ms > maxMillis || !IsUUID(id) {
		return listPos{}, fmt.Errorf("%w: cursor %q is malformed", provider.ErrCursorNotFound, provider.Snippet([]byte(cursor), 64))
	}
	return listPos{ms: ms, id: strings.ToLower(id)}, nil
}

// ListOrganizations returns one page (at most 100 teams, fewer when
// Config.PageSize is smaller) of the project's teams, ordered by creation
// time and then id. Stack Auth's GET /api/v1/teams is not paginated, so
// every call reads the whole list and pages it here. The cursor names the
// last team of the previous page by its creation time and id, and the next
// page is the teams after it in that order: it stays valid across processes
// and when that team is deleted. A cursor this client did not write gives
// an error wrapping [provider.ErrCursorNotFound] (list again from the
// start).
func (c *Client) ListOrganizations(ctx context.Context, cursor string) (provider.OrganizationPage, error) {
	what := "stackauth: list organizations"
	var after *listPos
	if cursor != "" {
		what = fmt.Sprintf("stackauth: list organizations from cursor %s", provider.Snippet([]byte(cursor), 80))
		p, err := parsePos(cursor, teamCursorPrefix)
		if err != nil {
			return provider.OrganizationPage{}, fmt.Errorf("%s: %w", what, err)
		}
		after = &p
	}
	status, header, body, err := c.get(ctx, "/teams", nil, maxListBody)
	if err != nil {
		return provider.OrganizationPage{}, fmt.Errorf("%s: %w", what, err)
	}
	if status < 200 || status > 299 {
		return provider.OrganizationPage{}, fmt.Errorf("%s: %w", what, c.classify(status, header, body))
	}
	// The whole list is read for each page: find every team's place with a
	// light scan (only id and created_at_millis), and decode only the
	// page's teams.
	if !gjson.ValidBytes(body) {
		return provider.OrganizationPage{}, fmt.Errorf("%s: decode response: the answer is not valid JSON", what)
	}
	items := gjson.GetBytes(body, "items")
	if !items.IsArray() {
		return provider.OrganizationPage{}, fmt.Errorf("%s: response has no items list", what)
	}
	type entry struct {
		pos listPos
		raw string // the object as received
	}
	var all []entry
	var bad error
	i := 0
	items.ForEach(func(_, v gjson.Result) bool {
		pos, err := teamPlace(v)
		if err != nil {
			bad = fmt.Errorf("%s: item %d: %w", what, i, err)
			return false
		}
		all = append(all, entry{pos, v.Raw})
		i++
		return true
	})
	if bad != nil {
		return provider.OrganizationPage{}, bad
	}
	slices.SortFunc(all, func(a, b entry) int { return a.pos.compare(b.pos) })
	all = slices.CompactFunc(all, func(a, b entry) bool { return a.pos.id == b.pos.id })
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(all, *after, func(e entry, p listPos) int { return e.pos.compare(p) })
		if start < len(all) && all[start].pos == *after {
			start++ // strictly after the cursor's team
		}
	}
	n := min(c.pageSize, MaxOrganizationPageSize)
	end := min(start+n, len(all))
	page := provider.OrganizationPage{Organizations: make([]provider.Organization, 0, end-start)}
	for _, e := range all[start:end] {
		o, _, err := decodeTeam([]byte(e.raw))
		if err != nil {
			return provider.OrganizationPage{}, fmt.Errorf("%s: team %s: %w", what, e.pos.id, err)
		}
		if o.ID != e.pos.id {
			return provider.OrganizationPage{}, fmt.Errorf("%s: team %s: the object names team %q (duplicate keys?)", what, e.pos.id, provider.Snippet([]byte(o.ID), 64))
		}
		page.Organizations = append(page.Organizations, o)
	}
	if end < len(all) {
		page.Next = all[end-1].pos.cursor(teamCursorPrefix)
	}
	return page, nil
}

// ListMemberships returns one page (at most [MaxMembershipPageSize], fewer
// when Config.PageSize is smaller) of the team's members as memberships
// (GET /api/v1/users?team_id=...&limit=N+1&order_by=signed_up_at with the
// same anonymous/restricted flags as ListUsers: everyone, or everyone but
// anonymous users with Config.ExcludeAnonymous). A team that does not exist
// gives an empty last page, as Stack Auth answers. The cursor names the
// first member of the next page by sign-up time and id; should that user be
// deleted before the page is read (Stack Auth then answers an empty page),
// the list is read again from the start and continues after that place.
func (c *Client) ListMemberships(ctx context.Context, organizationID, cursor string) (provider.MembershipPage, error) {
	if err := checkTeamID(organizationID); err != nil {
		return provider.MembershipPage{}, fmt.Errorf("stackauth: list memberships of %q: %w", provider.Snippet([]byte(organizationID), 64), err)
	}
	team := strings.ToLower(organizationID)
	what := "stackauth: list memberships of " + team
	var from *listPos
	if cursor != "" {
		what = fmt.Sprintf("%s from cursor %s", what, provider.Snippet([]byte(cursor), 80))
		p, err := parsePos(cursor, memberCursorPrefix)
		if err != nil {
			return provider.MembershipPage{}, fmt.Errorf("%s: %w", what, err)
		}
		from = &p
	}
	size := min(c.pageSize, MaxMembershipPageSize)
	want := size + 1 // one more, whose place is the next cursor
	var members []member
	var err error
	if from == nil {
		members, _, err = c.teamUsers(ctx, team, "", want)
	} else {
		members, _, err = c.teamUsers(ctx, team, from.id, want)
		if err == nil && len(members) == 0 {
			// Either the list really ends here, or the user the cursor
			// names was deleted (Stack then lists nothing).
			members, err = c.resumeMembers(ctx, team, *from, want)
		}
	}
	if err != nil {
		return provider.MembershipPage{}, fmt.Errorf("%s: %w", what, err)
	}
	page := provider.MembershipPage{Memberships: make([]provider.Membership, 0, min(len(members), size))}
	for i, m := range members {
		if i == size {
			page.Next = m.pos.cursor(memberCursorPrefix)
			break
		}
		if m.anonymous && c.excludeAnonymous {
			continue // include_restricted=true should not list them; never pass one on
		}
		raw, err := json.Marshal(struct {
			TeamID string `json:"team_id"`
			UserID string `json:"user_id"`
		}{team, m.pos.id})
		if err != nil {
			return provider.MembershipPage{}, fmt.Errorf("%s: %w", what, err)
		}
		page.Memberships = append(page.Memberships, provider.Membership{OrganizationID: team, UserID: m.pos.id, Raw: raw})
	}
	return page, nil
}

// member is one user of a team's member list, as far as paging needs it.
type member struct {
	pos       listPos // sign-up time and id
	anonymous bool
}

// resumeMembers handles an empty page read from cursor position from. If
// the user there still exists, the list has ended. If it is gone, the list
// is read again from the start, skipping the members before from.
func (c *Client) resumeMembers(ctx context.Context, team string, from listPos, want int) ([]member, error) {
	_, err := c.FetchUser(ctx, from.id)
	switch {
	case err == nil:
		return nil, nil
	case !errors.Is(err, provider.ErrUserNotFound):
		return nil, fmt.Errorf("check the user the cursor names: %w", err)
	}
	var out []member
	cursor := ""
	for {
		items, next, err := c.teamUsers(ctx, team, cursor, want)
		if err != nil {
			return nil, err
		}
		if cursor != "" && len(items) == 0 {
			return nil, errors.New("the member list changed while it was read again from the start (retry)")
		}
		for _, m := range items {
			if m.pos.compare(from) >= 0 {
				out = append(out, m)
			}
		}
		if len(out) >= want || next == "" {
			if len(out) > want {
				out = out[:want]
			}
			return out, nil
		}
		cursor = next
	}
}

// teamUsers reads one page of GET /api/v1/users?team_id=team, from the
// (inclusive) Stack cursor, with limit n. It returns the members and Stack's
// next_cursor.
func (c *Client) teamUsers(ctx context.Context, team, cursor string, n int) ([]member, string, error) {
	q := url.Values{}
	q.Set("team_id", team)
	q.Set("limit", strconv.Itoa(n))
	q.Set("order_by", "signed_up_at")
	if c.excludeAnonymous {
		q.Set("include_restricted", "true")
	} else {
		q.Set("include_anonymous", "true")
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	status, header, body, err := c.get(ctx, "/users", q, maxListBody)
	if err != nil {
		return nil, "", err
	}
	if status < 200 || status > 299 {
		return nil, "", c.classify(status, header, body)
	}
	var resp struct {
		Items []struct {
			ID               *string  `json:"id"`
			SignedUpAtMillis *float64 `json:"signed_up_at_millis"`
			IsAnonymous      *bool    `json:"is_anonymous"`
		} `json:"items"`
		Pagination *struct {
			NextCursor *string `json:"next_cursor"`
		} `json:"pagination"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, "", fmt.Errorf("decode response: %w", err)
	}
	if resp.Items == nil {
		return nil, "", errors.New("response has no items list")
	}
	out := make([]member, 0, len(resp.Items))
	for i, it := range resp.Items {
		if it.ID == nil || !IsUUID(*it.ID) {
			return nil, "", fmt.Errorf("item %d: the user has no UUID id", i)
		}
		if it.SignedUpAtMillis == nil {
			return nil, "", fmt.Errorf("item %d: user %s has no signed_up_at_millis", i, strings.ToLower(*it.ID))
		}
		ms := math.Round(*it.SignedUpAtMillis)
		if ms < minMillis || ms > maxMillis {
			return nil, "", fmt.Errorf("item %d: signed_up_at_millis %v is out of range", i, *it.SignedUpAtMillis)
		}
		out = append(out, member{pos: listPos{int64(ms), strings.ToLower(*it.ID)}, anonymous: it.IsAnonymous != nil && *it.IsAnonymous})
	}
	next := ""
	if resp.Pagination != nil && resp.Pagination.NextCursor != nil {
		next = *resp.Pagination.NextCursor
		if strings.EqualFold(next, cursor) {
			return nil, "", errors.New("the API returned the same cursor as next_cursor (refusing to loop)")
		}
	}
	return out, next, nil
}

// teamPlace reads a listed team's place (created_at_millis and id) without
// decoding the rest of it.
func teamPlace(v gjson.Result) (listPos, error) {
	if !v.IsObject() {
		return listPos{}, errors.New("not a JSON object")
	}
	var id, ms gjson.Result // the first of each key, in one pass over the object
	var haveID, haveMs bool
	v.ForEach(func(k, val gjson.Result) bool {
		switch {
		case k.Str == "id" && !haveID:
			id, haveID = val, true
		case k.Str == "created_at_millis" && !haveMs:
			ms, haveMs = val, true
		}
		return !haveID || !haveMs
	})
	if id.Type != gjson.String {
		return listPos{}, errors.New("the team has no string id")
	}
	if err := checkTeamID(id.Str); err != nil {
		return listPos{}, err
	}
	if ms.Type != gjson.Number {
		return listPos{}, fmt.Errorf("team %s has no created_at_millis (is the key a server key?)", strings.ToLower(id.Str))
	}
	m := math.Round(ms.Num)
	if m < minMillis || m > maxMillis {
		return listPos{}, fmt.Errorf("team %s: created_at_millis %v is out of range", strings.ToLower(id.Str), ms.Num)
	}
	return listPos{int64(m), strings.ToLower(id.Str)}, nil
}

// checkTeamID refuses a team id that cannot be Stack Auth's: one that breaks
// the rules for ids (docs/http.md) or is not a UUID. It is not a deletion.
func checkTeamID(id string) error {
	if err := provider.ValidateUserID(id); err != nil {
		return fmt.Errorf("invalid team id: %v", err)
	}
	if !IsUUID(id) {
		return errors.New("invalid team id: Stack Auth team ids are UUIDs")
	}
	return nil
}

// decodeTeam decodes one team object, keeping it byte for byte as Raw
// (but for an id in upper case, lowered as for users), and returns its
// created_at_millis (nil when absent).
func decodeTeam(raw []byte) (provider.Organization, *int64, error) {
	var w struct {
		ID              *string  `json:"id"`
		DisplayName     *string  `json:"display_name"`
		CreatedAtMillis *float64 `json:"created_at_millis"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return provider.Organization{}, nil, fmt.Errorf("decode team: %w", err)
	}
	if w.ID == nil {
		return provider.Organization{}, nil, errors.New("decode team: the object has no string id")
	}
	if err := checkTeamID(*w.ID); err != nil {
		return provider.Organization{}, nil, fmt.Errorf("decode team: %w", err)
	}
	id, raw, err := canonicalID(*w.ID, raw)
	if err != nil {
		return provider.Organization{}, nil, err
	}
	o := provider.Organization{ID: id, Raw: json.RawMessage(raw)}
	if w.DisplayName != nil && *w.DisplayName != "" {
		o.Name = w.DisplayName
	}
	var msp *int64
	if w.CreatedAtMillis != nil {
		ms := math.Round(*w.CreatedAtMillis)
		if ms < minMillis || ms > maxMillis {
			return provider.Organization{}, nil, fmt.Errorf("decode team %s: created_at_millis %v is out of range", id, *w.CreatedAtMillis)
		}
		t := time.UnixMilli(int64(ms)).UTC()
		o.CreatedAt = &t
		v := int64(ms)
		msp = &v
	}
	return o, msp, nil
}
