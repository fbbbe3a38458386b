package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/lazytx"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// Group commit of sync_user writes (docs/jobs.md, "Group commit"). A sync
// that fetched a user hands the profile to its provider's committer and
// waits; one transaction then, for every job handed in meanwhile, completes
// the job, enqueues the follow-up of a job marked dirty, and writes the
// users in one statement, exactly as a job alone would (Work), so that a
// job's row change and its completion still commit together. A job that is
// no longer running when the batch completes it (rescued, cancelled) writes
// nothing and fails alone; the others commit.
//
// There is no background goroutine: a waiting sync becomes the writer when
// fewer than commitWriters batches are being written, and writes what has
// queued (at most commitBatch jobs, one per user) until its own job is done.

const (
	// commitWriters is how many batches of one provider are written at
	// once: one gathers while the other commits.
	commitWriters = 2
	// commitBatch is the most jobs one transaction completes.
	commitBatch = 128
	// commitTimeout bounds one batch's transaction.
	commitTimeout = 15 * time.Second
)

// syncWrite is one fetched profile waiting for its batch.
type syncWrite struct {
	ctx   context.Context
	job   *river.Job[jobs.SyncUserArgs]
	user  provider.User
	token time.Time
	done  chan syncDone // buffered: the writer never blocks on it
}

// syncDone is a batch's answer for one job.
type syncDone struct {
	outcome string // as for Observer.Synced
	err     error
	// dbErr says err is the database's (counted as "database_error").
	dbErr bool
}

// committer group-commits the writes of one provider's syncs.
type committer struct {
	deps Deps
	b    *Binding

	mu      sync.Mutex
	queue   []*syncWrite
	writing int
	// minBatch, in tests, holds batches until that many jobs queued.
	minBatch int
	// turn wakes a waiting sync to write the queue when a writer leaves
	// work behind.
	turn chan struct{}
}

func newCommitter(d Deps, b *Binding) *committer {
	return &committer{deps: d, b: b, turn: make(chan struct{}, 1)}
}

// write queues w and returns once its batch committed or failed, or ctx
// ended (then w is withdrawn if no batch took it yet; a batch that did
// commits or refuses it as for any job).
func (c *committer) write(ctx context.Context, w *syncWrite) syncDone {
	c.mu.Lock()
	c.queue = append(c.queue, w)
	c.mu.Unlock()
	for {
		if batch := c.lead(); batch != nil {
			c.commit(batch)
		}
		select {
		case d := <-w.done:
			return d
		default:
		}
		select {
		case d := <-w.done:
			return d
		case <-c.turn:
		case <-ctx.Done():
			c.mu.Lock()
			if i := slices.Index(c.queue, w); i >= 0 {
				c.queue = slices.Delete(c.queue, i, i+1)
			}
			c.mu.Unlock()
			select {
			case d := <-w.done:
				return d
			default:
			}
			return syncDone{err: fmt.Errorf("sync user %s: %w", w.job.Args.UserID, context.Cause(ctx))}
		}
	}
}

// lead takes the next batch if fewer than commitWriters are being written:
// the queue's first jobs, in order, one per user (a second job of the same
// user waits for the next batch: one statement writes each user once).
func (c *committer) lead() []*syncWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing >= commitWriters || len(c.queue) == 0 || len(c.queue) < c.minBatch {
		return nil
	}
	c.writing++
	seen := map[string]bool{}
	var batch []*syncWrite
	rest := c.queue[:0]
	for _, w := range c.queue {
		if len(batch) < commitBatch && !seen[w.user.ID] {
			seen[w.user.ID] = true
			batch = append(batch, w)
			continue
		}
		rest = append(rest, w)
	}
	clear(c.queue[len(rest):])
	c.queue = rest
	return batch
}

// commit writes one batch in one transaction and answers each job, then
// gives up its writer's place, waking a waiting sync if work is left (also
// if the batch panicked: its jobs are answered with an error).
func (c *committer) commit(batch []*syncWrite) {
	defer func() {
		if r := recover(); r != nil {
			for _, w := range batch {
				select {
				case w.done <- syncDone{err: fmt.Errorf("sync user %s: group commit panicked: %v", w.job.Args.UserID, r)}:
				default:
				}
			}
			defer panic(r)
		}
		c.mu.Lock()
		c.writing--
		left := len(c.queue) > 0
		c.mu.Unlock()
		if left {
			select {
			case c.turn <- struct{}{}:
			default:
			}
		}
	}()
	answers, err := c.commitTx(batch)
	for i, w := range batch {
		if err != nil {
			w.done <- syncDone{err: fmt.Errorf("sync user %s: %w", w.job.Args.UserID, err), dbErr: true}
			continue
		}
		w.done <- answers[i]
	}
}

func (c *committer) commitTx(batch []*syncWrite) ([]syncDone, error) {
	// The batch's transaction outlives no job's wait by much, but is not
	// cut short by the one job whose context ends first.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), commitTimeout)
	defer cancel()
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return nil, err
	}
	schemas := c.b.Store.Schemas()
	// Jobs in user order, as webhook batches lock them.
	slices.SortFunc(batch, func(a, b *syncWrite) int { return strings.Compare(a.user.ID, b.user.ID) })

	tx, release, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer tx.Rollback(context.WithoutCancel(ctx))
	ids := make([]int64, len(batch))
	for i, w := range batch {
		ids[i] = w.job.ID
	}
	if len(batch) > 1 {
		if err := store.RiverJobs(schemas.River).LockInUserOrder(ctx, tx, ids); err != nil {
			return nil, err
		}
	}
	done, err := completeMany(ctx, tx, client, schemas.River, ids)
	if err != nil {
		return nil, err
	}

	answers := make([]syncDone, len(batch))
	var follow []jobs.UserRef
	var users []provider.User
	var tokens []time.Time
	deleted := map[string]bool{}
	for i, w := range batch {
		row := done[w.job.ID]
		if row == nil || row.State != rivertype.JobStateCompleted {
			state := rivertype.JobState("gone")
			if row != nil {
				state = row.State
			}
			answers[i] = syncDone{err: fmt.Errorf("job %d is no longer running (state %s): not committing", w.job.ID, state)}
			continue
		}
		// Followed up as Work does: an event arrived while the job ran.
		del := jobs.LastEventWasDeletion(row.Metadata)
		if jobs.DirtySince(row.Metadata, w.token) {
			follow = append(follow, jobs.UserRef{Provider: w.job.Args.Provider, UserID: w.job.Args.UserID, Deleted: del})
		}
		deleted[w.user.ID] = del
		users = append(users, w.user)
		tokens = append(tokens, w.token)
	}
	if len(users) == 0 {
		return answers, nil // nothing completed: nothing to commit
	}
	// Before the users_sync write, which locks the users' state rows (the
	// lock order of Work).
	if len(follow) > 0 {
		if _, err := jobs.EnqueueSyncs(ctx, tx, client, schemas.River, follow); err != nil {
			return nil, fmt.Errorf("re-enqueue: %w", err)
		}
	}
	// Each of these syncs found its user: the deletion breaker's count
	// starts again.
	if err := c.b.Store.ResetUnexpectedNotFound(ctx, tx); err != nil {
		return nil, err
	}
	res, ops, err := c.b.Store.UpsertFetched(ctx, tx, users, tokens)
	if err != nil {
		return nil, err
	}
	if len(res.Resync) > 0 {
		var plain, afterDeletion []string
		for _, id := range res.Resync {
			if deleted[id] {
				afterDeletion = append(afterDeletion, id)
			} else {
				plain = append(plain, id)
			}
		}
		if err := jobs.EnqueueResyncs(ctx, tx, client, c.b.Provider.Name(), plain); err != nil {
			return nil, err
		}
		if err := jobs.EnqueueResyncsAfterDeletion(ctx, tx, client, c.b.Provider.Name(), afterDeletion); err != nil {
			return nil, err
		}
	}
	// Membership objects that embed a changed user changed with it: their
	// organizations are read again (as Work does for a lone job).
	if c.b.Orgs != nil {
		for _, u := range users {
			if op := ops[u.ID]; op == "insert" || op == "update" {
				if err := refreshUserMemberships(ctx, tx, c.b, u.ID); err != nil {
					return nil, fmt.Errorf("refresh memberships of %s: %w", u.ID, err)
				}
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	for i, w := range batch {
		if answers[i].err != nil {
			continue
		}
		switch ops[w.user.ID] {
		case "insert", "update":
			answers[i].outcome = "changed"
		case "stale":
			answers[i].outcome = "stale"
		default:
			answers[i].outcome = "unchanged"
		}
	}
	return answers, nil
}

// pooled is a DB that hands out connections: a *pgxpool.Pool.
type pooled interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// begin opens a batch's transaction and returns what to call once it ended.
// On a pool, BEGIN and the transaction's settings go out with its first
// statement and River's notifications of follow-ups with its COMMIT
// (package lazytx); a DB that is itself a transaction (a test's) begins a
// savepoint. A lost commit is harmless: the jobs stay running and are
// rescued and re-run, so the transaction need not wait for its WAL flush.
// Its statements take the batch's ids in arrays: each is planned for them.
func (c *committer) begin(ctx context.Context) (pgx.Tx, func(), error) {
	settings := store.AsyncCommitCustomPlans()
	if p, ok := c.deps.DB.(pooled); ok {
		conn, err := p.Acquire(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("acquire: %w", err)
		}
		// A connection released in a transaction or broken is closed by
		// the pool, not reused.
		return lazytx.New(conn.Conn(), lazytx.Options{Prelude: settings, Defer: lazytx.RiverNotify}), conn.Release, nil
	}
	tx, err := c.deps.DB.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	for _, s := range settings {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, nil, fmt.Errorf("begin: %s: %w", s, err)
		}
	}
	return tx, func() {}, nil
}

// completeMany completes the jobs ids in tx with one statement, as
// river.JobCompleteTx does for one, and returns the rows by id: a job that
// was no longer running keeps its state.
func completeMany(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], riverSchema string, ids []int64) (map[int64]*rivertype.JobRow, error) {
	n := len(ids)
	p := &riverdriver.JobSetStateIfRunningManyParams{
		ID: make([]int64, n), Attempt: make([]*int, n), ErrData: make([][]byte, n), FinalizedAt: make([]*time.Time, n),
		MetadataDoMerge: make([]bool, n), MetadataUpdates: make([][]byte, n), ScheduledAt: make([]*time.Time, n),
		State: make([]rivertype.JobState, n), Schema: riverSchema,
	}
	now := time.Now()
	for i, id := range ids {
		s := riverdriver.JobSetStateCompleted(id, now, nil)
		p.ID[i], p.Attempt[i], p.ErrData[i], p.FinalizedAt[i] = s.ID, s.Attempt, s.ErrData, s.FinalizedAt
		p.ScheduledAt[i], p.State[i] = s.ScheduledAt, s.State
	}
	rows, err := client.Driver().UnwrapExecutor(tx).JobSetStateIfRunningMany(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("complete %d jobs: %w", n, err)
	}
	out := make(map[int64]*rivertype.JobRow, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}
