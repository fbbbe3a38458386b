package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	clerksdk "github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/usersync/usersync/provider"
)

// Batched lookups (docs/providers.md, "Clerk: batched lookups").
//
// Clerk's list endpoint looks up many users in one request
// (GET /users?user_id=a&user_id=b..., up to MaxBatch ids). Concurrent
// FetchUser calls of one Client share such requests through a loader, in the
// manner of a data loader: FetchUser queues its id and waits; a sender takes
// up to MaxBatch distinct queued ids and looks them up in one request. Each
// caller keeps its own context and gets its own result or error, so each
// River job stays independent.
//
//   - No artificial delay. When a sending slot is free, FetchUser takes it
//     and sends its id at once, alone, from its own goroutine and under its
//     own context: the single-user GET /users/{id} it always was. Ids queue
//     up only while every slot is busy; the slot that frees up first then
//     sends all of them (up to MaxBatch) in one request, from a sender
//     goroutine.
//   - At most batchesInFlight requests at a time per Client. Few slots is
//     what makes batches: when the request budget makes requests wait
//     before they are sent (the rate limiter in front of the transport), a
//     waiting request holds its slot, so the ids that arrive meanwhile wait
//     in the queue and leave together in the next request instead of each
//     taking a request (and a token) of its own. Two slots rather than one
//     let a lone lookup go out while a large batch is still on the wire.
//   - A caller joins only an id still queued, never a request already sent:
//     an answer to a request sent before the caller asked could predate the
//     event the caller is syncing (docs/guarantees.md §3, no stale overwrite).
//     Callers of the same queued id share one lookup.
//   - A user in the answer is derived exactly as FetchUser derives it. An id
//     absent from the answer is never taken as deleted: its caller confirms
//     with the single-user GET, whose own-format 404 alone means the user is
//     gone. The same single GET is used when the list answer is unusable
//     for a lookup (too large, or a 4xx other than 401/403/429: a server
//     that does not offer the filter).
//   - A failed batch (429, 5xx, 401/403, transport error) fails every caller
//     waiting on it with that error.
//   - A caller whose context ends returns at once with the context's error;
//     the request goes on for the others, and is cancelled only when no
//     caller is left waiting for any of its ids. A sender goroutine's
//     requests run under a context of their own (the HTTP client's timeout
//     bounds them).
//   - Sender goroutines exist only while there is work: when the queue is
//     empty a sender ends, so an idle Client holds no goroutine and needs no
//     Close.

// MaxBatch is the most user ids one batched lookup carries: Clerk's list
// endpoint accepts up to 100 user_id values.
const MaxBatch = 100

// batchesInFlight is how many lookups of one Client may be on the wire (or
// waiting for the request budget) at once; see the comment above.
const batchesInFlight = 2

// errLookAlone says a batched lookup's answer cannot be used: every caller
// looks its user up alone.
var errLookAlone = errors.New("look up alone")

// loader coalesces concurrent lookups into batched requests.
type loader struct {
	// one looks up a single user (GET /users/{id}); its error is final.
	one func(ctx context.Context, id string) (provider.User, error)
	// many looks up several users in one request. It returns the users it
	// found (ids absent from the map are confirmed by one), or an error
	// for all of them; errLookAlone sends every id to one.
	many func(ctx context.Context, ids []string) (map[string]provider.User, error)

	maxBatch, maxInFlight int

	mu       sync.Mutex
	queue    []*call          // queued calls in arrival order (abandoned ones are skipped)
	pending  map[string]*call // queued, not yet sent, by id
	inFlight int              // running senders
}

// call is one id's lookup, shared by the callers that asked for it while it
// was queued.
type call struct {
	id   string
	done chan struct{} // closed when the fields below are set

	// Set before done is closed.
	user  provider.User
	err   error
	alone bool // look up with the single-user GET (absent or unusable answer)

	// Guarded by loader.mu.
	waiters int
	batch   *batch // nil while queued
}

// batch is one request's worth of calls.
type batch struct {
	calls  []*call
	live   int // calls that still have a waiter; guarded by loader.mu
	ctx    context.Context
	cancel context.CancelFunc
}

func newLoader(one func(context.Context, string) (provider.User, error),
	many func(context.Context, []string) (map[string]provider.User, error)) *loader {
	return &loader{one: one, many: many, maxBatch: MaxBatch, maxInFlight: batchesInFlight, pending: map[string]*call{}}
}

// load returns the user with this id, sharing a request with concurrent
// loads. The id has been validated.
func (l *loader) load(ctx context.Context, id string) (provider.User, error) {
	if err := ctx.Err(); err != nil {
		return provider.User{}, fmt.Errorf("clerk: fetch user %s: %w", id, err)
	}
	c, b := l.enqueue(id)
	if b != nil {
		// A slot was free, so the queue held only this id: the caller
		// sends it itself, alone, under its own context (nobody can join a
		// sent lookup), as FetchUser did before batching; then the slot
		// goes to whatever queued meanwhile.
		u, err := l.one(ctx, id)
		l.next(b)
		return u, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		select {
		case <-c.done:
		default:
			l.leave(c)
			return provider.User{}, fmt.Errorf("clerk: fetch user %s: %w", id, ctx.Err())
		}
	}
	if c.alone {
		return l.one(ctx, id)
	}
	if c.err != nil {
		return provider.User{}, c.err
	}
	return cloneUser(c.user), nil
}

// enqueue queues id (or joins its queued call). If a slot is free it takes
// the slot and returns the batch the caller is to send: by the invariant
// below, just this call. Invariant: the queue holds live calls only while
// every slot is busy.
func (l *loader) enqueue(id string) (*call, *batch) {
	l.mu.Lock()
	c := l.pending[id]
	if c == nil {
		c = &call{id: id, done: make(chan struct{})}
		l.pending[id] = c
		l.queue = append(l.queue, c)
	}
	c.waiters++
	var b *batch
	if l.inFlight < l.maxInFlight {
		b = l.takeLocked()
		if b != nil {
			l.inFlight++
		}
	}
	l.mu.Unlock()
	if b != nil && (len(b.calls) != 1 || b.calls[0] != c) {
		go l.run(b) // not reached while the invariant holds
		b = nil
	}
	return c, b
}

// leave is called by a caller that stops waiting for c.
func (l *loader) leave(c *call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.waiters--
	if c.waiters > 0 {
		return
	}
	if c.batch == nil {
		// Still queued: drop it (the sender skips it).
		if l.pending[c.id] == c {
			delete(l.pending, c.id)
		}
		return
	}
	c.batch.live--
	if c.batch.live == 0 {
		c.batch.cancel() // nobody is left to read the answer
	}
}

// takeLocked takes up to maxBatch queued calls that still have a waiter.
func (l *loader) takeLocked() *batch {
	var calls []*call
	n := 0
	for n < len(l.queue) && len(calls) < l.maxBatch {
		c := l.queue[n]
		n++
		if c.waiters == 0 {
			continue
		}
		delete(l.pending, c.id)
		calls = append(calls, c)
	}
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	if len(l.queue) == 0 {
		l.queue = nil
	}
	if len(calls) == 0 {
		return nil
	}
	b := &batch{calls: calls, live: len(calls)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for _, c := range calls {
		c.batch = b
	}
	return b
}

// run sends b, then the batches queued meanwhile, and ends when the queue
// is empty.
func (l *loader) run(b *batch) {
	for b != nil {
		l.send(b)
		b = l.take(b)
	}
}

// take ends done, whose slot then sends the next batch: it returns that
// batch, or nil (and frees the slot) when nothing is queued.
func (l *loader) take(done *batch) *batch {
	done.cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.takeLocked()
	if b == nil {
		l.inFlight--
	}
	return b
}

// next ends a batch its caller sent, handing the slot to a sender
// goroutine if ids queued meanwhile.
func (l *loader) next(done *batch) {
	if b := l.take(done); b != nil {
		go l.run(b)
	}
}

// send looks up b's ids and completes its calls.
func (l *loader) send(b *batch) {
	if len(b.calls) == 1 {
		c := b.calls[0]
		c.user, c.err = l.one(b.ctx, c.id)
		close(c.done)
		return
	}
	ids := make([]string, len(b.calls))
	for i, c := range b.calls {
		ids[i] = c.id
	}
	found, err := l.many(b.ctx, ids)
	for _, c := range b.calls {
		switch {
		case errors.Is(err, errLookAlone):
			c.alone = true
		case err != nil:
			c.err = fmt.Errorf("clerk: fetch user %s: look up %d users at once: %w", c.id, len(ids), err)
		default:
			u, ok := found[c.id]
			c.user, c.alone = u, !ok
		}
		close(c.done)
	}
}

// idle reports whether the loader has no queued call and no running sender
// (for tests).
func (l *loader) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight == 0 && len(l.pending) == 0
}

// queued returns how many ids wait to be sent (for tests).
func (l *loader) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// cloneUser copies u so that callers sharing one lookup share no memory.
func cloneUser(u provider.User) provider.User {
	if u.Name != nil {
		s := *u.Name
		u.Name = &s
	}
	if u.Email != nil {
		s := *u.Email
		u.Email = &s
	}
	if u.CreatedAt != nil {
		t := *u.CreatedAt
		u.CreatedAt = &t
	}
	if u.UpdatedAt != nil {
		t := *u.UpdatedAt
		u.UpdatedAt = &t
	}
	u.Raw = append([]byte(nil), u.Raw...)
	return u
}

// fetchMany looks up several users with one GET /users?user_id=...
// (limit = the number of ids). A user in the answer is kept only if it
// decodes, is no larger than a single-user answer may be, and carries
// exactly one of the requested ids, once; every other id is left to the
// single-user GET, so the result for each id is what FetchUser alone would
// give. An answer too large for a list page, or a 4xx other than 401, 403
// and 429, gives errLookAlone.
func (c *Client) fetchMany(ctx context.Context, ids []string) (map[string]provider.User, error) {
	params := &user.ListParams{UserIDs: ids}
	params.Limit = clerksdk.Int64(int64(len(ids)))
	req := clerksdk.NewAPIRequest(http.MethodGet, "/users")
	req.SetParams(params)
	var raw rawPage
	ctx, rec := withRecorder(ctx)
	if err := c.backend.Call(ctx, req, &raw); err != nil {
		err = classify(err, rec, false)
		var se *provider.StatusError
		if errors.Is(err, provider.ErrResponseTooLarge) ||
			errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode <= 499 {
			return nil, errLookAlone
		}
		return nil, err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	found := make(map[string]provider.User, len(ids))
	twice := map[string]bool{}
	for _, item := range raw.items {
		if len(item) > provider.MaxUserResponseBytes {
			continue
		}
		u, err := userFromRaw(item)
		if err != nil || !want[u.ID] {
			continue
		}
		if _, dup := found[u.ID]; dup || twice[u.ID] {
			delete(found, u.ID)
			twice[u.ID] = true
			continue
		}
		found[u.ID] = u
	}
	return found, nil
}
