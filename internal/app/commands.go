package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/migrate"
)

// IO is a command's surroundings.
type IO struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	SchemaSQL      string
}

type command struct {
	name, summary string
	run           func(ctx context.Context, st IO, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "run everything on embedded defaults: a throwaway Postgres, a simulated Stack Auth, the service, live users", runDemo},
		{"serve", "run the service: webhook receiver, health, metrics, River UI, and workers", runServe},
		{"worker", "run sync workers only (no HTTP); start more to scale out", runWorker},
		{"migrate", "apply River's migrations and schema.sql (idempotent)", runMigrate},
		{"backfill", "enqueue a full backfill of every configured provider, or follow the one going", runBackfill},
		{"status", "show per-provider sync health, jobs and recent errors", runStatus},
	}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Main runs the usersync command line and returns the process exit code.
func Main(ctx context.Context, args []string, st IO) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usersync keeps a users_sync table in your Postgres in step with your auth provider's users.")
		fmt.Fprintln(w, "\nUsage: usersync <command> [flags]\n\nCommands:")
		for _, c := range commands() {
			fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
		}
		fmt.Fprintln(w, "\nConfiguration comes from the environment (DATABASE_URL, STACK_*, USERSYNC_*); see README.md.")
		fmt.Fprintln(w, "Run 'usersync <command> --help' for a command's flags.")
	}
	if len(args) == 0 {
		usage(st.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(st.Stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, st, args[1:])
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return 0
		}
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			err = ee.err
		}
		if err != nil {
			fmt.Fprintf(st.Stderr, "usersync %s: %v\n", c.name, err)
		}
		return code
	}
	fmt.Fprintf(st.Stderr, "usersync: unknown command %q\n\n", args[0])
	usage(st.Stderr)
	return 2
}

func newFlags(st IO, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("usersync "+name, flag.ContinueOnError)
	fs.SetOutput(st.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: usersync %s [flags]\n\n%s\n", name, usage)
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string, st IO) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(st.Stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return &exitError{2, nil}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func loadEnv(st IO, requireDB bool) (*Env, error) {
	cfg, err := config.Load(st.LookupEnv, requireDB)
	if err != nil {
		return nil, err
	}
	env := &Env{Config: cfg, SchemaSQL: st.SchemaSQL}
	env.Logger = redactLogger(NewLogger(cfg.LogFormat, st.Stderr, slog.LevelInfo), env.redactor())
	return env, nil
}

const migrateHint = `Run 'usersync migrate' first (or start with --migrate).`

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
	// One sample before serving, so the first scrape already has the jobs
	// and backfill-age gauges.
	if err := core.Metrics.SampleOnce(ctx, core.Pool, cfg.InternalSchema); err != nil {
		logger.Debug("metrics sample failed", "err", err)
	}
	wg.Go(func() { core.Metrics.Sample(bg, core.Pool, cfg.InternalSchema, 15*time.Second, logger) })
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
	srv.Close()
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

// start starts River (when this process works jobs) and the status flusher.
func (c *Core) start(ctx context.Context, wg *sync.WaitGroup) error {
	wg.Go(func() { c.Status.Run(ctx, c.Pool, c.Env.Config.InternalSchema, time.Second, c.Env.Logger) })
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

func runMigrate(ctx context.Context, st IO, args []string) error {
	fs := newFlags(st, "migrate", `Applies River's migrations (in USERSYNC_INTERNAL_SCHEMA) and schema.sql (in the target
schema of each enabled provider, or USERSYNC_SCHEMA). Idempotent, and safe when several
processes run it at once.`)
	printSQL := fs.Bool("print-sql", false, "print the SQL it would run instead of running it")
	if err := parse(fs, args, st); err != nil {
		return err
	}
	env, err := loadEnv(st, !*printSQL)
	if err != nil {
		return err
	}
	if *printSQL {
		if env.Config.DatabaseURL == "" {
			return migrate.PrintSQL(ctx, st.Stdout, nil, env.Plan())
		}
		pool, err := OpenPool(ctx, env.Config.DatabaseURL, 2)
		if err != nil {
			return err
		}
		defer pool.Close()
		return migrate.PrintSQL(ctx, st.Stdout, pool, env.Plan())
	}
	pool, err := OpenPool(ctx, env.Config.DatabaseURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrate.Run(ctx, pool, env.Plan(), env.Logger)
}
