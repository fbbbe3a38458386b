package worker

import (
	"context"
	"slices"
	"sync"
	"time"
)

// fetchedAtLoader reads user_state.fetched_at for the skip-fetch check of
// many concurrent syncs of one provider in one statement, as the group
// committer writes them: a waiting sync reads for every sync queued when
// fewer than loaderReaders reads are running. A later read is as good as an
// earlier one (fetched_at only grows, and every value read is committed).
type fetchedAtLoader struct {
	b  *Binding
	db DB

	mu      sync.Mutex
	queue   []*fetchedAtReq
	reading int
	turn    chan struct{}
}

const (
	loaderReaders = 2
	loaderBatch   = 1000
)

type fetchedAtReq struct {
	userID string
	done   chan fetchedAtAns // buffered
}

type fetchedAtAns struct {
	at  time.Time
	ok  bool
	err error
}

func newFetchedAtLoader(db DB, b *Binding) *fetchedAtLoader {
	return &fetchedAtLoader{b: b, db: db, turn: make(chan struct{}, 1)}
}

// fetchedAt returns the user's fetched_at (ok false without state).
func (l *fetchedAtLoader) fetchedAt(ctx context.Context, userID string) (time.Time, bool, error) {
	r := &fetchedAtReq{userID: userID, done: make(chan fetchedAtAns, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, r)
	l.mu.Unlock()
	for {
		if batch := l.lead(); batch != nil {
			l.read(ctx, batch)
		}
		select {
		case a := <-r.done:
			return a.at, a.ok, a.err
		default:
		}
		select {
		case a := <-r.done:
			return a.at, a.ok, a.err
		case <-l.turn:
		case <-ctx.Done():
			l.mu.Lock()
			if i := slices.Index(l.queue, r); i >= 0 {
				l.queue = slices.Delete(l.queue, i, i+1)
			}
			l.mu.Unlock()
			return time.Time{}, false, context.Cause(ctx)
		}
	}
}

func (l *fetchedAtLoader) lead() []*fetchedAtReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reading >= loaderReaders || len(l.queue) == 0 {
		return nil
	}
	l.reading++
	n := min(len(l.queue), loaderBatch)
	batch := slices.Clone(l.queue[:n])
	l.queue = slices.Delete(l.queue, 0, n)
	return batch
}

// read answers batch with one statement, then gives up its reader's place,
// waking a waiting sync if work is left.
func (l *fetchedAtLoader) read(ctx context.Context, batch []*fetchedAtReq) {
	defer func() {
		l.mu.Lock()
		l.reading--
		left := len(l.queue) > 0
		l.mu.Unlock()
		if left {
			select {
			case l.turn <- struct{}{}:
			default:
			}
		}
	}()
	ids := make([]string, len(batch))
	for i, r := range batch {
		ids[i] = r.userID
	}
	// Not cut short by the one sync whose context ends first.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	got, err := l.b.Store.FetchedAtMany(ctx, l.db, ids)
	for _, r := range batch {
		at, ok := got[r.userID]
		r.done <- fetchedAtAns{at: at, ok: ok, err: err}
	}
}
