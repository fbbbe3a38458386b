package clerk

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/usersync/usersync/provider"
)

// The SDK keeps the raw body of successful responses (APIResource.Response)
// and of ClerkErrors responses, but when an error body has no "errors" key it
// returns errors.New(body) with neither status nor headers. To classify those
// (and to read Retry-After uniformly) every SDK call runs with a recorder in
// its context, which the wrapping transport fills in from the response. The
// recorder is per call, so concurrent calls never see each other's results.
//
// The transport also bounds what the SDK reads (it reads bodies whole with
// io.ReadAll): a 2xx body over the call's limit fails the read with
// provider.ErrResponseTooLarge, and an error body is cut after
// provider.MaxErrorResponseBytes.

type recorderKey struct{}

// recorder holds what the transport saw of the last response of one call.
type recorder struct {
	// limit is the most bytes of a 2xx body the call may read.
	limit int64

	mu         sync.Mutex
	status     int
	retryAfter string
	tooLarge   bool
	red        *provider.Redactor
}

// withRecorder returns ctx with a recorder for one list call (the limit of a
// list page); see withRecorderLimit.
func withRecorder(ctx context.Context) (context.Context, *recorder) {
	return withRecorderLimit(ctx, provider.MaxListResponseBytes)
}

// withRecorderLimit returns ctx with a recorder for one call whose 2xx body
// may be at most limit bytes.
func withRecorderLimit(ctx context.Context, limit int64) (context.Context, *recorder) {
	rec := &recorder{limit: limit}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

// recordingTransport fills in the request context's recorder and bounds
// response bodies.
type recordingTransport struct {
	base http.RoundTripper
	red  *provider.Redactor
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, t.red.RedactError(err)
	}
	rec, _ := req.Context().Value(recorderKey{}).(*recorder)
	limit := int64(provider.MaxListResponseBytes)
	if rec != nil {
		limit = rec.limit
		rec.mu.Lock()
		rec.status = resp.StatusCode
		rec.retryAfter = resp.Header.Get("Retry-After")
		rec.red = t.red
		rec.mu.Unlock()
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body = &cutBody{r: io.LimitReader(resp.Body, provider.MaxErrorResponseBytes), c: resp.Body}
		return resp, nil
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		rec.markTooLarge()
		return nil, fmt.Errorf("%w: the answer announces %d bytes, the limit is %d", provider.ErrResponseTooLarge, resp.ContentLength, limit)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: limit, limit: limit, rec: rec}
	return resp, nil
}

func (r *recorder) markTooLarge() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.tooLarge = true
	r.mu.Unlock()
}

// cutBody reads a bounded prefix of an error body and then reports EOF.
type cutBody struct {
	r io.Reader
	c io.Closer
}

func (b *cutBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *cutBody) Close() error               { return b.c.Close() }

// limitedBody fails the read once more than limit bytes arrive.
type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
	rec         *recorder
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.err()
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		b.rec.markTooLarge()
		return 0, b.err()
	}
	return n, err
}

func (b *limitedBody) err() error {
	return fmt.Errorf("%w: more than %d bytes", provider.ErrResponseTooLarge, b.limit)
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// wrapHTTPClient returns a copy of hc (or a default client) whose transport
// records responses and bounds their bodies, which never follows a redirect
// (it would carry the secret key elsewhere), and whose timeout is below 20 s.
func wrapHTTPClient(hc *http.Client, red *provider.Redactor) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &recordingTransport{base: base, red: red}
	c.CheckRedirect = provider.RefuseRedirects
	if c.Timeout <= 0 || c.Timeout >= 20e9 {
		c.Timeout = DefaultTimeout
	}
	return &c
}

func (r *recorder) snapshot() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.retryAfter
}

func (r *recorder) state() (tooLarge bool, red *provider.Redactor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tooLarge, r.red
}
