package clerk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"
	"github.com/tidwall/gjson"

	"github.com/usersync/usersync/provider"
)

// Listing scheme.
//
// Clerk's list endpoint pages by offset, which is unstable: a user deleted
// before the offset shifts every later user one place left, and one is
// skipped. So pages are keyed by creation time instead. Users are listed
// order_by=+created_at (oldest first), and the cursor records T, the
// created_at (ms) of the last user returned, and K, how many users with
// created_at == T have been returned so far (with the ids of the last few of
// them). The next page asks for created_at_after=T-1, i.e. users created at T
// or later, skipping the first K-M of the users at T with offset (M = the
// overlap, min(page/2, 50)); the M users overlapped are recognised by id and
// dropped. Deleting users created before T therefore cannot shift anything;
// only deleting more than M users that share the single millisecond T between
// two pages could skip one. If the API treats created_at_after as inclusive,
// users created at T-1 come back too and are dropped client-side.
//
// The listing ends on a page shorter than the limit. Users created during the
// listing appear at its end (their created_at is now).
//
// ResumeCursor(id) makes a cursor that first fetches that user to learn its
// created_at, then lists from that millisecond (so the user and any others of
// the same millisecond are listed again). If the user is gone, ListUsers
// returns ErrCursorNotFound and the caller starts over (docs/guarantees.md §5).
//
// The page is fetched with one GET /users through the SDK's backend rather
// than the SDK's List, which also calls /users/count for every page (a second
// request that counts toward the rate limit and that a cursor walk does not
// need).

// cursor is the decoded form of ListUsers' opaque cursor.
type cursor struct {
	// UserID, when set, is a ResumeCursor: list from this user's created_at.
	UserID string `json:"u,omitempty"`
	// T is the created_at (ms) of the last user returned.
	T int64 `json:"t,omitempty"`
	// K is how many users created at T have been returned.
	K int `json:"k,omitempty"`
	// Seen holds the ids of the last (at most overlap) users created at T
	// that have been returned, in list order.
	Seen []string `json:"s,omitempty"`
}

const maxOverlap = 50

func (c *Client) overlap() int {
	return min(c.pageSize/2, maxOverlap)
}

// rawPage receives a bare JSON array of users, keeping each object's bytes.
type rawPage struct {
	items []json.RawMessage
}

// Read implements clerk.ResponseReader.
func (p *rawPage) Read(*clerksdk.APIResponse) {}

// UnmarshalJSON keeps each element of the array as received.
func (p *rawPage) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &p.items)
}

// ListUsers returns one page of users, oldest first; see the listing scheme
// above for the cursor.
func (c *Client) ListUsers(ctx context.Context, cursorStr string) (provider.Page, error) {
	var cur cursor
	if cursorStr != "" {
		var err error
		if cur, err = decodeCursor(cursorStr); err != nil {
			return provider.Page{}, fmt.Errorf("clerk: list users: %w", err)
		}
	}
	if cur.UserID != "" {
		u, err := c.FetchUser(ctx, cur.UserID)
		if errors.Is(err, provider.ErrUserNotFound) {
			return provider.Page{}, fmt.Errorf("clerk: list users: resume from user %s: %w: %w", cur.UserID, provider.ErrCursorNotFound, err)
		}
		if err != nil {
			return provider.Page{}, fmt.Errorf("clerk: list users: resume from user %s: %w", cur.UserID, err)
		}
		t := listKey(u.Raw)
		if t <= 0 {
			return provider.Page{}, fmt.Errorf("clerk: list users: resume from user %s: %w: user has no created_at", cur.UserID, provider.ErrCursorNotFound)
		}
		cur = cursor{T: t}
	}

	params := &user.ListParams{OrderBy: clerksdk.String("+created_at")}
	params.Limit = clerksdk.Int64(int64(c.pageSize))
	if cur.T > 0 {
		params.CreatedAtAfter = clerksdk.Int64(cur.T - 1)
		if off := cur.K - c.overlap(); off > 0 {
			params.Offset = clerksdk.Int64(int64(off))
		}
	}
	req := clerksdk.NewAPIRequest(http.MethodGet, "/users")
	req.SetParams(params)
	var raw rawPage
	ctx, rec := withRecorder(ctx)
	if err := c.backend.Call(ctx, req, &raw); err != nil {
		return provider.Page{}, fmt.Errorf("clerk: list users: %w", classify(err, rec, false))
	}

	seen := make(map[string]bool, len(cur.Seen)+len(raw.items))
	for _, id := range cur.Seen {
		seen[id] = true
	}
	next := cur
	next.Seen = append([]string(nil), cur.Seen...)
	var users []provider.User
	for i, item := range raw.items {
		u, err := userFromRaw(item)
		if err != nil {
			return provider.Page{}, fmt.Errorf("clerk: list users: item %d: %w", i, err)
		}
		ms := listKey(item)
		if ms < next.T {
			// Before the cursor (inclusive created_at_after, or out of order).
			continue
		}
		if ms > next.T {
			next.T, next.K, next.Seen = ms, 0, next.Seen[:0]
			clear(seen)
		}
		if seen[u.ID] {
			continue
		}
		seen[u.ID] = true
		next.K++
		next.Seen = append(next.Seen, u.ID)
		users = append(users, u)
	}
	page := provider.Page{Users: users}
	if len(raw.items) < c.pageSize {
		return page, nil
	}
	if next.T == cur.T && next.K == cur.K {
		// A full page that taught us nothing new: step past it by offset so
		// the listing cannot loop.
		next.K += len(raw.items)
	}
	if over := len(next.Seen) - c.overlap(); over > 0 {
		next.Seen = next.Seen[over:]
	}
	page.Next = encodeCursor(next)
	return page, nil
}

// listKey is the user's created_at exactly as the API sent it, the value
// its created_at filters compare with (the created_at column reads a
// seconds-sized value as seconds; the cursor must not); 0 when absent.
func listKey(raw json.RawMessage) int64 {
	return gjson.GetBytes(raw, "created_at").Int()
}

// ResumeCursor returns a cursor that lists from the user with the given id
// (that user and others created in the same millisecond are listed again);
// see the listing scheme above. It returns "" (start over) for an id that
// cannot be a Clerk user id.
func (c *Client) ResumeCursor(lastUserID string) string {
	if ValidateUserID(lastUserID) != nil {
		return ""
	}
	return encodeCursor(cursor{UserID: lastUserID})
}

// UsersPerPage is the most users one list request returns: with
// UsersPerLookup, what a listing and lookups cost in requests, by which
// usersync decides when to serve a large backlog of syncs by listing
// (docs/limits.md, "A large backlog").
func (c *Client) UsersPerPage() int { return c.pageSize }

// UsersPerLookup is the most users one lookup request carries.
func (c *Client) UsersPerLookup() int { return MaxBatch }
