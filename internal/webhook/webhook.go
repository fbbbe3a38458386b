// Package webhook receives providers' webhook deliveries: it verifies them,
// and answers 2xx only once the sync job they cause is committed.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// MaxBodyBytes is the largest webhook body accepted (docs/http.md: at least 4 MiB,
// since a Stack Auth profile_image_url may be a 1 MB data URL).
const MaxBodyBytes = 8 << 20

// DefaultBodyBudget bounds the webhook bodies held in memory at once, across
// all requests (docs/http.md; docs/guarantees.md §12): four bodies of the largest size, or
// thousands of ordinary ones (a few KiB each). A request that cannot get its
// share is answered 503 with Retry-After before its body is read; providers
// retry. Verifying and parsing a body briefly needs about twice its size
// again, so the memory the bodies take stays within a small multiple of
// this.
const DefaultBodyBudget = 32 << 20

// RetryAfterBusy is the Retry-After, in seconds, of a 503 answered when the
// body budget is spent.
const RetryAfterBusy = "2"

// Committer durably enqueues sync jobs; Submit returns once the job for ref
// is committed, or with an error if it could not be.
type Committer interface {
	Submit(ctx context.Context, ref jobs.UserRef) error
}

// Observer is told the outcome of each delivery, for metrics and status.
type Observer interface {
	// Webhook is called once per request. outcome is one of "enqueued",
	// "ignored", "bad_signature", "bad_payload", "too_large", "unavailable",
	// "busy" (the body budget was spent), "not_found", "method_not_allowed".
	Webhook(provider, eventType, outcome string)
}

// Handler serves POST /webhooks/{provider}.
type Handler struct {
	providers map[string]provider.Provider
	committer Committer
	observer  Observer
	logger    *slog.Logger
	budget    *byteBudget
	// bodyTimeout overrides BodyReadTimeout (tests).
	bodyTimeout time.Duration
}

// NewHandler returns a handler for the given providers (keyed by Name).
func NewHandler(providers []provider.Provider, c Committer, obs Observer, logger *slog.Logger) *Handler {
	h := &Handler{providers: map[string]provider.Provider{}, committer: c, observer: obs, logger: logger,
		budget: &byteBudget{max: DefaultBodyBudget}}
	for _, p := range providers {
		h.providers[p.Name()] = p
	}
	return h
}

type nopObserver struct{}

func (nopObserver) Webhook(string, string, string) {}

func (h *Handler) obs() Observer {
	if h.observer == nil {
		return nopObserver{}
	}
	return h.observer
}

// ServeHTTP implements http.Handler. The provider is the last path element.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	if name == "" {
		name = r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	}
	p, ok := h.providers[name]
	if !ok {
		h.obs().Webhook("unknown", "", "not_found")
		writeJSON(w, http.StatusNotFound, "provider not enabled: "+provider.Snippet([]byte(name), 40))
		return
	}
	if r.Method != http.MethodPost {
		h.obs().Webhook(name, "", "method_not_allowed")
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	// Unsigned requests are refused before a byte of their body is read.
	if sc, ok := p.(provider.SignatureChecker); ok && !sc.HasSignatureHeaders(r.Header) {
		h.obs().Webhook(name, "", "bad_signature")
		h.logger.Warn("webhook rejected: no signature headers", "provider", name, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, "missing signature headers")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.obs().Webhook(name, "", "too_large")
		writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
		return
	}
	body, release, err := h.readBody(w, r)
	defer release()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, errBusy) {
			h.obs().Webhook(name, "", "busy")
			w.Header().Set("Retry-After", RetryAfterBusy)
			writeJSON(w, http.StatusServiceUnavailable, "too many webhook bodies in flight; retry later")
			return
		}
		if errors.As(err, &mbe) {
			h.obs().Webhook(name, "", "too_large")
			writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
			return
		}
		h.obs().Webhook(name, "", "bad_payload")
		writeJSON(w, http.StatusBadRequest, "could not read body")
		return
	}
	ev, err := p.ParseWebhook(body, r.Header)
	release() // the body is not needed any more
	switch {
	case errors.Is(err, provider.ErrBadSignature):
		h.obs().Webhook(name, "", "bad_signature")
		h.logger.Warn("webhook rejected: bad signature", "provider", name, "remote", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusUnauthorized, err.Error())
		return
	case err != nil:
		h.obs().Webhook(name, "", "bad_payload")
		h.logger.Warn("webhook rejected: bad payload", "provider", name, "err", err)
		writeJSON(w, http.StatusBadRequest, err.Error())
		return
	}
	evType := eventTypeLabel(ev.Type)
	if ev.Kind == provider.EventIgnored {
		h.obs().Webhook(name, evType, "ignored")
		writeJSON(w, http.StatusOK, "")
		return
	}
	if err := h.committer.Submit(r.Context(), jobs.UserRef{Provider: name, UserID: ev.UserID, Deleted: ev.Kind == provider.EventUserDeleted}); err != nil {
		h.obs().Webhook(name, evType, "unavailable")
		h.logger.Error("webhook not accepted: could not enqueue", "provider", name, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, "database unavailable; retry later")
		return
	}
	h.obs().Webhook(name, evType, "enqueued")
	writeJSON(w, http.StatusOK, "")
}

// eventTypeLabel bounds the event-type label set: user events by name,
// anything else as "other".
func eventTypeLabel(t string) string {
	switch t {
	case "user.created", "user.updated", "user.deleted":
		return t
	}
	return "other"
}

func writeJSON(w http.ResponseWriter, status int, errMsg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if errMsg == "" {
		_, _ = io.WriteString(w, `{"ok":true}`+"\n")
		return
	}
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{errMsg})
	_, _ = w.Write(append(b, '\n'))
}
