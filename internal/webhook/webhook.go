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
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/usersync/usersync/internal/lazytx"
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
	// organizations: organization and membership events enqueue
	// sync_organization jobs instead of being ignored.
	organizations bool
}

// SyncOrganizations makes organization and membership events enqueue a
// sync_organization job of their organization (USERSYNC_ORGANIZATIONS=on)
// instead of being acknowledged and ignored. It returns h.
func (h *Handler) SyncOrganizations(on bool) *Handler {
	h.organizations = on
	return h
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
	// Organization events are acknowledged and ignored unless organizations
	// are synced (docs/data-model.md, "Organizations").
	if ev.Kind == provider.EventIgnored || (ev.Kind.IsOrganization() && (!h.organizations || ev.OrganizationID == "")) {
		h.obs().Webhook(name, evType, "ignored")
		writeJSON(w, http.StatusOK, "")
		return
	}
	ref := jobs.UserRef{Provider: name, UserID: ev.UserID, Deleted: ev.Kind == provider.EventUserDeleted}
	if ev.Kind.IsOrganization() {
		// Every organization and membership event asks for the whole
		// organization to be read again: fetch, don't trust payloads.
		ref = jobs.UserRef{Provider: name, OrganizationID: ev.OrganizationID, Deleted: ev.Kind == provider.EventOrganizationDeleted}
	}
	if err := h.committer.Submit(r.Context(), ref); err != nil {
		h.obs().Webhook(name, evType, "unavailable")
		h.logger.Error("webhook not accepted: could not enqueue", "provider", name, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, "database unavailable; retry later")
		return
	}
	h.obs().Webhook(name, evType, "enqueued")
	writeJSON(w, http.StatusOK, "")
}

// eventTypeLabel bounds the event-type label set: user, organization and
// membership events by name, anything else as "other".
func eventTypeLabel(t string) string {
	switch t {
	case "user.created", "user.updated", "user.deleted",
		"team.created", "team.updated", "team.deleted",
		"team_membership.created", "team_membership.deleted",
		"organization.created", "organization.updated", "organization.deleted",
		"organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted",
		"organization_membership.created", "organization_membership.updated", "organization_membership.deleted":
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

// The group committer: what answers a delivery once its job is committed.

// Acquirer hands out pool connections: a *pgxpool.Pool.
type Acquirer interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// Batcher is a group committer: concurrent deliveries are gathered into one
// transaction (one fsync) that enqueues all their jobs, and every waiting
// request is answered once it commits, or told it failed.
type Batcher struct {
	db          Acquirer
	ins         jobs.Inserter
	riverSchema string // of River's tables, where ins inserts
	logger      *slog.Logger
	reqs        chan *pending
	maxBatch    int
	wg          sync.WaitGroup
	closeOnce   sync.Once
	closed      chan struct{}
	// sending is read-held by every Submit while it hands its request to
	// the writers, and write-held by Close while it closes: a request is
	// either queued before the writers start draining for the last time,
	// or refused with ErrClosed; never queued for writers that are gone.
	sending sync.RWMutex
	// beforeSend, when set (by tests), runs as a Submit is about to hand
	// its request over.
	beforeSend func()
}

type pending struct {
	ref  jobs.UserRef
	done chan error
}

// commitTimeout bounds one batch transaction, so a stuck database turns
// into 503 answers rather than hung requests.
const commitTimeout = 10 * time.Second

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("webhook receiver is shutting down")

// NewBatcher starts writers goroutines that commit batches of at most
// maxBatch jobs through ins, whose River tables are in riverSchema, each on
// a connection from db.
func NewBatcher(db Acquirer, ins jobs.Inserter, riverSchema string, writers, maxBatch int, logger *slog.Logger) *Batcher {
	b := &Batcher{db: db, ins: ins, riverSchema: riverSchema, logger: logger,
		reqs: make(chan *pending, maxBatch*writers), maxBatch: maxBatch, closed: make(chan struct{})}
	for range writers {
		b.wg.Add(1)
		go b.writer()
	}
	return b
}

// Submit enqueues a sync_user job for ref (a sync_organization job when
// ref names an organization) and returns once it is committed.
func (b *Batcher) Submit(ctx context.Context, ref jobs.UserRef) error {
	p := &pending{ref: ref, done: make(chan error, 1)}
	if err := b.send(ctx, p); err != nil {
		return err
	}
	// Wait for the outcome even if the client goes away: the answer is only
	// meaningful once the batch is decided.
	return <-p.done
}

func (b *Batcher) send(ctx context.Context, p *pending) error {
	if b.beforeSend != nil {
		b.beforeSend()
	}
	b.sending.RLock()
	defer b.sending.RUnlock()
	select {
	case <-b.closed:
		return ErrClosed
	default:
	}
	// The writers run until closed, which cannot happen while this holds
	// the read lock, so the send completes unless ctx ends.
	select {
	case b.reqs <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting deliveries (Submit then returns ErrClosed), lets the
// writers finish what is queued, and waits for them. Call it after the HTTP
// server has shut down.
func (b *Batcher) Close() {
	b.closeOnce.Do(func() {
		b.sending.Lock()
		close(b.closed)
		b.sending.Unlock()
	})
	b.wg.Wait()
}

// Batches fill up by lingering: under load (the writer's previous batch
// held at least lingerAfter deliveries) a batch smaller than lingerBelow
// waits up to lingerMax for more before it commits. At a trickle of
// deliveries batches stay single and never wait; under a flood, fewer and
// larger transactions cost less per delivery than many small ones.
const (
	lingerMax   = 500 * time.Microsecond
	lingerBelow = 24
	lingerAfter = 4
)

func (b *Batcher) writer() {
	defer b.wg.Done()
	batch := make([]*pending, 0, b.maxBatch)
	linger := time.NewTimer(lingerMax)
	defer linger.Stop()
	prev := 0
	for {
		var first *pending
		select {
		case first = <-b.reqs:
		case <-b.closed:
			// Drain what was queued before Close.
			select {
			case first = <-b.reqs:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case p := <-b.reqs:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		if prev >= lingerAfter && len(batch) < lingerBelow {
			linger.Reset(lingerMax)
		wait:
			for len(batch) < lingerBelow {
				select {
				case p := <-b.reqs:
					batch = append(batch, p)
				case <-linger.C:
					break wait
				}
			}
		}
		prev = len(batch)
		err := b.commit(batch)
		for _, p := range batch {
			p.done <- err
		}
	}
}

func (b *Batcher) commit(batch []*pending) error {
	refs := make([]jobs.UserRef, len(batch))
	for i, p := range batch {
		refs[i] = p.ref
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = b.commitOnce(refs); err == nil || !retryable(err) {
			break
		}
	}
	if err != nil {
		b.logger.Error("could not commit webhook batch", "size", len(batch), "err", err)
	}
	return err
}

// commitOnce enqueues refs' jobs in one transaction and commits it. The
// transaction begins with its first statement (package lazytx), once every
// delivery of the batch has arrived, and not earlier, say with the previous
// batch's commit: its start time (now()) is the time the batch's events are
// recorded at (the jobs' created_at, the dirty and event marks), which must
// not precede any of the batch's deliveries, or a running sync could take
// an event that arrived during its fetch for one that came before it.
// River's insert notification goes out with the COMMIT: a batch costs two
// round trips.
func (b *Batcher) commitOnce(refs []jobs.UserRef) error {
	// Not the request's context: a client hanging up must not roll back a
	// batch other requests depend on.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	conn, err := b.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	// A connection released in a transaction or broken is closed by the
	// pool, not reused.
	defer conn.Release()
	tx := lazytx.New(conn.Conn(), lazytx.Options{Defer: lazytx.RiverNotify})
	if _, err := jobs.EnqueueRefs(ctx, tx, b.ins, b.riverSchema, refs); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
