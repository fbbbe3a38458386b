package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// A large backlog of syncs is served by listing (docs/limits.md, "A large
// backlog"): when the syncs waiting for one provider would cost at least
// backlogFactor times the requests of listing all its users, a backfill run
// starts. Its pages go before the queued lookups (within the same request
// budget), and each waiting sync whose user a page listed after the sync's
// event arrived then completes without a request (skip-fetch). Only syncs
// created after the newest run started count: the others' users were
// listed after their event (or are being listed), and skip already.
const (
	// backlogCheckEvery is how often each process looks at the queues.
	backlogCheckEvery = 2 * time.Second
	// backlogFactor: the waiting syncs' lookups must cost at least this many
	// times the listing's requests (a listing also writes every user, and
	// the syncs already running still look theirs up).
	backlogFactor = 2
	// backlogMin: fewer waiting syncs never start a listing.
	backlogMin = 200
)

// listingCost is a provider whose list page and lookup sizes are known
// (every built-in client).
type listingCost interface {
	UsersPerPage() int
	UsersPerLookup() int
}

// backlogThreshold is how many waiting syncs make listing users (their
// last complete listing counted listed) worth it for p: at least
// backlogFactor times the listing's requests in lookups, and backlogMin.
func backlogThreshold(p listingCost, listed int64) int {
	perPage, perLookup := max(1, p.UsersPerPage()), max(1, p.UsersPerLookup())
	pages := max(1, (int(listed)+perPage-1)/perPage)
	return max(backlogMin, backlogFactor*pages*perLookup)
}

// watchBacklog checks every provider's sync queue every backlogCheckEvery
// until ctx ends.
func (e *Engine) watchBacklog(ctx context.Context) {
	t := time.NewTicker(backlogCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range e.providers {
			if err := e.checkBacklog(ctx, p); err != nil && ctx.Err() == nil {
				e.logger.Debug("backlog check failed", "provider", p.Name(), "err", err)
			}
		}
	}
}

// checkBacklog starts a backfill run of p (or joins the one waiting) when
// its syncs waiting since its newest run started reach backlogThreshold of
// its last complete listing. With no complete listing yet, what a listing
// costs is unknown and none starts; nor does one while a run is under way
// or held (its deletions wait for an operator), or a backfill job waits.
func (e *Engine) checkBacklog(ctx context.Context, p provider.Provider) error {
	cost, ok := p.(listingCost)
	if !ok {
		return nil
	}
	runs := e.store.Runs
	last, err := runs.Latest(ctx, e.pool, p.Name(), store.RunCompleted)
	if err != nil || last == nil {
		return err
	}
	newest, err := runs.Newest(ctx, e.pool, p.Name())
	if err != nil || newest == nil || newest.Status == store.RunRunning || newest.Status == store.RunHeld {
		return err
	}
	need := backlogThreshold(cost, last.Listed)
	rj := store.RiverJobs(e.cfg.RiverSchema)
	waiting, err := rj.CountWaiting(ctx, e.pool, jobs.SyncQueue(p.Name()), newest.StartedAt, need)
	if err != nil || waiting < need {
		return err
	}
	// A backfill job waiting or running (a run's first page records the run
	// only when it commits) serves the backlog already.
	if busy, err := rj.QueueBusy(ctx, e.pool, jobs.BackfillQueue(p.Name())); err != nil || busy {
		return err
	}
	id, joined, err := e.forceBackfill(ctx, p.Name())
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if joined {
		level = slog.LevelDebug // a backfill was waiting already
	}
	e.logger.Log(ctx, level, "a backlog of syncs is served faster by listing: backfill run enqueued", "provider", p.Name(),
		"waiting_syncs_at_least", waiting, "users_last_listed", last.Listed, "job_id", id, "joined", joined)
	return nil
}
