// Package clerk is usersync's client for Clerk's Backend API and webhooks.
//
// It uses the official SDK (github.com/clerk/clerk-sdk-go/v2) with a
// per-client backend (never the SDK's package-level key), and verifies
// webhooks with Svix (github.com/svix/svix-webhooks).
package clerk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/provider"
)

// DefaultAPIURL is Clerk's Backend API base URL.
const DefaultAPIURL = "https://api.clerk.com/v1"

// MaxPageSize is the largest page Clerk's list endpoint accepts, and the
// default page size.
const MaxPageSize = 500

// DefaultTimeout is the HTTP timeout used when Config.HTTPClient is nil or
// has no timeout (or one of 20 s or more).
const DefaultTimeout = 15 * time.Second

// Config configures a [Client].
type Config struct {
	// SecretKey is the instance's secret key (sk_...), CLERK_SECRET_KEY.
	SecretKey string
	// WebhookSecret is the Svix signing secret (whsec_...),
	// CLERK_WEBHOOK_SECRET. When empty, ParseWebhook rejects every delivery.
	WebhookSecret string
	// APIURL is the Backend API base URL including the /v1 path,
	// CLERK_API_URL; default DefaultAPIURL.
	APIURL string
	// HTTPClient is the HTTP client to use; its transport is wrapped, the
	// value itself is not modified. Default: a client with DefaultTimeout.
	HTTPClient *http.Client
	// PageSize is the number of users (organizations, memberships) per list
	// page, 1..500; default 500.
	PageSize int
	// Redactor scrubs credentials from error text (every credential of the
	// process, when the caller has several); the client adds its own keys.
	Redactor *provider.Redactor
}

// Client is a [provider.Provider] for Clerk. It is safe for concurrent use.
type Client struct {
	users    *user.Client
	backend  clerksdk.Backend
	webhook  *svix.Webhook
	pageSize int
	loader   *loader
}

var _ provider.Provider = (*Client)(nil)

// New returns a Clerk client. It checks the configuration but makes no
// request.
func New(cfg Config) (*Client, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("clerk: secret key is empty")
	}
	if strings.ContainsAny(cfg.SecretKey, " \t\r\n") {
		return nil, errors.New("clerk: secret key contains whitespace")
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := provider.ParseAPIURL(apiURL)
	if err != nil {
		return nil, fmt.Errorf("clerk: %w", err)
	}
	if !strings.HasSuffix(u.Path, "/v1") {
		// The URL is not echoed: it could hold credentials.
		return nil, fmt.Errorf("clerk: API URL must end with /v1 (e.g. %s)", DefaultAPIURL)
	}
	apiURL = u.String()
	pageSize, err := provider.PageSize(cfg.PageSize, MaxPageSize)
	if err != nil {
		return nil, fmt.Errorf("clerk: %w", err)
	}
	var wh *svix.Webhook
	if cfg.WebhookSecret != "" {
		wh, err = svix.NewWebhook(cfg.WebhookSecret)
		if err != nil {
			// The svix error quotes no part of the secret, but say less anyway.
			return nil, errors.New("clerk: webhook secret is not a valid Svix secret (whsec_ followed by base64)")
		}
		if n := provider.SvixKeyBytes(cfg.WebhookSecret); n < provider.MinWebhookSecretBytes {
			return nil, fmt.Errorf("clerk: webhook secret is too short: %d bytes of key material, at least %d needed", n, provider.MinWebhookSecretBytes)
		}
	}
	users := user.NewClient(&clerksdk.ClientConfig{BackendConfig: clerksdk.BackendConfig{
		URL:        clerksdk.String(apiURL),
		Key:        clerksdk.String(cfg.SecretKey),
		HTTPClient: wrapHTTPClient(cfg.HTTPClient, cfg.Redactor.With(cfg.SecretKey, cfg.WebhookSecret)),
	}})
	c := &Client{users: users, backend: users.Backend, webhook: wh, pageSize: pageSize}
	c.loader = newLoader(c.fetchOne, c.fetchMany)
	return c, nil
}

// Name returns "clerk".
func (c *Client) Name() string { return "clerk" }

// FetchUser returns the user's current profile. Raw is the user object
// exactly as received. A lone call is one GET /users/{id}; concurrent calls
// share GET /users?user_id=... requests (see batch.go and docs/providers.md),
// with the same results.
func (c *Client) FetchUser(ctx context.Context, id string) (provider.User, error) {
	if err := ValidateUserID(id); err != nil {
		// No Clerk user can have this id; it would not even make a safe path.
		return provider.User{}, fmt.Errorf("clerk: fetch user %q: %w (%v)", id, provider.ErrUserNotFound, err)
	}
	return c.loader.load(ctx, id)
}

// fetchOne looks up one user with GET /users/{id}. Raw is the response body
// exactly as received (the SDK keeps it in clerk.User.Response.RawJSON).
// Only Clerk's own 404 answer gives ErrUserNotFound.
func (c *Client) fetchOne(ctx context.Context, id string) (provider.User, error) {
	ctx, rec := withRecorderLimit(ctx, provider.MaxUserResponseBytes)
	u, err := c.users.Get(ctx, id)
	if err != nil {
		return provider.User{}, fmt.Errorf("clerk: fetch user %s: %w", id, classify(err, rec, true))
	}
	if u.Response == nil || len(u.Response.RawJSON) == 0 {
		return provider.User{}, fmt.Errorf("clerk: fetch user %s: empty response", id)
	}
	out, err := mapUser(u, u.Response.RawJSON)
	if err != nil {
		return provider.User{}, fmt.Errorf("clerk: fetch user %s: %w", id, err)
	}
	if out.ID != id {
		return provider.User{}, fmt.Errorf("clerk: fetch user %s: response is for user %q", id, out.ID)
	}
	return out, nil
}

// ValidateUserID reports whether id is a plausible Clerk user id: it passes
// [provider.ValidateUserID] and is "user_" followed by ASCII letters and
// digits. The error wraps [provider.ErrBadPayload].
func ValidateUserID(id string) error {
	if err := provider.ValidateUserID(id); err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(id, "user_")
	if !ok || rest == "" {
		return fmt.Errorf("%w: %q is not a Clerk user id (user_...)", provider.ErrBadPayload, id)
	}
	for i := 0; i < len(rest); i++ {
		ch := rest[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return fmt.Errorf("%w: %q is not a Clerk user id (user_ followed by letters and digits)", provider.ErrBadPayload, id)
		}
	}
	return nil
}

// mapUser derives the users_sync columns (docs/data-model.md) from a decoded user.
func mapUser(u *clerksdk.User, raw json.RawMessage) (provider.User, error) {
	if u.ID == "" {
		return provider.User{}, errors.New("user object has no id")
	}
	out := provider.User{ID: u.ID, Raw: raw}
	name := strings.TrimSpace(deref(u.FirstName) + " " + deref(u.LastName))
	if name == "" {
		name = deref(u.Username)
	}
	if name != "" {
		out.Name = &name
	}
	if primary := deref(u.PrimaryEmailAddressID); primary != "" {
		for _, e := range u.EmailAddresses {
			if e != nil && e.ID == primary {
				if e.EmailAddress != "" {
					email := e.EmailAddress
					out.Email = &email
				}
				break
			}
		}
	}
	out.CreatedAt = unixTime(u.CreatedAt)
	out.UpdatedAt = unixTime(u.UpdatedAt)
	return out, nil
}

// secondsBelow is the bound under which a Clerk timestamp is read as seconds.
const secondsBelow = 100_000_000_000 // 1e11

// maxUnixMillis is 9999-12-31T23:59:59.999Z, the last time usersync stores.
const maxUnixMillis = 253_402_300_799_999

// unixTime converts one of Clerk's Unix timestamps to a time, or nil (the
// column is then NULL, and the profile is stored all the same).
//
// Clerk sends milliseconds, but some of Clerk's own published examples carry
// seconds-sized values (e.g. 1610783813 for a user created in January
// 2021). The two cannot be confused: read as milliseconds, any value below
// 1e11 is before March 1973, long before Clerk existed; read as seconds, no
// value reaches 1e11 before the year 5138. So a positive value below 1e11 is
// read as seconds, any larger one as milliseconds. Zero or negative (no
// time) and values past the year 9999 give nil.
func unixTime(v int64) *time.Time {
	switch {
	case v <= 0:
		return nil
	case v < secondsBelow:
		v *= 1000
	case v > maxUnixMillis:
		return nil
	}
	t := time.UnixMilli(v).UTC()
	return &t
}

// userFromRaw decodes one user object as it appears in a list page.
func userFromRaw(raw json.RawMessage) (provider.User, error) {
	var u clerksdk.User
	if err := json.Unmarshal(raw, &u); err != nil {
		return provider.User{}, fmt.Errorf("decode user: %w", err)
	}
	return mapUser(&u, raw)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// classify turns an SDK or transport error into usersync's classified errors.
// rec holds the status and Retry-After of the last response, recorded by the
// transport, since the SDK drops both when the body has no "errors" key.
// notFoundOK says whether a 404 means "this user does not exist" (only in
// Clerk's own format: a ClerkErrors body with code resource_not_found). The
// result's message holds no credential the transport knows of.
func classify(err error, rec *recorder, notFoundOK bool) error {
	var notFound error
	if notFoundOK {
		notFound = provider.ErrUserNotFound
	}
	return classifyNotFound(err, rec, notFound)
}

// classifyNotFound is classify where a 404 in Clerk's own format means
// notFound (nil: a 404 is not expected, and is a plain StatusError).
func classifyNotFound(err error, rec *recorder, notFound error) error {
	if err == nil {
		return nil
	}
	var red *provider.Redactor
	if rec != nil {
		var tooLarge bool
		tooLarge, red = rec.state()
		if tooLarge || errors.Is(err, provider.ErrResponseTooLarge) {
			return fmt.Errorf("%w (at most %d bytes are read of one answer)", provider.ErrResponseTooLarge, rec.limit)
		}
	}
	return red.RedactError(classifyStatus(err, rec, notFound, red))
}

func classifyStatus(err error, rec *recorder, notFound error, red *provider.Redactor) error {
	status := 0
	var apiErr *clerksdk.APIErrorResponse
	isAPIErr := errors.As(err, &apiErr)
	if isAPIErr {
		status = apiErr.HTTPStatusCode
	}
	recStatus, recRetryAfter := 0, ""
	if rec != nil {
		recStatus, recRetryAfter = rec.snapshot()
	}
	if !isAPIErr && recStatus >= 400 {
		status = recStatus
	}
	if recStatus >= 300 && recStatus <= 399 {
		return provider.RedirectError(recStatus, "CLERK_API_URL")
	}
	if status == 0 {
		// A transport error (connection reset, timeout, context ended) or a
		// 2xx body the SDK could not decode: return it as is (transient).
		return err
	}
	switch {
	case status == http.StatusNotFound && notFound != nil && isAPIErr && isResourceNotFound(apiErr):
		return fmt.Errorf("%w: %s", notFound, describe(apiErr, red))
	case status == http.StatusNotFound && notFound != nil:
		return provider.ForeignNotFound(describeErr(err, apiErr, red), "Clerk", "CLERK_API_URL")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: HTTP %d: %s", provider.ErrBadCredentials, status, describeErr(err, apiErr, red))
	case status == http.StatusTooManyRequests:
		return &provider.RateLimitedError{RetryAfter: parseRetryAfter(recRetryAfter, time.Now())}
	default:
		return &provider.StatusError{StatusCode: status, Body: describeErr(err, apiErr, red)}
	}
}

// isResourceNotFound reports whether a ClerkErrors body says
// resource_not_found, Clerk's own answer for a user that does not exist.
func isResourceNotFound(e *clerksdk.APIErrorResponse) bool {
	for _, x := range e.Errors {
		if x.Code == "resource_not_found" {
			return true
		}
	}
	return false
}

// describeErr summarises an error answer, credentials removed before it is
// cut short (so no part of one can remain).
func describeErr(err error, apiErr *clerksdk.APIErrorResponse, red *provider.Redactor) string {
	if apiErr != nil {
		return describe(apiErr, red)
	}
	return provider.Snippet([]byte(red.Redact(err.Error())), 200)
}

// describe summarises a Clerk error body (codes and messages, trace id).
func describe(e *clerksdk.APIErrorResponse, red *provider.Redactor) string {
	var parts []string
	for _, x := range e.Errors {
		s := x.Code
		if x.LongMessage != "" {
			s += ": " + x.LongMessage
		} else if x.Message != "" {
			s += ": " + x.Message
		}
		parts = append(parts, s)
	}
	s := strings.Join(parts, "; ")
	if e.TraceID != "" {
		s += " (trace " + e.TraceID + ")"
	}
	return provider.Snippet([]byte(red.Redact(s)), 300)
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
		if n > 24*3600 {
			n = 24 * 3600
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// encodeCursor and decodeCursor make the opaque list cursor.
func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("%w: malformed cursor", provider.ErrCursorNotFound)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: malformed cursor", provider.ErrCursorNotFound)
	}
	if c.UserID != "" {
		if ValidateUserID(c.UserID) != nil {
			return c, fmt.Errorf("%w: malformed cursor", provider.ErrCursorNotFound)
		}
		return c, nil
	}
	if c.T <= 0 || c.K < 0 || c.K < len(c.Seen) {
		return c, fmt.Errorf("%w: malformed cursor", provider.ErrCursorNotFound)
	}
	return c, nil
}
