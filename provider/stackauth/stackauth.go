// Package stackauth is the Stack Auth provider: it fetches and lists users
// through Stack Auth's server REST API and verifies and parses the webhooks
// Stack Auth sends through Svix.
//
// It is the only code in usersync that knows Stack Auth's wire format.
// Callers use it through [provider.Provider].
//
// What it relies on: server requests carry x-stack-access-type: server,
// x-stack-project-id and x-stack-secret-server-key (newer Stack Auth
// versions, renamed Hexclave, also read x-hexclave-* headers and still
// accept these); GET /api/v1/users/{id} returns any user, anonymous and
// restricted ones included, or 404 USER_NOT_FOUND; GET /api/v1/users
// leaves anonymous and restricted users out unless the request asks for
// them (include_anonymous=true lists everyone); user ids are UUIDs compared
// without regard to case; webhooks are {"type","data"} bodies signed by
// Svix, and user.deleted carries only the id (and teams).
//
// The client also reads teams as organizations ([provider.Organizations];
// organizations.go says what that relies on).
package stackauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	"github.com/tidwall/gjson"

	"github.com/usersync/usersync/provider"
)

// ProviderName is the value of [Client.Name].
const ProviderName = "stackauth"

// Defaults applied by [New] to zero Config fields.
const (
	// DefaultAPIURL is Stack Auth's hosted API (without the /api/v1 suffix).
	DefaultAPIURL = "https://api.stack-auth.com"
	// DefaultPageSize is the number of users asked for per list page.
	DefaultPageSize = 1000
	// MaxPageSize is the largest accepted Config.PageSize (a backfill page
	// holds at most 1000 users, docs/jobs.md).
	MaxPageSize = 1000
	// RequestTimeout bounds every API request, whatever the HTTP client's own
	// timeout.
	RequestTimeout = 15 * time.Second
)

// Response size limits (see the provider package): a user object may carry
// a 1 MB data: URL as its profile image, and a page holds up to 1000 users.
const (
	maxUserBody  = provider.MaxUserResponseBytes
	maxListBody  = provider.MaxListResponseBytes
	maxErrorBody = provider.MaxErrorResponseBytes
	snippetLen   = 200
)

// Config configures a [Client].
type Config struct {
	// ProjectID is the Stack Auth project id (STACK_PROJECT_ID). Required.
	ProjectID string
	// SecretServerKey is the project's secret server key, ssk_...
	// (STACK_SECRET_SERVER_KEY). Required.
	SecretServerKey string
	// WebhookSecret is the Svix endpoint secret, whsec_...
	// (STACK_WEBHOOK_SECRET). Required.
	WebhookSecret string
	// APIURL is the API base without /api/v1 (STACK_API_URL); default
	// [DefaultAPIURL]. A trailing slash, or a trailing /api/v1, is tolerated.
	APIURL string
	// HTTPClient sends the API requests; default a client with a 15 s
	// timeout. The client is copied so that redirects are never followed (they
	// would carry the secret key elsewhere).
	HTTPClient *http.Client
	// PageSize is the number of users per list page, 1..1000; default 1000.
	PageSize int
	// ExcludeAnonymous leaves anonymous users out of the list
	// (USERSYNC_ANONYMOUS=exclude). Stack Auth's list endpoint returns only
	// users that are neither anonymous nor restricted unless asked: by
	// default the client asks for everyone (include_anonymous=true, which
	// includes restricted users too); with ExcludeAnonymous it asks for
	// restricted users only (include_restricted=true) and drops any
	// anonymous user an answer still holds. FetchUser returns every user
	// either way, with [provider.User.Anonymous] set from is_anonymous.
	ExcludeAnonymous bool
	// Redactor scrubs credentials from error text (every credential of the
	// process, when the caller has several); the client adds its own keys.
	Redactor *provider.Redactor
}

// Client is a Stack Auth [provider.Provider]. It is safe for concurrent use.
type Client struct {
	projectID string
	secretKey string
	red       *provider.Redactor
	base      string // ".../api/v1", no trailing slash
	http      *http.Client
	pageSize  int
	wh        *svix.Webhook
	// excludeAnonymous: see Config.ExcludeAnonymous.
	excludeAnonymous bool
}

var _ provider.Provider = (*Client)(nil)

// New validates cfg and returns a Client. Errors name the offending field and
// never include secret values.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.ProjectID) == "" {
		return nil, errors.New("stackauth: ProjectID (STACK_PROJECT_ID) is required")
	}
	if !validHeaderValue(cfg.ProjectID) {
		return nil, errors.New("stackauth: ProjectID (STACK_PROJECT_ID) contains whitespace or control characters")
	}
	if strings.TrimSpace(cfg.SecretServerKey) == "" {
		return nil, errors.New("stackauth: SecretServerKey (STACK_SECRET_SERVER_KEY) is required")
	}
	if !validHeaderValue(cfg.SecretServerKey) {
		return nil, errors.New("stackauth: SecretServerKey (STACK_SECRET_SERVER_KEY) contains whitespace or control characters")
	}
	if strings.TrimSpace(cfg.WebhookSecret) == "" {
		return nil, errors.New("stackauth: WebhookSecret (STACK_WEBHOOK_SECRET) is required")
	}
	wh, err := newWebhook(cfg.WebhookSecret)
	if err != nil {
		return nil, err
	}
	base, err := apiBase(cfg.APIURL)
	if err != nil {
		return nil, err
	}
	pageSize := cfg.PageSize
	switch {
	case pageSize == 0:
		pageSize = DefaultPageSize
	case pageSize < 0 || pageSize > MaxPageSize:
		return nil, fmt.Errorf("stackauth: PageSize must be between 1 and %d, got %d", MaxPageSize, pageSize)
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		hc.Timeout = RequestTimeout
	}
	hc.CheckRedirect = provider.RefuseRedirects
	return &Client{
		projectID: cfg.ProjectID,
		secretKey: cfg.SecretServerKey,
		red:       cfg.Redactor.With(cfg.SecretServerKey, cfg.WebhookSecret),
		base:      base,
		http:      &hc,
		pageSize:  pageSize,
		wh:        wh,

		excludeAnonymous: cfg.ExcludeAnonymous,
	}, nil
}

// newWebhook parses a Svix secret without ever echoing it.
func newWebhook(secret string) (*svix.Webhook, error) {
	const what = "stackauth: WebhookSecret (STACK_WEBHOOK_SECRET)"
	if strings.ContainsAny(secret, " \t\r\n") {
		return nil, errors.New(what + " contains whitespace")
	}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		// The svix error ("illegal base64 data at input byte N") holds no
		// secret material, but keep the message ours anyway.
		return nil, errors.New(what + " is not valid: expected whsec_ followed by base64")
	}
	if n := provider.SvixKeyBytes(secret); n < provider.MinWebhookSecretBytes {
		return nil, fmt.Errorf("%s is too short: %d bytes of key material, at least %d needed", what, n, provider.MinWebhookSecretBytes)
	}
	return wh, nil
}

func apiBase(raw string) (string, error) {
	if raw == "" {
		raw = DefaultAPIURL
	}
	u, err := provider.ParseAPIURL(raw)
	if err != nil {
		return "", fmt.Errorf("stackauth: APIURL (STACK_API_URL): %w", err)
	}
	p := strings.TrimSuffix(u.Path, "/api/v1")
	u.Path = p + "/api/v1"
	u.RawPath = ""
	return u.String(), nil
}

// validHeaderValue reports whether s can be sent as a header value unchanged.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Name returns "stackauth".
func (c *Client) Name() string { return ProviderName }

// ResumeCursor returns lastUserID: Stack Auth's cursor is inclusive, so the
// list continues at that user (listing it again).
func (c *Client) ResumeCursor(lastUserID string) string { return lastUserID }

// FetchUser returns the user's current profile (GET /api/v1/users/{id}). It
// returns an error wrapping [provider.ErrUserNotFound] when Stack Auth answers
// 404 USER_NOT_FOUND, or when id is not a UUID (Stack Auth ids are UUIDs and
// its API rejects anything else, so no such user can exist).
func (c *Client) FetchUser(ctx context.Context, id string) (provider.User, error) {
	if err := provider.ValidateUserID(id); err != nil || !IsUUID(id) {
		return provider.User{}, fmt.Errorf("stackauth: fetch user %q: %w (the id is not a UUID, so no Stack Auth user has it)", provider.Snippet([]byte(id), 64), provider.ErrUserNotFound)
	}
	status, header, body, err := c.get(ctx, "/users/"+url.PathEscape(id), nil, maxUserBody)
	if err != nil {
		return provider.User{}, fmt.Errorf("stackauth: fetch user %s: %w", id, err)
	}
	if status < 200 || status > 299 {
		if status == http.StatusNotFound {
			if isUserNotFound(header, body) {
				return provider.User{}, fmt.Errorf("stackauth: fetch user %s: %w", id, provider.ErrUserNotFound)
			}
			return provider.User{}, fmt.Errorf("stackauth: fetch user %s: %w", id, provider.ForeignNotFound(c.snippet(body), "Stack Auth", "STACK_API_URL"))
		}
		return provider.User{}, fmt.Errorf("stackauth: fetch user %s: %w", id, c.classify(status, header, body))
	}
	u, err := decodeUser(body)
	if err != nil {
		return provider.User{}, fmt.Errorf("stackauth: fetch user %s: %w", id, err)
	}
	if !strings.EqualFold(u.ID, id) {
		return provider.User{}, fmt.Errorf("stackauth: fetch user %s: the API returned user %q instead", id, provider.Snippet([]byte(u.ID), 64))
	}
	return u, nil
}

// ListUsers returns one page of users in ascending sign-up order
// (GET /api/v1/users?limit=N&order_by=signed_up_at&include_anonymous=true
// [&cursor=...]). It asks for every user, anonymous and restricted ones
// included, which the endpoint leaves out by default; with
// Config.ExcludeAnonymous, for every user but the anonymous ones
// (include_restricted=true). The cursor is inclusive: it names the first
// user of the page. When cursor names a user
// that no longer exists (Stack then answers an empty page, or a 4xx about the
// cursor) it returns an error wrapping [provider.ErrCursorNotFound].
func (c *Client) ListUsers(ctx context.Context, cursor string) (provider.Page, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(c.pageSize))
	q.Set("order_by", "signed_up_at")
	if c.excludeAnonymous {
		q.Set("include_restricted", "true")
	} else {
		q.Set("include_anonymous", "true")
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	what := "stackauth: list users"
	if cursor != "" {
		what = fmt.Sprintf("stackauth: list users from cursor %s", provider.Snippet([]byte(cursor), 64))
	}
	status, header, body, err := c.get(ctx, "/users", q, maxListBody)
	if err != nil {
		return provider.Page{}, fmt.Errorf("%s: %w", what, err)
	}
	if status < 200 || status > 299 {
		if cursor != "" && cursorRejected(status, header, body) {
			return provider.Page{}, fmt.Errorf("%s: %w (HTTP %d: %s)", what, provider.ErrCursorNotFound, status, c.snippet(body))
		}
		return provider.Page{}, fmt.Errorf("%s: %w", what, c.classify(status, header, body))
	}
	var resp struct {
		Items      []json.RawMessage `json:"items"`
		Pagination *struct {
			NextCursor *string `json:"next_cursor"`
		} `json:"pagination"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return provider.Page{}, fmt.Errorf("%s: decode response: %w", what, err)
	}
	if resp.Items == nil {
		return provider.Page{}, fmt.Errorf("%s: response has no items list", what)
	}
	if len(resp.Items) == 0 && cursor != "" {
		// An inclusive cursor always lists its own user: an empty page means
		// the user the cursor names is gone (Prisma answers [] in that case).
		return provider.Page{}, fmt.Errorf("%s: %w (empty page: the user it names was probably deleted)", what, provider.ErrCursorNotFound)
	}
	page := provider.Page{Users: make([]provider.User, 0, len(resp.Items))}
	for i, raw := range resp.Items {
		u, err := decodeUser(raw)
		if err != nil {
			return provider.Page{}, fmt.Errorf("%s: item %d: %w", what, i, err)
		}
		if u.Anonymous && c.excludeAnonymous {
			continue // include_restricted=true should not list them; never pass one on
		}
		page.Users = append(page.Users, u)
	}
	if resp.Pagination != nil && resp.Pagination.NextCursor != nil {
		page.Next = *resp.Pagination.NextCursor
		if IsUUID(page.Next) {
			page.Next = strings.ToLower(page.Next) // a user id: see canonicalID
		}
	}
	if page.Next != "" && strings.EqualFold(page.Next, cursor) {
		return provider.Page{}, fmt.Errorf("%s: the API returned the same cursor as next_cursor (refusing to loop)", what)
	}
	return page, nil
}

// isUserNotFound reports whether a 404 answer is Stack Auth's own "no such
// user": its USER_NOT_FOUND known error, named both in the
// X-Stack-Known-Error header and in the JSON body's code. Any other 404 (a
// server that is not Stack Auth's API) is not a deletion.
func isUserNotFound(header http.Header, body []byte) bool {
	return isKnownError(header, body, "USER_NOT_FOUND")
}

// isKnownError reports whether an error answer is Stack Auth's known error
// code, named both in the X-Stack-Known-Error header and in the JSON body's
// code.
func isKnownError(header http.Header, body []byte, code string) bool {
	// Stack Auth's newer releases (renamed Hexclave) announce the same
	// header under an x-hexclave- name as well.
	if header.Get("X-Stack-Known-Error") != code && header.Get("X-Hexclave-Known-Error") != code {
		return false
	}
	var e struct {
		Code string `json:"code"`
	}
	return json.Unmarshal(body, &e) == nil && e.Code == code
}

// cursorRejected reports whether a non-2xx list answer is about the cursor
// (rather than credentials, rate limits or an outage).
func cursorRejected(status int, header http.Header, body []byte) bool {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return false
	case status < 400 || status > 499:
		return false
	}
	if knownErrorCode(header, body) == "USER_NOT_FOUND" {
		return true
	}
	return bytes.Contains(bytes.ToLower(body), []byte("cursor"))
}

// get sends one authenticated GET and returns the status, headers and body
// (at most limit bytes for 2xx answers; a short excerpt otherwise).
func (c *Client) get(ctx context.Context, path string, q url.Values, limit int64) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("x-stack-access-type", "server")
	req.Header.Set("x-stack-project-id", c.projectID)
	req.Header.Set("x-stack-secret-server-key", c.secretKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "usersync-stackauth")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, c.redactErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return 0, nil, nil, provider.RedirectError(resp.StatusCode, "STACK_API_URL")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Only summarised: read a bounded prefix, drop the rest.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return 0, nil, nil, fmt.Errorf("read response (HTTP %d): %w", resp.StatusCode, c.redactErr(err))
		}
		return resp.StatusCode, resp.Header, body, nil
	}
	body, err := provider.ReadBody(resp.Body, resp.ContentLength, limit)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response (HTTP %d): %w", resp.StatusCode, c.redactErr(err))
	}
	return resp.StatusCode, resp.Header, body, nil
}

// classify turns a non-2xx answer that is not user- or cursor-specific into a
// classified error.
func (c *Client) classify(status int, header http.Header, body []byte) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code := knownErrorCode(header, body)
		if code == "" {
			return fmt.Errorf("%w (HTTP %d)", provider.ErrBadCredentials, status)
		}
		return fmt.Errorf("%w (HTTP %d %s)", provider.ErrBadCredentials, status, provider.Snippet([]byte(c.redact(code)), 64))
	case status == http.StatusTooManyRequests:
		return &provider.RateLimitedError{RetryAfter: parseRetryAfter(header.Get("Retry-After"), time.Now())}
	default:
		return &provider.StatusError{StatusCode: status, Body: c.snippet(body)}
	}
}

func (c *Client) snippet(body []byte) string {
	return provider.Snippet([]byte(c.redact(string(body))), snippetLen)
}

// redact removes every known credential from s, in case something echoes it.
func (c *Client) redact(s string) string { return c.red.Redact(s) }

// redactErr keeps err's chain (timeouts, resets stay detectable) while making
// sure its message cannot contain a credential.
func (c *Client) redactErr(err error) error { return c.red.RedactError(err) }

// knownErrorCode returns Stack's KnownError code of an error answer, from the
// X-Stack-Known-Error header or the body's "code".
func knownErrorCode(header http.Header, body []byte) string {
	if h := header.Get("X-Stack-Known-Error"); h != "" {
		return h
	}
	var e struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &e) == nil {
		return e.Code
	}
	return ""
}

// parseRetryAfter parses a Retry-After value (delay seconds or HTTP-date);
// anything missing, invalid or in the past gives 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(math.MaxInt64/int64(time.Second)) {
			secs = int64(math.MaxInt64 / int64(time.Second))
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Earliest and latest sign-up times accepted (years 1 and 9999, in ms).
const (
	minMillis = -62135596800000
	maxMillis = 253402300799999
)

// decodeUser decodes the fields usersync needs from one user object and
// keeps the object itself, byte for byte, as Raw (except an id in upper
// case: see canonicalID).
func decodeUser(raw []byte) (provider.User, error) {
	var w struct {
		ID               *string  `json:"id"`
		DisplayName      *string  `json:"display_name"`
		PrimaryEmail     *string  `json:"primary_email"`
		SignedUpAtMillis *float64 `json:"signed_up_at_millis"`
		IsAnonymous      *bool    `json:"is_anonymous"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return provider.User{}, fmt.Errorf("decode user: %w", err)
	}
	if w.ID == nil {
		return provider.User{}, errors.New("decode user: the object has no string id")
	}
	if err := provider.ValidateUserID(*w.ID); err != nil {
		return provider.User{}, fmt.Errorf("decode user: invalid id: %v", err)
	}
	id, raw, err := canonicalID(*w.ID, raw)
	if err != nil {
		return provider.User{}, err
	}
	u := provider.User{ID: id, Email: w.PrimaryEmail, Raw: json.RawMessage(raw)}
	u.Anonymous = w.IsAnonymous != nil && *w.IsAnonymous
	if w.DisplayName != nil && *w.DisplayName != "" {
		u.Name = w.DisplayName
	}
	if w.SignedUpAtMillis != nil {
		ms := math.Round(*w.SignedUpAtMillis)
		if ms < minMillis || ms > maxMillis {
			return provider.User{}, fmt.Errorf("decode user %s: signed_up_at_millis %v is out of range", u.ID, *w.SignedUpAtMillis)
		}
		t := time.UnixMilli(int64(ms)).UTC()
		u.CreatedAt = &t
	}
	return u, nil
}

// canonicalID returns a user id in Stack Auth's canonical form and the
// object with that id. Stack Auth's ids are UUIDs, which it compares
// without regard to case and writes in lower case; should an answer carry
// one in upper case, the id is lowered (in the object too, so that a table
// whose id column is computed from raw_json agrees), so that one user is
// always one row, whichever case a request or an answer used. An id that
// is not a UUID is left as it is.
func canonicalID(id string, raw []byte) (string, []byte, error) {
	lower := strings.ToLower(id)
	if lower == id || !IsUUID(id) {
		return id, raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", nil, fmt.Errorf("decode user: %w", err)
	}
	b, err := json.Marshal(lower)
	if err != nil {
		return "", nil, fmt.Errorf("decode user: %w", err)
	}
	obj["id"] = b
	out, err := json.Marshal(obj)
	if err != nil {
		return "", nil, fmt.Errorf("decode user %s: %w", lower, err)
	}
	return lower, out, nil
}

// ParseWebhook verifies a Svix-signed delivery (5-minute tolerance) and
// parses Stack Auth's {"type", "data"} body. user.created and user.updated
// give [provider.EventUserChanged], user.deleted [provider.EventUserDeleted];
// team.created and team.updated [provider.EventOrganizationChanged],
// team.deleted [provider.EventOrganizationDeleted], team_membership.created
// and team_membership.deleted [provider.EventMembershipChanged]; every other
// type (team_permission.*, ...) is [provider.EventIgnored]. Errors wrap
// [provider.ErrBadSignature] or [provider.ErrBadPayload].
func (c *Client) ParseWebhook(body []byte, header http.Header) (provider.Event, error) {
	if header == nil {
		header = http.Header{}
	}
	if err := c.wh.Verify(body, header); err != nil {
		return provider.Event{}, fmt.Errorf("stackauth: webhook: %w: %v", provider.ErrBadSignature, err)
	}
	return parsePayload(body)
}

// parsePayload parses a verified webhook body.
func parsePayload(body []byte) (provider.Event, error) {
	ev, err := provider.ParseUserEvent(body, "type", func(id string) error {
		if !IsUUID(id) {
			return fmt.Errorf("%w: user id (data.id) is not a UUID", provider.ErrBadPayload)
		}
		return nil
	})
	if err != nil {
		return provider.Event{}, fmt.Errorf("stackauth: webhook: %w", err)
	}
	if ev.Kind == provider.EventIgnored {
		// Team events: ParseUserEvent has checked the body (a JSON object
		// with a string type) and ignores them; read their ids here, off
		// the user-event path.
		switch ev.Type {
		case "team.created", "team.updated", "team.deleted", "team_membership.created", "team_membership.deleted":
			tev, err := parseTeamEvent(body, ev.Type)
			if err != nil {
				return provider.Event{}, fmt.Errorf("stackauth: webhook: %s: %w", ev.Type, err)
			}
			return tev, nil
		}
		return ev, nil
	}
	// Stack Auth's ids are UUIDs it compares without regard to case and
	// always returns in lower case: normalise, so one user is one job key.
	ev.UserID = strings.ToLower(ev.UserID)
	return ev, nil
}

// parseTeamEvent parses a team.* or team_membership.* body (valid JSON,
// checked by the caller): data is the team object ({id} only for
// team.deleted) or {team_id, user_id}. Only the ids are read; they must be
// UUIDs, and come back in lower case.
func parseTeamEvent(body []byte, typ string) (provider.Event, error) {
	data := gjson.GetBytes(body, "data")
	switch {
	case !data.Exists():
		return provider.Event{}, fmt.Errorf("%w: missing \"data\"", provider.ErrBadPayload)
	case !data.IsObject():
		return provider.Event{}, fmt.Errorf("%w: \"data\" is not a JSON object", provider.ErrBadPayload)
	}
	ev := provider.Event{Type: typ}
	var err error
	switch typ {
	case "team.created", "team.updated":
		ev.Kind = provider.EventOrganizationChanged
		ev.OrganizationID, err = eventID(data, "id", "team id")
	case "team.deleted":
		ev.Kind = provider.EventOrganizationDeleted
		ev.OrganizationID, err = eventID(data, "id", "team id")
	default: // team_membership.created, team_membership.deleted
		ev.Kind = provider.EventMembershipChanged
		if ev.OrganizationID, err = eventID(data, "team_id", "team id"); err == nil {
			ev.UserID, err = eventID(data, "user_id", "user id")
		}
	}
	if err != nil {
		return provider.Event{}, err
	}
	return ev, nil
}

// eventID reads data.key, which must be a string id that passes
// [provider.ValidateUserID] and is a UUID, and returns it in lower case.
func eventID(data gjson.Result, key, what string) (string, error) {
	v := data.Get(key)
	switch {
	case !v.Exists():
		return "", fmt.Errorf("%w: missing %s (data.%s)", provider.ErrBadPayload, what, key)
	case v.Type != gjson.String:
		return "", fmt.Errorf("%w: %s (data.%s) is not a JSON string", provider.ErrBadPayload, what, key)
	}
	if err := provider.ValidateUserID(v.Str); err != nil {
		return "", fmt.Errorf("%s (data.%s): %w", what, key, err)
	}
	if !IsUUID(v.Str) {
		return "", fmt.Errorf("%w: %s (data.%s) is not a UUID", provider.ErrBadPayload, what, key)
	}
	return strings.ToLower(v.Str), nil
}

// IsUUID reports whether s has the form of a UUID: 8-4-4-4-12 hexadecimal
// digits, in either case (the form of every Stack Auth user id).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// UsersPerPage is the most users one list request returns: with
// UsersPerLookup, what a listing and lookups cost in requests, by which
// usersync decides when to serve a large backlog of syncs by listing
// (docs/limits.md, "A large backlog").
func (c *Client) UsersPerPage() int { return c.pageSize }

// UsersPerLookup is the most users one lookup request carries.
func (c *Client) UsersPerLookup() int { return 1 }
