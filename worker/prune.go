package worker

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/usersync/usersync/jobs"
)

// PruneUserStateWorker works prune_user_state jobs: it removes the
// tombstones of one provider that are older than Deps.TombstoneHorizon
// (see Store.Prune), and, with organizations on, those of its
// organizations (store.Orgs.Prune).
type PruneUserStateWorker struct {
	river.WorkerDefaults[jobs.PruneUserStateArgs]
	deps Deps
}

// Work implements river.Worker.
func (w *PruneUserStateWorker) Work(ctx context.Context, job *river.Job[jobs.PruneUserStateArgs]) error {
	b, ok := w.deps.Bindings[job.Args.Provider]
	if !ok {
		return river.JobCancel(fmt.Errorf("prune_user_state: provider %q is not enabled in this process", job.Args.Provider))
	}
	horizon := w.deps.TombstoneHorizon
	if horizon <= 0 {
		horizon = DefaultTombstoneHorizon
	}
	n, err := b.Store.Prune(ctx, w.deps.DB, horizon)
	if err != nil {
		return err
	}
	if n > 0 {
		w.deps.Logger.Info("removed the state of deleted or never-existing users without a row", "provider", job.Args.Provider, "count", n)
	}
	if b.Orgs != nil {
		n, err := b.Orgs.Prune(ctx, w.deps.DB, horizon)
		if err != nil {
			return err
		}
		if n > 0 {
			w.deps.Logger.Info("removed the state of deleted or never-existing organizations without a row", "provider", job.Args.Provider, "count", n)
		}
	}
	return nil
}
