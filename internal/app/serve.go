package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/usersync/usersync/internal/migrate"
)

func runServe(ctx context.Context, st IO, args []string) error {
	fs := newFlags(st, "serve", `Runs the service: POST /webhooks/{stackauth,clerk,workos}, /healthz, /readyz, /metrics,
/riverui/ (with USERSYNC_UI_USER and USERSYNC_UI_PASSWORD) and, unless USERSYNC_WORKERS=0, the
sync workers. On a database that was never migrated it exits with an error naming
'usersync migrate', unless --migrate is given.`)
	listen := fs.String("listen", "", "HTTP address (overrides USERSYNC_LISTEN)")
	workers := fs.Int("workers", -1, "concurrent sync workers per provider (overrides USERSYNC_WORKERS)")
	auto := fs.Bool("migrate", false, "apply migrations before starting (safe when several processes start at once)")
	if err := parse(fs, args, st); err != nil {
		return err
	}
	env, err := loadEnv(st, true)
	if err != nil {
		return err
	}
	if *listen != "" {
		env.Config.Listen = *listen
	}
	if *workers >= 0 {
		env.Config.Workers = *workers
	}
	return Serve(ctx, env, *auto, nil)
}

// Serve runs the service until ctx is done. ready, if non-nil, receives the
// listening address once the server accepts connections.
func Serve(ctx context.Context, env *Env, autoMigrate bool, ready chan<- string) error {
	cfg := env.Config
	core, err := Open(ctx, env, cfg.Workers, autoMigrate)
	if err != nil {
		var nm *migrate.NotMigratedError
		if errors.As(err, &nm) {
			return fmt.Errorf("%w\n%s", err, migrateHint)
		}
		return err
	}
	logger := env.Logger // after Open, which made it scrub credentials
	defer core.Pool.Close()
	srv, err := NewServer(ctx, core)
	if err != nil {
		core.Engine.Close()
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("USERSYNC_LISTEN: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		// Background goroutines end before the pool closes (deferred above).
		stopBg()
		wg.Wait()
	}()
	if err := core.start(bg, &wg); err != nil {
		ln.Close()
		return err
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- hs.Serve(ln) }()
	logger.Info("usersync serving", "addr", ln.Addr().String(), "workers", cfg.Workers, "providers", providerNames(core))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down: draining HTTP, then stopping workers")
	case err = <-httpErr:
		logger.Error("HTTP server failed", "err", err)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(shCtx)
	core.stop()
	stopBg()
	return err
}

func providerNames(core *Core) string {
	var ns []string
	for _, p := range core.Providers {
		ns = append(ns, p.Name())
	}
	return strings.Join(ns, ",")
}

// start starts River (when this process works jobs) and the engine's
// background work (status flusher, metrics sampler, sampled once first so
// the first scrape already has the jobs and backfill-age gauges).
func (c *Core) start(ctx context.Context, wg *sync.WaitGroup) error {
	if err := c.Engine.Start(ctx); err != nil {
		c.Engine.Close()
		return err
	}
	wg.Go(func() {
		<-ctx.Done()
		c.Engine.Close()
	})
	if !c.Working {
		return nil
	}
	if err := c.River.Start(ctx); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	return nil
}

// stop soft-stops River: no new jobs, running ones get softStopTimeout to
// finish before their contexts are cancelled (they then return to the queue).
func (c *Core) stop() {
	if !c.Working {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), softStopTimeout+10*time.Second)
	defer cancel()
	if err := c.River.Stop(ctx); err != nil {
		c.Env.Logger.Warn("workers did not stop cleanly", "err", err)
	}
}
