package webhook

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// errBusy: the body budget cannot take this request's body now.
var errBusy = errors.New("webhook body budget spent")

// byteBudget counts the bytes of webhook bodies held in memory; it never
// waits: a request that does not fit is refused.
type byteBudget struct {
	mu        sync.Mutex
	used, max int64
}

func (b *byteBudget) tryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// InFlightBytes returns the bytes of webhook bodies currently held.
func (h *Handler) InFlightBytes() int64 {
	h.budget.mu.Lock()
	defer h.budget.mu.Unlock()
	return h.budget.used
}

// SetBodyBudget sets how many bytes of webhook bodies may be held in memory
// at once, across all requests (default [DefaultBodyBudget]). Call it before
// serving.
func (h *Handler) SetBodyBudget(n int64) { h.budget = &byteBudget{max: n} }

// chunk is the reservation step for a body of unknown length.
const chunk = 64 << 10

// BodyReadTimeout is how long a webhook body may take to arrive once its
// headers are in: a sender that trickles a body cannot hold its share of the
// body budget for longer.
const BodyReadTimeout = 15 * time.Second

// readBody reads the request body (at most MaxBodyBytes) within the budget.
// A body of announced length reserves that length before anything is read;
// one of unknown length (chunked) reserves as it grows. The returned release
// gives the reservation back once the body is no longer needed; it is never
// nil. The error is errBusy when the budget is spent, or a read error (an
// *http.MaxBytesError when the body is over the limit).
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	var held int64
	release := func() {
		if held > 0 {
			h.budget.release(held)
			held = 0
		}
	}
	// Not every ResponseWriter supports deadlines (test recorders); the
	// server's own ReadTimeout still applies then.
	timeout := h.bodyTimeout
	if timeout <= 0 {
		timeout = BodyReadTimeout
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	rd := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if n := r.ContentLength; n >= 0 {
		if !h.budget.tryAcquire(n) {
			return nil, release, errBusy
		}
		held = n
		buf := make([]byte, n)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, release, err
		}
		return buf, release, nil
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			grow := max(int64(cap(buf)), chunk)
			if int64(cap(buf))+grow > MaxBodyBytes+1 {
				grow = MaxBodyBytes + 1 - int64(cap(buf))
			}
			if !h.budget.tryAcquire(grow) {
				return nil, release, errBusy
			}
			held += grow
			nb := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(nb, buf)
			buf = nb
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, release, nil
		}
		if err != nil {
			return nil, release, err
		}
	}
}
