package engine

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/usersync/usersync/internal/metrics"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/ratelimit"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/internal/webhook"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/worker"
)

// SchemaSQL is the users_sync table's DDL (idempotent), which Migrate runs
// in each provider's schema. It is the repository's schema.sql, copied here
// by go generate so that it can be embedded; a test keeps the two equal.
//
//go:generate cp ../schema.sql schema.sql
//go:embed schema.sql
var SchemaSQL string

// Defaults of Config.
const (
	// DefaultInternalSchema is Config.InternalSchema's default.
	DefaultInternalSchema = "usersync"
	// DefaultSchema is Provider.Schema's default (Neon Auth's schema).
	DefaultSchema = "neon_identity"
	// DefaultWorkers is Config.Workers' default: concurrent sync_user jobs
	// per provider.
	DefaultWorkers = 10
	// DefaultDeleteGuard is the usersync command's USERSYNC_DELETE_GUARD
	// default: a backfill run may infer at most a tenth of a provider's live
	// users deleted without an operator's confirmation.
	DefaultDeleteGuard = 0.1
)

// Timing of usersync's jobs (see ConfigureRiver).
const (
	// JobTimeout is the longest a usersync job runs; a provider request
	// finishes well within it.
	JobTimeout = 20 * time.Second
	// RescueStuckJobsAfter is how long a running job may go without
	// finishing before River returns it to the queue (its process died).
	RescueStuckJobsAfter = 25 * time.Second
	// syncFetchCooldown is the least time between two fetches of a sync
	// queue: a notified job waits at most this long to be fetched.
	syncFetchCooldown = 2 * time.Millisecond
	// syncFetchPollInterval bounds how long a job whose insert sent no
	// notification (River sends at most one per queue per insertCooldown,
	// and two batches may commit out of order) waits to be fetched.
	syncFetchPollInterval = 100 * time.Millisecond
	// insertCooldown is the client's FetchCooldown, which is also the
	// least time between two insert notifications of a queue: a job
	// inserted within it after a notification waits for the next one (or
	// the poll). At 2 ms a steady 200 events/s (a batch per 5 ms) all
	// notify. Not much less: a notifying transaction takes PostgreSQL's
	// notification lock through its commit, so webhook batches that all
	// notify commit one at a time (at 2 ms, ingest measured no slower than
	// at 5 ms).
	insertCooldown      = 2 * time.Millisecond
	pruneUserStateEvery = time.Minute
	statusFlushEvery    = time.Second
	metricsSampleEvery  = 15 * time.Second
	webhookWriters      = 2
	webhookBatch        = 500
)

// Provider binds one hosted auth provider's client to the table it syncs.
type Provider struct {
	// Client is the provider's API and webhook client, built with its
	// package: stackauth.New, clerk.New or workos.New. Give it a
	// provider.Redactor of its credentials so its error text never carries
	// them.
	Client provider.Provider
	// Schema holds this provider's users_sync table (DefaultSchema when
	// empty). Two providers never share a schema.
	Schema string
	// NotifyChannel is the pg_notify channel told of each change to the
	// table; "<schema>_users_sync" when empty. DisableNotify turns it off.
	NotifyChannel string
	// DisableNotify sends no change notifications of users_sync.
	DisableNotify bool
	// DisableOrganizationNotify sends no change notifications of
	// organizations_sync and memberships_sync (with Config.Organizations),
	// which otherwise go to "<schema>_organizations_sync" and
	// "<schema>_memberships_sync".
	DisableOrganizationNotify bool
}

// Config configures an Engine. The zero value of each field is usable except
// Providers, which needs at least one entry.
type Config struct {
	// Providers are the enabled providers, at most one of each kind.
	Providers []Provider
	// InternalSchema holds usersync's own tables (DefaultInternalSchema when
	// empty).
	InternalSchema string
	// RiverSchema is the schema of the application's River tables (its
	// river.Config.Schema); empty means InternalSchema. usersync's jobs live
	// there with the application's; usersync's own tables stay in
	// InternalSchema.
	RiverSchema string
	// SkipRiverMigrations leaves River's migrations to the application (it
	// runs rivermigrate or the river CLI on RiverSchema itself): Migrate then
	// neither creates RiverSchema nor migrates River's tables, and Check
	// still reports them missing or out of date.
	SkipRiverMigrations bool
	// HardDelete deletes the rows of deleted users instead of setting
	// deleted_at.
	HardDelete bool
	// Redact lists top-level raw_json keys dropped before rows are stored
	// (personal data the application does not want copied), in users_sync
	// and, with Organizations, in organizations_sync and memberships_sync;
	// the other columns are still derived from the full objects.
	Redact []string
	// ExcludeAnonymous keeps anonymous users out of users_sync.
	ExcludeAnonymous bool
	// Organizations also syncs each provider's organizations and
	// memberships into organizations_sync and memberships_sync in its
	// schema (the usersync command's USERSYNC_ORGANIZATIONS=on): Migrate
	// creates the tables, organization and membership webhooks enqueue
	// sync_organization jobs, and each backfill also runs a chain of
	// backfill_organizations jobs. Every provider's Client must implement
	// provider.Organizations.
	Organizations bool
	// DeleteGuard is the largest share (0..1) of a provider's live users one
	// backfill run may infer deleted (when that is also more than 10 users)
	// before the run is held for an operator's confirmation. The zero value
	// holds every run that would delete more than 10 users; the usersync
	// command uses DefaultDeleteGuard.
	DeleteGuard float64
	// BackfillInterval is the period of scheduled full backfills; 0 means
	// none (backfills then run only when enqueued).
	BackfillInterval time.Duration
	// Workers is the number of concurrent sync_user jobs per provider
	// (DefaultWorkers when 0).
	Workers int
	// Logger receives usersync's log lines (discarded when nil).
	Logger *slog.Logger
	// Metrics, when set, records usersync's Prometheus metrics (see
	// NewMetrics); a private set is used when nil.
	Metrics *Metrics
	// RateLimits are the most provider API requests per second usersync
	// makes for each provider, by name ("stackauth", "clerk", "workos"),
	// across all processes on the database; a provider not named gets
	// DefaultRateLimit. Every request made through Metrics.Transport of
	// Config.Metrics waits for its share (see docs/limits.md).
	RateLimits map[string]float64
	// Secrets are credentials (provider keys, webhook secrets) scrubbed from
	// usersync's log lines, the job errors River stores (shown by the River
	// UI) and the errors usersync keeps for `usersync status`. Give the
	// provider clients a provider.Redactor too, so their error text is clean
	// where it is made.
	Secrets []string
}

// Metrics is usersync's Prometheus registry (webhooks, syncs, provider API
// calls, backfills, River jobs by state) and the per-provider status record.
// Create it before the provider clients to count their API calls with
// Transport.
type Metrics struct {
	m      *metrics.Metrics
	status *metrics.StatusRecorder
	gates  ratelimit.Gates
}

// NewMetrics returns an empty set of metrics. Its registry also holds the Go
// and process collectors.
func NewMetrics() *Metrics {
	s := metrics.NewStatusRecorder()
	return &Metrics{m: metrics.New(s), status: s}
}

// Transport wraps base (http.DefaultTransport when nil) so that every
// request made through it is counted and timed as an API call of the named
// provider ("stackauth", "clerk", "workos") and, once an Engine is built
// with these Metrics, waits for its share of the provider's request budget
// (Config.RateLimits), shared by every usersync process on the database. A
// 429 answer slows that budget down.
func (m *Metrics) Transport(provider string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return m.gates.Transport(provider, m.m.Transport(provider, base))
}

// Handler serves the metrics in the Prometheus text format (mount it at
// GET /metrics).
func (m *Metrics) Handler() http.Handler { return m.m.Handler() }

// Engine is usersync configured for one database: its workers, queues,
// webhook handler and migrations. It is safe for concurrent use.
type Engine struct {
	pool      *pgxpool.Pool
	cfg       Config
	logger    *slog.Logger
	redactor  *provider.Redactor
	providers []provider.Provider
	plan      migrate.Plan
	store     *store.Store
	metrics   *Metrics

	mu       sync.Mutex
	bindings map[string]*worker.Binding // nil until the tables are known
	batchers []*webhook.Batcher
	stopBg   context.CancelFunc
	wg       sync.WaitGroup
	closed   bool
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkIdent(what, v string) error {
	if !identRe.MatchString(v) || len(v) > 63 {
		return fmt.Errorf("usersync: %s %q is not a valid schema name (letters, digits, _; not starting with a digit; at most 63)", what, v)
	}
	return nil
}

// New checks cfg and returns an Engine on pool. When the database is
// already migrated it inspects each users_sync table (Neon's table computes
// some columns itself, which are then not written); otherwise call Migrate
// before ConfigureRiver.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Engine, error) {
	if pool == nil {
		return nil, errors.New("usersync: pool is nil")
	}
	if len(cfg.Providers) == 0 {
		return nil, errors.New("usersync: Config.Providers is empty: configure at least one provider")
	}
	if cfg.InternalSchema == "" {
		cfg.InternalSchema = DefaultInternalSchema
	}
	if err := checkIdent("Config.InternalSchema", cfg.InternalSchema); err != nil {
		return nil, err
	}
	if len(cfg.InternalSchema) > 46 {
		return nil, errors.New("usersync: Config.InternalSchema must be at most 46 characters (River's limit)")
	}
	if cfg.RiverSchema == "" {
		cfg.RiverSchema = cfg.InternalSchema
	}
	if err := checkIdent("Config.RiverSchema", cfg.RiverSchema); err != nil {
		return nil, err
	}
	if len(cfg.RiverSchema) > 46 {
		return nil, errors.New("usersync: Config.RiverSchema must be at most 46 characters (River's limit)")
	}
	if cfg.DeleteGuard < 0 || cfg.DeleteGuard > 1 {
		return nil, fmt.Errorf("usersync: Config.DeleteGuard %v is not a share from 0 to 1", cfg.DeleteGuard)
	}
	if cfg.BackfillInterval < 0 {
		return nil, errors.New("usersync: Config.BackfillInterval is negative")
	}
	if cfg.Workers < 0 {
		return nil, errors.New("usersync: Config.Workers is negative")
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	names := map[string]bool{}
	schemas := map[string]string{}
	var ps []provider.Provider
	var targets []string
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		if p.Client == nil {
			return nil, fmt.Errorf("usersync: Config.Providers[%d].Client is nil", i)
		}
		name := p.Client.Name()
		if names[name] {
			return nil, fmt.Errorf("usersync: provider %s is configured twice", name)
		}
		names[name] = true
		if p.Schema == "" {
			p.Schema = DefaultSchema
		}
		if err := checkIdent("schema of provider "+name, p.Schema); err != nil {
			return nil, err
		}
		if other, taken := schemas[p.Schema]; taken {
			return nil, fmt.Errorf("usersync: providers %s and %s share schema %s: give each its own", other, name, p.Schema)
		}
		if p.Schema == cfg.InternalSchema {
			return nil, fmt.Errorf("usersync: provider %s's schema %s is Config.InternalSchema: give users_sync its own schema", name, p.Schema)
		}
		if p.Schema == cfg.RiverSchema {
			return nil, fmt.Errorf("usersync: provider %s's schema %s is Config.RiverSchema: give users_sync its own schema", name, p.Schema)
		}
		if _, ok := p.Client.(provider.Organizations); cfg.Organizations && !ok {
			return nil, fmt.Errorf("usersync: Config.Organizations is set but provider %s's client does not read organizations (provider.Organizations)", name)
		}
		schemas[p.Schema] = name
		ps = append(ps, p.Client)
		targets = append(targets, p.Schema)
	}
	cfg.Providers = append([]Provider(nil), cfg.Providers...)
	cfg.Redact = append([]string(nil), cfg.Redact...)
	red := provider.NewRedactor(cfg.Secrets...)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	} else if _, done := logger.Handler().(*provider.RedactingHandler); !done && len(cfg.Secrets) > 0 {
		logger = slog.New(provider.NewRedactingHandler(logger.Handler(), red))
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics()
	}
	m.status.SetRedactor(red)
	for _, p := range ps {
		m.m.AddProviders(p.Name())
	}
	st := store.New(store.Schemas{Internal: cfg.InternalSchema, River: cfg.RiverSchema})
	if err := bindRateLimits(pool, st, m, ps, cfg.RateLimits, logger); err != nil {
		return nil, err
	}
	e := &Engine{pool: pool, cfg: cfg, logger: logger, redactor: red, providers: ps, metrics: m,
		plan: migrate.Plan{InternalSchema: cfg.InternalSchema, RiverSchema: cfg.RiverSchema, SkipRiver: cfg.SkipRiverMigrations,
			TargetSchemas: targets, SchemaSQL: SchemaSQL, Organizations: cfg.Organizations},
		store: st}
	err := migrate.Check(ctx, pool, e.plan)
	var nm *migrate.NotMigratedError
	switch {
	case errors.As(err, &nm):
		// Migrate loads the tables.
	case err != nil:
		return nil, fmt.Errorf("usersync: check migrations: %w", err)
	default:
		if err := e.loadTargets(ctx); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// loadTargets inspects each provider's users_sync table and builds the
// workers' bindings.
func (e *Engine) loadTargets(ctx context.Context) error {
	bindings := map[string]*worker.Binding{}
	for _, p := range e.cfg.Providers {
		ch := ""
		if !p.DisableNotify {
			ch = p.NotifyChannel
			if ch == "" {
				ch = p.Schema + "_users_sync"
			}
		}
		t, err := worker.LoadTarget(ctx, e.pool, p.Schema, ch)
		if err != nil {
			return err
		}
		if t.Generated("id") {
			e.logger.Info("users_sync has generated columns (Neon's table): writing only the others", "schema", t.Schema)
		}
		name := p.Client.Name()
		bindings[name] = &worker.Binding{Provider: p.Client, Store: worker.NewStore(worker.StoreConfig{
			Provider: name, InternalSchema: e.cfg.InternalSchema, RiverSchema: e.cfg.RiverSchema, Target: t,
			HardDelete: e.cfg.HardDelete, Redact: e.cfg.Redact,
		}), ExcludeAnonymous: e.cfg.ExcludeAnonymous}
		if e.cfg.Organizations {
			oc := store.OrgsConfig{Provider: name, InternalSchema: e.cfg.InternalSchema, RiverSchema: e.cfg.RiverSchema,
				Schema: p.Schema, HardDelete: e.cfg.HardDelete, Redact: e.cfg.Redact}
			if !p.DisableOrganizationNotify {
				oc.OrganizationsChannel, oc.MembershipsChannel = p.Schema+"_organizations_sync", p.Schema+"_memberships_sync"
			}
			bindings[name].Orgs = store.NewOrgs(oc)
		}
	}
	e.mu.Lock()
	e.bindings = bindings
	e.mu.Unlock()
	return nil
}

// Migrate applies River's migrations in Config.RiverSchema (unless
// Config.SkipRiverMigrations) and usersync's tables in
// Config.InternalSchema, and creates each provider's users_sync table. It is
// idempotent and safe when several processes run it at once. River's
// migrations are a no-op when the application already ran them.
func (e *Engine) Migrate(ctx context.Context) error {
	if err := migrate.Run(ctx, e.pool, e.plan, e.logger); err != nil {
		return err
	}
	return e.loadTargets(ctx)
}

// ConfigureRiver adds usersync to rc, the application's River client
// configuration, before river.NewClient: its workers (rc.Workers is created
// when nil), one sync and one backfill queue per provider (an error if the
// application already uses such a name), River's default queue when rc has
// none (operators may insert usersync jobs by SQL without a queue), the
// periodic prune_user_state and scheduled backfill jobs, and middleware
// that scrubs Config.Secrets from stored job errors. It sets JobTimeout,
// RescueStuckJobsAfter and MaxAttempts only when they are zero; usersync's
// guarantees assume JobTimeout and RescueStuckJobsAfter, and a shorter
// RescueStuckJobsAfter than JobTimeout would rescue running jobs.
//
// rc.Schema must be Config.RiverSchema (Config.InternalSchema when that is
// empty). The database must be migrated.
func (e *Engine) ConfigureRiver(rc *river.Config) error {
	if rc == nil {
		return errors.New("usersync: ConfigureRiver: river.Config is nil")
	}
	if rc.Schema != e.cfg.RiverSchema {
		return fmt.Errorf("usersync: river.Config.Schema is %q but Config.RiverSchema is %q: give both the schema of the application's River tables", rc.Schema, e.cfg.RiverSchema)
	}
	e.mu.Lock()
	bindings := e.bindings
	e.mu.Unlock()
	if bindings == nil {
		return fmt.Errorf("usersync: %w; call Engine.Migrate first", &migrate.NotMigratedError{Missing: "users_sync tables not inspected"})
	}
	for _, p := range e.providers {
		for _, q := range []string{jobs.SyncQueue(p.Name()), jobs.BackfillQueue(p.Name())} {
			if _, taken := rc.Queues[q]; taken {
				return fmt.Errorf("usersync: river.Config.Queues already has queue %q, which usersync uses", q)
			}
		}
	}
	ws := rc.Workers
	if ws == nil {
		ws = river.NewWorkers()
	}
	if err := e.registerWorkers(ws, bindings); err != nil {
		return err
	}
	rc.Workers = ws
	if rc.Queues == nil {
		rc.Queues = map[string]river.QueueConfig{}
	}
	if _, ok := rc.Queues[river.QueueDefault]; !ok {
		rc.Queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: 4}
	}
	for _, p := range e.providers {
		name := p.Name()
		rc.Queues[jobs.SyncQueue(name)] = river.QueueConfig{MaxWorkers: e.cfg.Workers, FetchCooldown: syncFetchCooldown,
			FetchPollInterval: syncFetchPollInterval}
		rc.Queues[jobs.BackfillQueue(name)] = river.QueueConfig{MaxWorkers: 1}
		// Recorded deletions of users without a row (ids that never
		// existed, hard-deleted users) are removed once stale.
		rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(pruneUserStateEvery),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.PruneUserStateArgs{Provider: name}, nil },
			&river.PeriodicJobOpts{ID: "prune_user_state_" + name, RunOnStart: true}))
		if e.cfg.BackfillInterval > 0 {
			rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(e.cfg.BackfillInterval),
				func() (river.JobArgs, *river.InsertOpts) { return jobs.BackfillPageArgs{Provider: name}, nil },
				&river.PeriodicJobOpts{ID: "backfill_" + name, RunOnStart: true}))
		}
	}
	e.ConfigureRiverInserts(rc)
	return nil
}

// ConfigureRiverInserts is ConfigureRiver for a client that only inserts
// jobs (a process that serves webhooks but works no jobs): it adds no
// workers, queues or periodic jobs, only the client-wide settings.
func (e *Engine) ConfigureRiverInserts(rc *river.Config) {
	if rc.JobTimeout == 0 {
		rc.JobTimeout = JobTimeout
	}
	if rc.RescueStuckJobsAfter == 0 {
		rc.RescueStuckJobsAfter = RescueStuckJobsAfter
	}
	if rc.MaxAttempts == 0 {
		rc.MaxAttempts = jobs.MaxAttempts
	}
	if rc.FetchCooldown == 0 {
		// Also the inserting side's NOTIFY rate limit per queue: a job
		// inserted within it after a notification sends none, and waits for
		// the next notification or poll (syncFetchPollInterval).
		rc.FetchCooldown = insertCooldown
	}
	rc.Middleware = append(rc.Middleware, &redactJobErrors{r: e.redactor})
}

// registerWorkers adds usersync's workers to ws, reporting River's panic on a
// kind already registered as an error.
func (e *Engine) registerWorkers(ws *river.Workers, bindings map[string]*worker.Binding) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("usersync: add workers: %v", r)
		}
	}()
	worker.Register(ws, worker.Deps{DB: e.pool, Bindings: bindings, Logger: e.logger, Observer: e.metrics.m,
		BackfillInterval: e.cfg.BackfillInterval, DeleteGuard: e.cfg.DeleteGuard})
	return nil
}

// WebhookHandler returns the handler of POST /webhooks/{provider}: mount it
// on a pattern with a {provider} wildcard, such as
// mux.Handle("/webhooks/{provider}", h). It verifies each delivery's
// signature and answers 200 once the delivery's sync job is committed
// through client (deliveries arriving together share one transaction), 401
// for a missing or bad signature, 400 for a payload it cannot read, 413 for
// a body over its limit, 404 for a provider not configured, 405 for another
// method, and 503 when the database cannot take the job. client may be
// insert-only. Close stops the handler's group committer.
func (e *Engine) WebhookHandler(client *river.Client[pgx.Tx]) (http.Handler, error) {
	if client == nil {
		return nil, errors.New("usersync: WebhookHandler: River client is nil")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("usersync: WebhookHandler: engine is closed")
	}
	b := webhook.NewBatcher(e.pool, client, e.cfg.RiverSchema, webhookWriters, webhookBatch, e.logger)
	e.batchers = append(e.batchers, b)
	return webhook.NewHandler(e.providers, b, e.metrics.m, e.logger).SyncOrganizations(e.cfg.Organizations), nil
}

// Start runs usersync's background work until Close: the status record
// that `usersync status` reads (flushed every second) and the sampled
// metrics (River jobs by state, age of the last complete backfill), sampled
// once before Start returns, and the check that serves a large backlog of
// syncs by listing (a backfill run; docs/limits.md, "A large backlog"). It
// does not start River: the application does.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("usersync: Start: engine is closed")
	}
	if e.stopBg != nil {
		return errors.New("usersync: Start: already started")
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopBg = stop
	is := e.cfg.InternalSchema
	e.wg.Go(func() { e.metrics.status.Run(bg, e.pool, is, statusFlushEvery, e.logger) })
	if err := e.metrics.m.SampleStore(ctx, e.pool, e.store); err != nil {
		e.logger.Debug("metrics sample failed", "err", err)
	}
	e.wg.Go(func() { e.metrics.m.SampleEvery(bg, e.pool, e.store, metricsSampleEvery, e.logger) })
	e.wg.Go(func() { e.watchBacklog(bg) })
	return nil
}

// Close stops the webhook handlers' group committers (a delivery arriving
// later is answered 503) and the background work of Start, flushing the
// status record one last time. Call it after the HTTP server has drained
// and River has stopped, and before closing the pool. Close is idempotent.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	bs, stop := e.batchers, e.stopBg
	e.mu.Unlock()
	for _, b := range bs {
		b.Close()
	}
	if stop != nil {
		stop()
	}
	e.wg.Wait()
}

// MetricsHandler serves usersync's metrics in the Prometheus text format
// (mount it at GET /metrics).
func (e *Engine) MetricsHandler() http.Handler { return e.metrics.Handler() }

// Providers returns the names of the configured providers, in Config order.
func (e *Engine) Providers() []string {
	out := make([]string, len(e.providers))
	for i, p := range e.providers {
		out[i] = p.Name()
	}
	return out
}

// Check reports whether the database is migrated for this configuration: a
// *NotMigratedError-wrapping error when River's tables, usersync's tables or
// a users_sync table is missing or out of date.
func (e *Engine) Check(ctx context.Context) error {
	return migrate.Check(ctx, e.pool, e.plan)
}
