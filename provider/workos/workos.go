// Package workos is usersync's client for WorkOS User Management (users,
// organizations and AuthKit organization memberships): a small REST client
// (no SDK) and the WorkOS-Signature webhook verifier.
package workos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usersync/usersync/provider"
)

// DefaultAPIURL is WorkOS's API base URL.
const DefaultAPIURL = "https://api.workos.com"

// MaxPageSize is the largest page WorkOS's list endpoints accept, and the
// default page size.
const MaxPageSize = 100

// DefaultTimeout is the HTTP timeout used when Config.HTTPClient is nil or
// has no timeout (or one of 20 s or more).
const DefaultTimeout = 15 * time.Second

// Config configures a [Client].
type Config struct {
	// APIKey is the secret API key (sk_...), WORKOS_API_KEY.
	APIKey string
	// WebhookSecret is the webhook endpoint's secret, WORKOS_WEBHOOK_SECRET.
	// When empty, ParseWebhook rejects every delivery.
	WebhookSecret string
	// APIURL is the API base URL, WORKOS_API_URL; default DefaultAPIURL.
	APIURL string
	// HTTPClient is the HTTP client to use (it is copied, and its timeout
	// kept below 20 s). Default: a client with DefaultTimeout.
	HTTPClient *http.Client
	// PageSize is the number of users, organizations or memberships per list
	// page, 1..100; default 100.
	PageSize int
	// Redactor scrubs credentials from error text (every credential of the
	// process, when the caller has several); the client adds its own keys.
	Redactor *provider.Redactor
}

// Client is a [provider.Provider] for WorkOS. It is safe for concurrent use.
type Client struct {
	apiKey        string
	red           *provider.Redactor
	webhookSecret []byte
	base          string
	hc            *http.Client
	pageSize      int
	// now is the clock webhook timestamps are checked against (time.Now;
	// tests set it to check signed vectors of a fixed time).
	now func() time.Time
}

var _ provider.Provider = (*Client)(nil)

// New returns a WorkOS client. It checks the configuration but makes no
// request.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("workos: API key is empty")
	}
	if strings.ContainsAny(cfg.APIKey, " \t\r\n") {
		return nil, errors.New("workos: API key contains whitespace")
	}
	base := cfg.APIURL
	if base == "" {
		base = DefaultAPIURL
	}
	u, err := provider.ParseAPIURL(base)
	if err != nil {
		return nil, fmt.Errorf("workos: %w", err)
	}
	base = u.String()
	pageSize, err := provider.PageSize(cfg.PageSize, MaxPageSize)
	if err != nil {
		return nil, fmt.Errorf("workos: %w", err)
	}
	if cfg.WebhookSecret != "" && len(cfg.WebhookSecret) < provider.MinWebhookSecretBytes {
		return nil, fmt.Errorf("workos: webhook secret is too short: %d bytes, at least %d needed", len(cfg.WebhookSecret), provider.MinWebhookSecretBytes)
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	// A redirect would carry the API key to another address.
	hc.CheckRedirect = provider.RefuseRedirects
	if hc.Timeout <= 0 || hc.Timeout >= 20*time.Second {
		hc.Timeout = DefaultTimeout
	}
	return &Client{
		apiKey:        cfg.APIKey,
		red:           cfg.Redactor.With(cfg.APIKey, cfg.WebhookSecret),
		webhookSecret: []byte(cfg.WebhookSecret),
		base:          base,
		hc:            &hc,
		pageSize:      pageSize,
		now:           time.Now,
	}, nil
}

// Name returns "workos".
func (c *Client) Name() string { return "workos" }

// FetchUser returns the user's current profile
// (GET /user_management/users/{id}); Raw is the response body as received.
func (c *Client) FetchUser(ctx context.Context, id string) (provider.User, error) {
	if err := ValidateUserID(id); err != nil {
		// No WorkOS user can have this id.
		return provider.User{}, fmt.Errorf("workos: fetch user %q: %w (%v)", id, provider.ErrUserNotFound, err)
	}
	body, err := c.get(ctx, "/user_management/users/"+url.PathEscape(id), nil, userEntity(id))
	if err != nil {
		return provider.User{}, fmt.Errorf("workos: fetch user %s: %w", id, err)
	}
	u, err := mapUser(body)
	if err != nil {
		return provider.User{}, fmt.Errorf("workos: fetch user %s: %w", id, err)
	}
	if u.ID != id {
		return provider.User{}, fmt.Errorf("workos: fetch user %s: response is for user %q", id, u.ID)
	}
	return u, nil
}

// listResponse is UserlandUserList.
type listResponse struct {
	Object       string            `json:"object"`
	Data         []json.RawMessage `json:"data"`
	ListMetadata struct {
		Before *string `json:"before"`
		After  *string `json:"after"`
	} `json:"list_metadata"`
}

// ListUsers returns one page of users, oldest first
// (GET /user_management/users?limit&order=asc&after). The cursor is the id
// of the last user of the previous page (list_metadata.after), an exclusive
// object-id cursor. What WorkOS does when that user has been deleted is
// undocumented, so ListUsers returns ErrCursorNotFound when, with a cursor,
// the API answers 400/404/422, or answers an empty page and the cursor's user
// no longer exists (an empty page after a user who still exists is the end of
// the list).
func (c *Client) ListUsers(ctx context.Context, cursor string) (provider.Page, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.pageSize))
	q.Set("order", "asc")
	if cursor != "" {
		if ValidateUserID(cursor) != nil {
			return provider.Page{}, fmt.Errorf("workos: list users: %w: malformed cursor", provider.ErrCursorNotFound)
		}
		q.Set("after", cursor)
	}
	body, err := c.get(ctx, "/user_management/users", q, nil)
	if err != nil {
		var se *provider.StatusError
		if cursor != "" && errors.As(err, &se) &&
			(se.StatusCode == http.StatusBadRequest || se.StatusCode == http.StatusNotFound || se.StatusCode == http.StatusUnprocessableEntity) {
			return provider.Page{}, fmt.Errorf("workos: list users after %s: %w: %w", cursor, provider.ErrCursorNotFound, err)
		}
		return provider.Page{}, fmt.Errorf("workos: list users: %w", err)
	}
	var resp listResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return provider.Page{}, fmt.Errorf("workos: list users: decode: %w", err)
	}
	page := provider.Page{Users: make([]provider.User, 0, len(resp.Data))}
	for i, raw := range resp.Data {
		u, err := mapUser(raw)
		if err != nil {
			return provider.Page{}, fmt.Errorf("workos: list users: item %d: %w", i, err)
		}
		page.Users = append(page.Users, u)
	}
	if len(page.Users) == 0 {
		if cursor != "" {
			_, err := c.FetchUser(ctx, cursor)
			if errors.Is(err, provider.ErrUserNotFound) {
				return provider.Page{}, fmt.Errorf("workos: list users after %s: %w: empty page and the user is gone", cursor, provider.ErrCursorNotFound)
			}
			if err != nil {
				return provider.Page{}, fmt.Errorf("workos: list users after %s: empty page, checking the cursor: %w", cursor, err)
			}
		}
		return page, nil
	}
	if a := resp.ListMetadata.After; a != nil && *a != "" && *a != cursor {
		page.Next = *a
	}
	return page, nil
}

// ResumeCursor returns lastUserID itself: an exclusive cursor after that user
// (so it is not listed again). It returns "" for an id that cannot be a
// WorkOS user id.
func (c *Client) ResumeCursor(lastUserID string) string {
	if ValidateUserID(lastUserID) != nil {
		return ""
	}
	return lastUserID
}

// entity is the object a request is about, for classifying a 404 answer:
// in WorkOS's own not-found format it means the object does not exist (err),
// in any other format it is a foreign answer (a wrong API URL).
type entity struct {
	// noun starts WorkOS's not-found message ("User not found: '<id>'.").
	noun string
	id   string
	// err is the classified error a not-found answer wraps.
	err error
	// single: the answer is one object (bounded by MaxUserResponseBytes),
	// not a list page.
	single bool
}

func userEntity(id string) *entity {
	return &entity{noun: "user", id: id, err: provider.ErrUserNotFound, single: true}
}

// get performs an authenticated GET and returns the body of a 200 answer,
// or a classified error. ent, when set, is the object the request is about:
// a 404 in WorkOS's own not-found format then means it is gone.
// Error messages hold no credential the client knows of.
func (c *Client) get(ctx context.Context, path string, q url.Values, ent *entity) ([]byte, error) {
	return c.getQuery(ctx, path, q.Encode(), ent)
}

// getQuery is get with an encoded query ("" = none).
func (c *Client) getQuery(ctx context.Context, path, query string, ent *entity) ([]byte, error) {
	body, err := c.doGet(ctx, path, query, ent)
	return body, c.red.RedactError(err)
}

func (c *Client) doGet(ctx context.Context, path, query string, ent *entity) ([]byte, error) {
	u := c.base + path
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "usersync")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return nil, provider.RedirectError(resp.StatusCode, "WORKOS_API_URL")
	}
	if resp.StatusCode == http.StatusOK {
		limit := int64(provider.MaxListResponseBytes)
		if ent != nil && ent.single {
			limit = provider.MaxUserResponseBytes
		}
		body, err := provider.ReadBody(resp.Body, resp.ContentLength, limit)
		if err != nil {
			return nil, fmt.Errorf("read response (HTTP %d): %w", resp.StatusCode, err)
		}
		return bytes.TrimSpace(body), nil
	}
	// An error answer is only summarised: read a bounded prefix.
	body, err := io.ReadAll(io.LimitReader(resp.Body, provider.MaxErrorResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read response (HTTP %d): %w", resp.StatusCode, err)
	}
	msg := errorMessage(c.red.Redact(string(body)))
	requestID := resp.Header.Get("X-Request-Id")
	if requestID != "" {
		msg += " (request " + provider.Snippet([]byte(requestID), 64) + ")"
	}
	switch status := resp.StatusCode; {
	case status == http.StatusNotFound && ent != nil && isEntityNotFound(body, ent.noun, ent.id):
		return nil, fmt.Errorf("%w: %s", ent.err, msg)
	case status == http.StatusNotFound && ent != nil:
		return nil, provider.ForeignNotFound(msg, "WorkOS", "WORKOS_API_URL")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("%w: HTTP %d: %s", provider.ErrBadCredentials, status, msg)
	case status == http.StatusTooManyRequests:
		return nil, &provider.RateLimitedError{RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return nil, &provider.StatusError{StatusCode: status, Body: msg}
	}
}

// errorMessage extracts {"message", "code"} from an error body, or a snippet.
func errorMessage(body string) string {
	var e struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Message != "" {
		if e.Code != "" {
			return provider.Snippet([]byte(e.Code+": "+e.Message), 300)
		}
		return provider.Snippet([]byte(e.Message), 300)
	}
	return provider.Snippet([]byte(body), 200)
}

// isEntityNotFound reports whether a 404 body is WorkOS's own answer for an
// object that does not exist: a JSON object with code "entity_not_found", or
// (the API reference requires only "message") no code and a message of the
// form "User not found: '<id>'." (noun "user"; "Organization not found: …"
// for noun "organization") naming the requested object. Anything else
// (`{"message":"Not Found"}`, HTML, plain text: a server that is not the
// WorkOS API) is not a deletion.
func isEntityNotFound(body []byte, noun, id string) bool {
	var e struct {
		Message *string `json:"message"`
		Code    *string `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	if e.Code != nil {
		return *e.Code == "entity_not_found"
	}
	return e.Message != nil && strings.HasPrefix(strings.ToLower(*e.Message), noun+" not found") &&
		strings.Contains(*e.Message, "'"+id+"'")
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// userJSON holds the fields of UserlandUser that usersync derives columns from.
type userJSON struct {
	Object    string  `json:"object"`
	ID        string  `json:"id"`
	FirstName *string `json:"first_name"`
	LastName  *string `json:"last_name"`
	Email     *string `json:"email"`
	CreatedAt *string `json:"created_at"`
	UpdatedAt *string `json:"updated_at"`
}

// mapUser derives the users_sync columns (docs/data-model.md) from a raw user object,
// which it keeps as is in Raw.
func mapUser(raw json.RawMessage) (provider.User, error) {
	var u userJSON
	if err := json.Unmarshal(raw, &u); err != nil {
		return provider.User{}, fmt.Errorf("decode user: %w", err)
	}
	if u.ID == "" {
		return provider.User{}, errors.New("user object has no id")
	}
	out := provider.User{ID: u.ID, Raw: raw}
	first, last := "", ""
	if u.FirstName != nil {
		first = *u.FirstName
	}
	if u.LastName != nil {
		last = *u.LastName
	}
	if name := strings.TrimSpace(first + " " + last); name != "" {
		out.Name = &name
	}
	if u.Email != nil && *u.Email != "" {
		email := *u.Email
		out.Email = &email
	}
	out.CreatedAt = parseTime(u.CreatedAt)
	out.UpdatedAt = parseTime(u.UpdatedAt)
	return out, nil
}

// parseTime parses an ISO-8601 timestamp; nil when absent or malformed.
func parseTime(s *string) *time.Time {
	if s == nil || *s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil
	}
	t = t.UTC()
	return &t
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ValidateUserID reports whether id is a WorkOS user id: it passes
// [provider.ValidateUserID] and is "user_" followed by a 26-character ULID
// (Crockford base32, upper case). The error wraps [provider.ErrBadPayload].
func ValidateUserID(id string) error {
	if err := provider.ValidateUserID(id); err != nil {
		return err
	}
	ulid, ok := strings.CutPrefix(id, "user_")
	if !ok || len(ulid) != 26 || ulid[0] > '7' {
		return fmt.Errorf("%w: %q is not a WorkOS user id (user_ followed by a ULID)", provider.ErrBadPayload, id)
	}
	for i := 0; i < len(ulid); i++ {
		if strings.IndexByte(crockford, ulid[i]) < 0 {
			return fmt.Errorf("%w: %q is not a WorkOS user id (user_ followed by a ULID)", provider.ErrBadPayload, id)
		}
	}
	return nil
}

// UsersPerPage is the most users one list request returns: with
// UsersPerLookup, what a listing and lookups cost in requests, by which
// usersync decides when to serve a large backlog of syncs by listing
// (docs/limits.md, "A large backlog").
func (c *Client) UsersPerPage() int { return c.pageSize }

// UsersPerLookup is the most users one lookup request carries.
func (c *Client) UsersPerLookup() int { return 1 }
