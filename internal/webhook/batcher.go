package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/usersync/usersync/jobs"
)

// Batcher is a group committer: concurrent deliveries are gathered into one
// transaction (one fsync) that enqueues all their jobs, and every waiting
// request is answered once it commits, or told it failed.
type Batcher struct {
	db interface {
		Begin(context.Context) (pgx.Tx, error)
	}
	ins            jobs.Inserter
	internalSchema string
	logger         *slog.Logger
	reqs           chan *pending
	maxBatch       int
	wg             sync.WaitGroup
	closeOnce      sync.Once
	closed         chan struct{}
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
// maxBatch jobs.
func NewBatcher(db interface {
	Begin(context.Context) (pgx.Tx, error)
}, ins jobs.Inserter, internalSchema string, writers, maxBatch int, logger *slog.Logger) *Batcher {
	b := &Batcher{db: db, ins: ins, internalSchema: internalSchema, logger: logger,
		reqs: make(chan *pending, maxBatch*writers), maxBatch: maxBatch, closed: make(chan struct{})}
	for range writers {
		b.wg.Add(1)
		go b.writer()
	}
	return b
}

// Submit enqueues a sync_user job for ref and returns once it is committed.
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

func (b *Batcher) writer() {
	defer b.wg.Done()
	batch := make([]*pending, 0, b.maxBatch)
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

func (b *Batcher) commitOnce(refs []jobs.UserRef) error {
	// Not the request's context: a client hanging up must not roll back a
	// batch other requests depend on.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := jobs.EnqueueSyncs(ctx, tx, b.ins, b.internalSchema, refs); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
