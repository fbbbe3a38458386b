package provider

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Limits on what a client reads from a provider API (docs/http.md: every provider
// response read is bounded). A user object may carry a 1 MB data: URL as its
// profile image (about 1.4 MB once JSON-encoded), so one user gets a few
// MiB; a list page holds up to 1000 users. An answer over its limit is a
// provider error (retried), never read further.
const (
	// MaxUserResponseBytes bounds the body of a single-object answer (one user).
	MaxUserResponseBytes = 4 << 20
	// MaxListResponseBytes bounds the body of one list page.
	MaxListResponseBytes = 64 << 20
	// MaxErrorResponseBytes bounds what is read of a non-2xx answer; the rest
	// is dropped (an error body is only summarised).
	MaxErrorResponseBytes = 64 << 10
)

// Errors about a provider answer. ErrForeignNotFound and ErrRedirect are the
// Cause of a [StatusError]; ErrResponseTooLarge is wrapped by read errors.
var (
	// ErrResponseTooLarge: a provider answer was longer than its limit.
	ErrResponseTooLarge = errors.New("provider answer exceeds the size limit")
	// ErrForeignNotFound: a 404 that is not in the provider's own not-found
	// format, so not a deletion; most likely the API URL points elsewhere.
	ErrForeignNotFound = errors.New("404 answer not in the provider's own format")
	// ErrRedirect: the API answered a redirect, which is never followed.
	ErrRedirect = errors.New("the provider API answered a redirect")
)

// ReadBody reads at most limit bytes of r. A longer body gives an error
// wrapping [ErrResponseTooLarge]; nothing past limit+1 bytes is read. When
// contentLength is known and within the limit, the buffer is allocated once.
func ReadBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength > limit {
		return nil, fmt.Errorf("%w: the answer announces %d bytes, the limit is %d", ErrResponseTooLarge, contentLength, limit)
	}
	if contentLength >= 0 {
		// Trust the length only as a size hint; read to EOF all the same.
		buf := make([]byte, 0, contentLength+1)
		return readLimited(r, buf, limit)
	}
	return readLimited(r, nil, limit)
}

func readLimited(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// RefuseRedirects is an [http.Client] CheckRedirect that never follows a
// redirect: every request carries a credential, which must not be sent to
// another address. The client then returns the 3xx answer itself, which the
// provider clients turn into a [StatusError] with a hint (see
// [RedirectError]).
func RefuseRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// RedirectError is the error for a 3xx answer: redirects are not followed
// (they would carry the credential elsewhere), so the API URL is probably
// wrong (http instead of https, a missing path, a proxy).
func RedirectError(status int, envVar string) *StatusError {
	return &StatusError{StatusCode: status, Cause: ErrRedirect,
		Hint: "a redirect, which usersync never follows with a credential attached: check " + envVar + " (https? the right path?)"}
}

// ForeignNotFound is the error for a 404 answer that is not in the
// provider's own not-found format: not a deletion (it is retried), but
// probably a server that is not the provider's API, so a wrong API URL.
func ForeignNotFound(body, providerName, envVar string) *StatusError {
	return &StatusError{StatusCode: http.StatusNotFound, Body: body, Cause: ErrForeignNotFound,
		Hint: "not " + providerName + "'s own not-found answer, so not taken as a deletion: check " + envVar}
}

// Redactor removes credentials from text before it is logged or stored: a
// provider's error answer may echo the request's headers. It is safe for
// concurrent use; a nil *Redactor redacts nothing.
type Redactor struct {
	// needles are the strings to replace, longest first.
	needles []string
}

// minSecretLen is the shortest value a Redactor scrubs: shorter ones are
// not real credentials, and replacing them would mangle ordinary text.
const minSecretLen = 6

// Redacted replaces a credential in redacted text.
const Redacted = "[REDACTED]"

// NewRedactor returns a Redactor for the given credential values. Besides
// each value as is, it scrubs the forms an echo may take: URL-, JSON- and
// base64-encoded, and the part after a "whsec_"-style prefix.
func NewRedactor(secrets ...string) *Redactor {
	return (*Redactor)(nil).With(secrets...)
}

// With returns a Redactor that also scrubs secrets.
func (r *Redactor) With(secrets ...string) *Redactor {
	out := &Redactor{}
	if r != nil {
		out.needles = append(out.needles, r.needles...)
	}
	add := func(s string) {
		if len(s) >= minSecretLen && !slices.Contains(out.needles, s) {
			out.needles = append(out.needles, s)
		}
	}
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) < minSecretLen {
			continue
		}
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		if b, err := json.Marshal(s); err == nil {
			j := string(b[1 : len(b)-1])
			add(j)
			add(strings.ReplaceAll(j, "/", `\/`)) // encoders that escape '/'
		}
		add(base64.StdEncoding.EncodeToString([]byte(s)))
		add(base64.RawURLEncoding.EncodeToString([]byte(s)))
		if i := strings.IndexByte(s, '_'); i >= 0 {
			if j := strings.LastIndexByte(s, '_'); len(s)-j-1 >= 12 {
				add(s[j+1:])
			}
		}
	}
	slices.SortFunc(out.needles, func(a, b string) int { return len(b) - len(a) })
	return out
}

// Redact returns s with every credential replaced by [Redacted].
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, n := range r.needles {
		if strings.Contains(s, n) {
			s = strings.ReplaceAll(s, n, Redacted)
		}
	}
	return s
}

// RedactError returns err unchanged when its message holds no credential,
// else an error with the redacted message that still unwraps to err (so
// errors.Is and errors.As keep working).
func (r *Redactor) RedactError(err error) error {
	if r == nil || err == nil {
		return err
	}
	msg := err.Error()
	red := r.Redact(msg)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// SignatureChecker is implemented by a provider whose webhook deliveries
// carry signature headers that can be checked for presence before the body
// is read.
type SignatureChecker interface {
	// HasSignatureHeaders reports whether h carries every header a signed
	// delivery has (it does not verify anything).
	HasSignatureHeaders(h http.Header) bool
}

// HasSvixHeaders reports whether h has the three headers of a Svix-signed
// delivery (svix-id, svix-timestamp, svix-signature), or their unbranded
// webhook-* forms, which the Svix library also accepts.
func HasSvixHeaders(h http.Header) bool {
	all := func(prefix string) bool {
		return h.Get(prefix+"-id") != "" && h.Get(prefix+"-timestamp") != "" && h.Get(prefix+"-signature") != ""
	}
	return all("svix") || all("webhook")
}

// MinWebhookSecretBytes is the least key material a webhook signing secret
// must have (README "Configuration"): shorter secrets make forged signatures guessable.
const MinWebhookSecretBytes = 16

// SvixKeyBytes returns how many bytes of key material a Svix secret
// ("whsec_" followed by base64) holds: 0 for "whsec_" alone, -1 when the
// part after the prefix is not base64.
func SvixKeyBytes(secret string) int {
	key := strings.TrimPrefix(strings.TrimSpace(secret), "whsec_")
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return -1
	}
	return len(b)
}
