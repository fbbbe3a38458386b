// Package app wires usersync's parts into the processes of README "Commands": it
// builds the database pool, the providers, the River client and the HTTP
// server from a Config, and implements each command.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/stackauth"
	"github.com/usersync/usersync/provider/workos"
)

// Timing of jobs: a provider request must finish well within JobTimeout, and
// a job whose process was SIGKILLed is rescued within about a minute
// (RescueStuckJobsAfter + the rescuer's 30 s period + the retry delay).
const (
	providerHTTPTimeout  = 15 * time.Second
	jobTimeout           = engine.JobTimeout
	rescueStuckJobsAfter = engine.RescueStuckJobsAfter
	softStopTimeout      = 10 * time.Second
)

// Env is what a command needs from its surroundings.
type Env struct {
	Config    *config.Config
	Logger    *slog.Logger
	SchemaSQL string
	// HTTPClient, when set, is the base HTTP client for provider APIs (tests
	// and the demo point it at fakes).
	HTTPClient *http.Client
}

// Plan is the migration plan for this configuration.
func (e *Env) Plan() migrate.Plan {
	return migrate.Plan{InternalSchema: e.Config.InternalSchema, TargetSchemas: targetSchemas(e.Config), SchemaSQL: e.SchemaSQL,
		Organizations: e.Config.Organizations}
}

func targetSchemas(c *config.Config) []string {
	var out []string
	if c.Stack != nil {
		out = append(out, c.Stack.Schema)
	}
	if c.Clerk != nil {
		out = append(out, c.Clerk.Schema)
	}
	if c.WorkOS != nil {
		out = append(out, c.WorkOS.Schema)
	}
	if len(out) == 0 {
		out = append(out, c.Schema)
	}
	return out
}

// OpenPool connects to DATABASE_URL with at most max connections.
func OpenPool(ctx context.Context, url string, max int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can echo the URL, password included.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	pc.MaxConns = max
	pc.ConnConfig.RuntimeParams["application_name"] = "usersync"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redactURL(pc), err)
	}
	return pool, nil
}

func redactURL(pc *pgxpool.Config) string {
	return fmt.Sprintf("%s@%s:%d/%s", pc.ConnConfig.User, pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
}

// Providers builds the enabled providers' clients.
func (e *Env) Providers(m *engine.Metrics) ([]provider.Provider, map[string]string, error) {
	c := e.Config
	client := func(name string) *http.Client {
		base := http.DefaultTransport
		if e.HTTPClient != nil && e.HTTPClient.Transport != nil {
			base = e.HTTPClient.Transport
		}
		if m != nil {
			base = m.Transport(name, base)
		}
		return &http.Client{Transport: base, Timeout: providerHTTPTimeout}
	}
	var ps []provider.Provider
	schemas := map[string]string{}
	red := e.redactor()
	if c.Stack != nil {
		p, err := stackauth.New(stackauth.Config{ProjectID: c.Stack.ProjectID, SecretServerKey: c.Stack.SecretServerKey,
			WebhookSecret: c.Stack.WebhookSecret, APIURL: c.Stack.APIURL, HTTPClient: client("stackauth"),
			ExcludeAnonymous: c.ExcludeAnonymous(), Redactor: red})
		if err != nil {
			return nil, nil, fmt.Errorf("STACK_*: %w", err)
		}
		ps = append(ps, p)
		schemas[p.Name()] = c.Stack.Schema
	}
	if c.Clerk != nil {
		p, err := clerk.New(clerk.Config{SecretKey: c.Clerk.SecretKey, WebhookSecret: c.Clerk.WebhookSecret,
			APIURL: c.Clerk.APIURL, HTTPClient: client("clerk"), Redactor: red})
		if err != nil {
			return nil, nil, fmt.Errorf("CLERK_*: %w", err)
		}
		ps = append(ps, p)
		schemas[p.Name()] = c.Clerk.Schema
	}
	if c.WorkOS != nil {
		p, err := workos.New(workos.Config{APIKey: c.WorkOS.APIKey, WebhookSecret: c.WorkOS.WebhookSecret,
			APIURL: c.WorkOS.APIURL, HTTPClient: client("workos"), Redactor: red})
		if err != nil {
			return nil, nil, fmt.Errorf("WORKOS_*: %w", err)
		}
		ps = append(ps, p)
		schemas[p.Name()] = c.WorkOS.Schema
	}
	return ps, schemas, nil
}

// Core is an opened service: pool, providers, River client, and the
// usersync engine they run (the same one an embedding application uses).
type Core struct {
	Env       *Env
	Pool      *pgxpool.Pool
	Providers []provider.Provider
	River     *river.Client[pgxTx]
	Engine    *engine.Engine
	// Working says whether this process runs workers (River started).
	Working bool
}

// Open connects, checks migrations (or applies them when autoMigrate), and
// builds the engine and the River client: with queues and workers when
// workers > 0, else insert-only.
func Open(ctx context.Context, e *Env, workers int, autoMigrate bool) (*Core, error) {
	c := e.Config
	if !c.Enabled() {
		return nil, errors.New("no provider is configured: set STACK_PROJECT_ID, STACK_SECRET_SERVER_KEY and STACK_WEBHOOK_SECRET (or the CLERK_* or WORKOS_* variables)")
	}
	if _, done := e.Logger.Handler().(*provider.RedactingHandler); !done {
		// Library callers and tests build Env themselves: scrub their logger too.
		e.Logger = redactLogger(e.Logger, e.redactor())
	}
	pool, err := OpenPool(ctx, c.DatabaseURL, c.DBMaxConns)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			pool.Close()
		}
	}()
	if autoMigrate {
		if err := migrate.Run(ctx, pool, e.Plan(), e.Logger); err != nil {
			return nil, err
		}
	} else if err := migrate.Check(ctx, pool, e.Plan()); err != nil {
		return nil, err
	}
	m := engine.NewMetrics()
	ps, schemas, err := e.Providers(m)
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(ctx, pool, engineConfig(e, m, ps, schemas, max(workers, 1)))
	if err != nil {
		return nil, err
	}
	rc := &river.Config{
		Schema:               c.InternalSchema,
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: rescueStuckJobsAfter,
		Logger:               riverLogger(e.Logger),
	}
	if workers > 0 {
		rc.SoftStopTimeout = softStopTimeout
		if err := eng.ConfigureRiver(rc); err != nil {
			return nil, err
		}
	} else {
		eng.ConfigureRiverInserts(rc)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	ok = true
	return &Core{Env: e, Pool: pool, Providers: ps, River: client, Engine: eng, Working: workers > 0}, nil
}

// engineConfig is the engine configuration of the environment e: its
// providers ps (in schemas), River in the internal schema.
func engineConfig(e *Env, m *engine.Metrics, ps []provider.Provider, schemas map[string]string, workers int) engine.Config {
	c := e.Config
	ucfg := engine.Config{
		InternalSchema:   c.InternalSchema,
		HardDelete:       c.DeleteMode == config.DeleteHard,
		Redact:           c.Redact,
		ExcludeAnonymous: c.ExcludeAnonymous(),
		Organizations:    c.Organizations,
		DeleteGuard:      c.DeleteGuard,
		RateLimits:       c.RateLimits,
		BackfillInterval: c.BackfillInterval,
		Workers:          workers,
		Logger:           e.Logger,
		Metrics:          m,
		Secrets:          c.Secrets(),
	}
	for _, p := range ps {
		s := schemas[p.Name()]
		ch := c.NotifyChannelFor(s)
		ucfg.Providers = append(ucfg.Providers, engine.Provider{Client: p, Schema: s, NotifyChannel: ch, DisableNotify: ch == "",
			DisableOrganizationNotify: c.NotifyOff()})
	}
	return ucfg
}

// openEngine checks that the database is migrated and returns the engine
// of the environment e on pool, for the operators' commands (it works no
// jobs and serves nothing; Close it), or nil when no provider is
// configured.
func openEngine(ctx context.Context, e *Env, pool *pgxpool.Pool) (*engine.Engine, []provider.Provider, error) {
	if err := migrate.Check(ctx, pool, e.Plan()); err != nil {
		return nil, nil, fmt.Errorf("%w\n%s", err, migrateHint)
	}
	ps, schemas, err := e.Providers(nil)
	if err != nil {
		return nil, nil, err
	}
	if len(ps) == 0 {
		return nil, nil, nil
	}
	eng, err := engine.New(ctx, pool, engineConfig(e, nil, ps, schemas, 1))
	if err != nil {
		return nil, nil, err
	}
	return eng, ps, nil
}
