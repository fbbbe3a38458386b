// Package engine keeps a users_sync table in a PostgreSQL database in step
// with the users of a hosted auth provider (Stack Auth, Clerk, WorkOS), using
// River jobs in that same database. It is the library behind the usersync
// command: a Go application that already runs River adds usersync to its own
// River client and HTTP mux instead of running a second service.
//
// # The model
//
// An [Engine] is built by [New] from a [Config]: the providers (clients built
// in code with the provider packages, each bound to the schema holding its
// users_sync table), where usersync keeps its own tables, and how it deletes
// and redacts. [Engine.Migrate] creates usersync's tables, River's tables and
// each provider's users_sync table (idempotent, safe when several processes
// run it at once).
//
// Changes reach users_sync through River jobs. A verified webhook delivery
// enqueues a sync_user job, committed before the handler answers 200 (several
// concurrent deliveries share one transaction). A worker fetches the user
// from the provider and writes the row in the transaction that completes the
// job: a crash loses neither the change nor the job, and a stale fetch never
// overwrites a newer row. Backfill jobs
// list every user page by page and infer deletions at the end of a complete
// run; a run that would delete more than Config.DeleteGuard of the users is
// held for an operator. [Engine.ConfigureRiver] adds these workers, one
// sync and one backfill queue per provider and the periodic jobs to the
// application's river.Config; [Engine.WebhookHandler] returns the handler to
// mount at /webhooks/{provider}.
//
// The application owns the River client, the mux and the pool: it starts and
// stops them. [Engine.Start] runs usersync's own background work (the status
// record read by [Engine.Status], the sampled metrics) and [Engine.Close]
// stops it and the webhook group committer; call Close after the HTTP server
// has drained and River has stopped, and before closing the pool.
//
// # Backfills and status
//
// [Engine.StartBackfill] enqueues a full backfill of a provider (or joins the
// one already going) and returns a [Backfill]: [Backfill.Wait] returns the
// run's final state (completed, failed, or held with the deletions it would
// have made), [Backfill.Follow] yields its progress as it goes. A held run is
// applied by [Engine.ConfirmHeld]; deletions by sync jobs that the breaker
// paused are resumed by [Engine.ResumeDeletions]. [Engine.Status] reads each
// provider's status and lists what needs an operator. The usersync
// command's `backfill` and `status` are these methods with flags and
// printing, and work against the same database from another process.
//
// # Provider rate limits
//
// Each provider's API requests are held to a budget shared by every usersync
// process on the database ([Config.RateLimits], [DefaultRateLimit];
// docs/limits.md): build each provider client's HTTP client with
// [Metrics.Transport] of the [Metrics] given in [Config.Metrics], and its
// requests wait for their share; a 429 slows the budget down for all.
//
// # Organizations
//
// With Config.Organizations, each provider's organizations (Stack Auth
// teams) and memberships are kept too, in organizations_sync and
// memberships_sync beside users_sync, which Migrate then creates. Every
// organization and membership event enqueues a sync_organization job that
// fetches the organization and all its memberships and writes both tables
// in the transaction that completes it, ordered like users (no stale
// overwrite); every backfill also runs a chain of backfill_organizations
// pages, which [Backfill.Wait] waits for ([Backfill.OrganizationsRun]) and
// [Engine.Status] reports. A deleted user's memberships are marked deleted
// with the user. Every provider client must implement
// provider.Organizations.
//
// # Schemas
//
// usersync's tables live in Config.InternalSchema ("usersync" by default),
// each provider's users_sync table in its Provider.Schema, and usersync's
// jobs in the application's River tables, in Config.RiverSchema (the same
// schema as river.Config.Schema; InternalSchema when empty, which is the
// usersync command's layout). Migrate runs River's migrations in
// RiverSchema too, unless Config.SkipRiverMigrations says the application
// runs them itself; Check reports them missing either way. The usersync
// command runs exactly this code, configured from its environment
// variables; its README documents the guarantees, the data model and the
// HTTP contract.
package engine
