package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/usersync/usersync/internal/migrate"
)

func runWorker(ctx context.Context, st IO, args []string) error {
	fs := newFlags(st, "worker", `Runs sync workers only, with no HTTP: start more of these against the same database
to scale out. On a database that was never migrated it exits with an error naming
'usersync migrate', unless --migrate is given.`)
	workers := fs.Int("workers", -1, "concurrent sync workers per provider (overrides USERSYNC_WORKERS)")
	auto := fs.Bool("migrate", false, "apply migrations before starting")
	if err := parse(fs, args, st); err != nil {
		return err
	}
	env, err := loadEnv(st, true)
	if err != nil {
		return err
	}
	if *workers >= 0 {
		env.Config.Workers = *workers
	}
	if env.Config.Workers == 0 {
		return &exitError{2, errors.New("USERSYNC_WORKERS: a worker process needs at least 1 worker")}
	}
	core, err := Open(ctx, env, env.Config.Workers, *auto)
	if err != nil {
		var nm *migrate.NotMigratedError
		if errors.As(err, &nm) {
			return fmt.Errorf("%w\n%s", err, migrateHint)
		}
		return err
	}
	defer core.Pool.Close()
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopBg()
		wg.Wait()
	}()
	if err := core.start(bg, &wg); err != nil {
		return err
	}
	env.Logger.Info("usersync worker running", "workers", env.Config.Workers, "providers", providerNames(core))
	<-ctx.Done()
	env.Logger.Info("shutting down: stopping workers")
	core.stop()
	return nil
}
