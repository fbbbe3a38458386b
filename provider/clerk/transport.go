package clerk

import (
	"context"
	"net/http"
	"sync"
)

// The SDK keeps the raw body of successful responses (APIResource.Response)
// and of ClerkErrors responses, but when an error body has no "errors" key it
// returns errors.New(body) with neither status nor headers. To classify those
// (and to read Retry-After uniformly) every SDK call runs with a recorder in
// its context, which the wrapping transport fills in from the response. The
// recorder is per call, so concurrent calls never see each other's results.

type recorderKey struct{}

// recorder holds what the transport saw of the last response of one call.
type recorder struct {
	mu         sync.Mutex
	status     int
	retryAfter string
}

func withRecorder(ctx context.Context) (context.Context, *recorder) {
	rec := &recorder{}
	return context.WithValue(ctx, recorderKey{}, rec), rec
}

// recordingTransport fills in the request context's recorder.
type recordingTransport struct {
	base http.RoundTripper
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if rec, ok := req.Context().Value(recorderKey{}).(*recorder); ok {
		rec.mu.Lock()
		rec.status = resp.StatusCode
		rec.retryAfter = resp.Header.Get("Retry-After")
		rec.mu.Unlock()
	}
	return resp, nil
}

// wrapHTTPClient returns a copy of hc (or a default client) whose transport
// records responses and whose timeout is below 20 s.
func wrapHTTPClient(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &recordingTransport{base: base}
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
