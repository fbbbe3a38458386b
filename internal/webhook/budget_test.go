package webhook_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersync/usersync/internal/webhook"
	"github.com/usersync/usersync/provider"
)

// signedStub is stubProvider with signature headers: X-Sig must be present.
type signedStub struct{ stubProvider }

func (signedStub) HasSignatureHeaders(h http.Header) bool { return h.Get("X-Sig") != "" }

// watchedBody records whether anything read it.
type watchedBody struct {
	r    io.Reader
	read atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

func newHandler(budget int64) (*webhook.Handler, http.Handler) {
	h := webhook.NewHandler([]provider.Provider{signedStub{}}, &stubCommitter{}, nil, slog.New(slog.DiscardHandler))
	if budget > 0 {
		h.SetBodyBudget(budget)
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/{provider}", h)
	return h, mux
}

// TestUnsignedRefusedUnread (docs/http.md): a request without the provider's
// signature headers is answered 401 without its body being read, whatever
// its size.
func TestUnsignedRefusedUnread(t *testing.T) {
	_, mux := newHandler(0)
	for _, size := range []int{10, 8 << 20, 64 << 20} {
		body := &watchedBody{r: strings.NewReader(strings.Repeat("x", size))}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stub", body)
		req.ContentLength = int64(size)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("unsigned %d-byte post: %d, want 401", size, rec.Code)
		}
		if body.read.Load() {
			t.Errorf("unsigned %d-byte post: the body was read", size)
		}
	}
	// With the header, the same body is read (and then judged).
	body := &watchedBody{r: strings.NewReader("changed:u1")}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stub", body)
	req.Header.Set("X-Sig", "ok")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 || !body.read.Load() {
		t.Errorf("signed post: %d, read %v", rec.Code, body.read.Load())
	}
}

// TestBodyBudget (docs/http.md; docs/guarantees.md §12): bodies held at once are bounded; a
// request that does not fit gets 503 with Retry-After, its body unread; the
// budget is given back when requests end.
func TestBodyBudget(t *testing.T) {
	const budget = 1 << 20
	const size = 400 << 10
	h, mux := newHandler(budget)

	// Two posts whose bodies arrive slowly hold 800 KiB of the budget.
	var wg sync.WaitGroup
	writers := make([]*io.PipeWriter, 2)
	codes := make([]int, 2)
	for i := range writers {
		pr, pw := io.Pipe()
		writers[i] = pw
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stub", pr)
		req.ContentLength = size
		req.Header.Set("X-Sig", "ok")
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			codes[i] = rec.Code
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.InFlightBytes() != 2*size {
		if time.Now().After(deadline) {
			t.Fatalf("in flight %d, want %d", h.InFlightBytes(), 2*size)
		}
		time.Sleep(time.Millisecond)
	}

	post := func(length int64, body io.Reader) (*httptest.ResponseRecorder, *watchedBody) {
		wb := &watchedBody{r: body}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stub", wb)
		req.ContentLength = length
		req.Header.Set("X-Sig", "ok")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec, wb
	}
	// A third of the same size does not fit: 503, Retry-After, body unread.
	rec, wb := post(size, strings.NewReader(strings.Repeat("x", size)))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("over the budget: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if wb.read.Load() {
		t.Errorf("over the budget: the body was read")
	}
	// A body of unknown length is counted as it grows: it is refused too.
	rec, _ = post(-1, strings.NewReader(strings.Repeat("x", size)))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("chunked body over the budget: %d, want 503", rec.Code)
	}
	// A small one still fits.
	if rec, _ := post(10, strings.NewReader("changed:u1")); rec.Code != 200 {
		t.Errorf("small post beside the held ones: %d", rec.Code)
	}

	for _, pw := range writers {
		go func() {
			_, _ = pw.Write([]byte("changed:u" + strings.Repeat("1", size-9)))
			pw.Close()
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("held post %d answered %d", i, c)
		}
	}
	if n := h.InFlightBytes(); n != 0 {
		t.Fatalf("budget not given back: %d bytes held", n)
	}
	// Now the big one fits.
	if rec, _ := post(size, strings.NewReader("changed:u"+strings.Repeat("2", size-9))); rec.Code != 200 {
		t.Errorf("after release: %d", rec.Code)
	}
	// Over the per-body limit is still 413.
	if rec, _ := post(-1, strings.NewReader(strings.Repeat("x", webhook.MaxBodyBytes+1))); rec.Code != http.StatusRequestEntityTooLarge && rec.Code != http.StatusServiceUnavailable {
		t.Errorf("chunked body over the limit: %d", rec.Code)
	}
	h.SetBodyBudget(64 << 20)
	if rec, _ := post(-1, strings.NewReader(strings.Repeat("x", webhook.MaxBodyBytes+1))); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit with room in the budget: %d, want 413", rec.Code)
	}
	if n := h.InFlightBytes(); n != 0 {
		t.Fatalf("budget not given back after a 413: %d bytes held", n)
	}
}

// TestTrickledBodyReleased: a body that stops arriving is given up after the
// body read timeout, and its share of the budget is given back.
func TestTrickledBodyReleased(t *testing.T) {
	h, mux := newHandler(1 << 20)
	webhook.SetBodyReadTimeout(h, 200*time.Millisecond)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/stub", pr)
	req.ContentLength = 512 << 10
	req.Header.Set("X-Sig", "ok")
	done := make(chan int, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	_, _ = pw.Write([]byte("changed:")) // then nothing more
	select {
	case code := <-done:
		if code == 200 {
			t.Errorf("a trickled body was accepted")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler still waits for a trickled body")
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.InFlightBytes() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("budget not given back: %d bytes held", h.InFlightBytes())
		}
		time.Sleep(time.Millisecond)
	}
}
