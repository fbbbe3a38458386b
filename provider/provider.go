// Package provider defines what usersync needs from a hosted auth provider:
// fetch one user, list users page by page, and verify and parse webhooks.
//
// Each provider lives in its own subpackage (provider/stackauth, ...) and is the
// only code that knows its wire format. Callers see [User], [Page], [Event] and
// the classified errors below.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Provider is one hosted auth provider's user API and webhook format.
type Provider interface {
	// Name is the provider's stable name ("stackauth", "clerk", "workos"): it
	// appears in job args, queue names, URLs and metrics.
	Name() string

	// FetchUser returns the user's current profile. It returns an error wrapping
	// [ErrUserNotFound] when the provider says the user does not exist.
	FetchUser(ctx context.Context, id string) (User, error)

	// ListUsers returns one page of the user list in a stable order, starting at
	// cursor ("" = the first page). Page.Next is "" on the last page. It returns
	// an error wrapping [ErrCursorNotFound] when cursor no longer resolves.
	ListUsers(ctx context.Context, cursor string) (Page, error)

	// ResumeCursor returns a cursor that lists from the user with the given id
	// (that user may be listed again), for when a cursor stopped resolving.
	ResumeCursor(lastUserID string) string

	// ParseWebhook verifies a delivery's signature and parses its body. It
	// returns an error wrapping [ErrBadSignature] (answer 401) or
	// [ErrBadPayload] (answer 400). Events that are not about users come back
	// with Kind [EventIgnored] and no error.
	ParseWebhook(body []byte, header http.Header) (Event, error)
}

// User is one user's profile as the provider reports it, with the columns of
// users_sync already derived from the full (unredacted) object.
type User struct {
	ID        string
	Name      *string
	Email     *string
	CreatedAt *time.Time
	// UpdatedAt is the provider's own last-change time; nil when the provider
	// has none (Stack Auth), in which case the time of the change is used.
	UpdatedAt *time.Time
	// Raw is the provider's full user object exactly as received.
	Raw json.RawMessage
	// Anonymous reports a Stack Auth anonymous user (is_anonymous in its
	// profile); always false for providers without anonymous users.
	Anonymous bool
}

// Page is one page of a provider's user list.
type Page struct {
	Users []User
	// Next is the cursor of the following page; "" when this page is the last.
	Next string
}

// EventKind says what a webhook event means for users_sync.
type EventKind int

const (
	// EventIgnored is an event usersync does not act on (session.created,
	// team_permission.created, ...).
	EventIgnored EventKind = iota
	// EventUserChanged is a user created or updated.
	EventUserChanged
	// EventUserDeleted is a user deleted.
	EventUserDeleted
	// EventOrganizationChanged is an organization created or updated
	// (Event.OrganizationID names it).
	EventOrganizationChanged
	// EventOrganizationDeleted is an organization deleted.
	EventOrganizationDeleted
	// EventMembershipChanged is a membership created, updated or deleted
	// (Event.OrganizationID and Event.UserID name it): the organization's
	// memberships are read again, whatever the event says.
	EventMembershipChanged
)

// Event is a verified, parsed webhook delivery.
type Event struct {
	// Type is the provider's event type, e.g. "user.updated".
	Type string
	Kind EventKind
	// UserID is set for user and membership events and has passed
	// [ValidateUserID].
	UserID string
	// OrganizationID is set for organization and membership events and has
	// passed [ValidateUserID]'s rules (and the provider's id format).
	OrganizationID string
}

// IsOrganization reports whether the event is about organizations or
// memberships (and so is ignored unless USERSYNC_ORGANIZATIONS=on).
func (k EventKind) IsOrganization() bool {
	return k == EventOrganizationChanged || k == EventOrganizationDeleted || k == EventMembershipChanged
}

// Classified errors. Provider implementations wrap these so callers can act
// with errors.Is / errors.As without knowing the wire format.
var (
	// ErrUserNotFound: the provider says the user does not exist (deleted).
	ErrUserNotFound = errors.New("user not found at provider")
	// ErrBadCredentials: the provider rejected our credentials (401/403).
	ErrBadCredentials = errors.New("provider rejected the credentials")
	// ErrCursorNotFound: a list cursor no longer resolves.
	ErrCursorNotFound = errors.New("list cursor no longer resolves")
	// ErrBadSignature: a webhook's signature or timestamp is missing, invalid
	// or outside the tolerance.
	ErrBadSignature = errors.New("bad webhook signature")
	// ErrBadPayload: a webhook body is unparseable or names an invalid user id.
	ErrBadPayload = errors.New("bad webhook payload")
)

// RateLimitedError is returned when the provider answered 429.
type RateLimitedError struct {
	// RetryAfter is how long the provider asked us to wait (0 if it did not say).
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited by provider (retry after %s)", e.RetryAfter)
}

// StatusError is an unexpected HTTP status from the provider API (5xx and
// anything not classified above); it is transient and retried.
type StatusError struct {
	StatusCode int
	// Body is a short, secret-free excerpt of the response body.
	Body string
	// Hint, when set, says what the answer probably means (a redirect, a
	// not-found answer that is not the provider's own: a wrong API URL).
	Hint string
	// Cause, when set, classifies the answer further: [ErrForeignNotFound]
	// or [ErrRedirect]. It is what Unwrap returns.
	Cause error
}

// Unwrap returns e.Cause.
func (e *StatusError) Unwrap() error { return e.Cause }

func (e *StatusError) Error() string {
	s := fmt.Sprintf("provider answered HTTP %d", e.StatusCode)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// MaxUserIDLen is the longest user id accepted from a webhook, in bytes.
const MaxUserIDLen = 255

// ValidateUserID checks the rules every provider's user ids must meet (docs/http.md):
// non-empty, at most 255 bytes, valid UTF-8, no NUL or other control
// character. Provider-specific formats (a UUID for Stack Auth) are checked by
// the provider on top of this.
func ValidateUserID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: user id is empty", ErrBadPayload)
	}
	if len(id) > MaxUserIDLen {
		return fmt.Errorf("%w: user id is longer than %d bytes", ErrBadPayload, MaxUserIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: user id is not valid UTF-8", ErrBadPayload)
	}
	for _, r := range id {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return fmt.Errorf("%w: user id contains a control character", ErrBadPayload)
		}
	}
	return nil
}

// Snippet returns at most n bytes of b for an error message, on a UTF-8
// boundary, with control characters replaced.
func Snippet(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	out := []rune(string(b))
	for i, r := range out {
		if r < 0x20 || r == 0x7f {
			out[i] = ' '
		}
	}
	return string(out)
}

// ParseAPIURL checks a provider API base URL (STACK_API_URL, CLERK_API_URL,
// WORKOS_API_URL): absolute http or https, with a host, and no credentials,
// query or fragment. Trailing slashes are dropped. The error does not echo
// the URL, which could hold credentials.
func ParseAPIURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, errors.New("API URL must be an absolute http or https URL")
	case u.User != nil:
		return nil, errors.New("API URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("API URL must not have a query or fragment")
	}
	return u, nil
}

// PageSize returns the list page size to use: n, or max when n is 0.
func PageSize(n, max int) (int, error) {
	switch {
	case n == 0:
		return max, nil
	case n < 1 || n > max:
		return 0, fmt.Errorf("page size %d is outside 1..%d", n, max)
	}
	return n, nil
}
