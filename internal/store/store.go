// Package store owns usersync's schema and every SQL statement on its tables
// (user_state, organization_state, backfill_run, backfill_request,
// provider_status, deletion_breaker, usersync_migration), on the users_sync,
// organizations_sync and memberships_sync tables it keeps, and on River's
// river_job table. Nothing else in usersync writes SQL.
//
// usersync's own tables live in the internal schema; River's in the River
// schema (Schemas). The binary uses one schema for both; an app that embeds
// usersync runs River in its own schema, so every statement on river_job
// names the River schema, never the internal one.
//
// River's API cannot add metadata to a job that is already inserted, so
// three marks are set here with UPDATE on river_job (Jobs.MarkDirty,
// Jobs.MarkLastEvent, Jobs.MarkPaused), and Jobs.WakePaused makes the jobs
// that wait for resumed deletions available. These are the only statements
// that write River's table; each runs on rows River has locked for the
// caller's transaction or on jobs that are not running.
package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schemas names the two schemas usersync works in.
type Schemas struct {
	// Internal holds usersync's own tables.
	Internal string
	// River holds River's tables; "" means Internal (the binary's layout).
	River string
}

func (s Schemas) withDefaults() Schemas {
	if s.River == "" {
		s.River = s.Internal
	}
	return s
}

// in returns the sanitized internal schema.
func (s Schemas) in() string { return pgx.Identifier{s.Internal}.Sanitize() }

// riverJob returns the sanitized name of River's job table.
func (s Schemas) riverJob() string {
	return pgx.Identifier{s.withDefaults().River, "river_job"}.Sanitize()
}

// DB is what the store's functions run statements on: a pool, a
// connection or a transaction.
type DB interface {
	Querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Querier is what the store's read-only sampling runs on.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Store gathers the statements of one database layout.
type Store struct {
	Schemas  Schemas
	Runs     Runs
	Jobs     Jobs
	Status   Status
	Breakers Breakers
}

// New returns the store of schemas s.
func New(s Schemas) *Store {
	s = s.withDefaults()
	return &Store{Schemas: s, Runs: Runs{s: s}, Jobs: Jobs{s}, Status: Status{s}, Breakers: Breakers{s}}
}

// RunState is a backfill run's status (backfill_run.status).
type RunState string

// Run states.
const (
	RunRunning   RunState = "running"
	RunCompleted RunState = "completed"
	RunFailed    RunState = "failed"
	// RunHeld is a run that listed the provider to the end but inferred no
	// deletion, because it would have marked too many users deleted; it
	// waits for an operator to confirm it.
	RunHeld RunState = "held"
)

// Metadata keys usersync sets on River jobs.
const (
	// DirtyKey marks a running sync_user job that an event for its user
	// arrived while it ran (the value is that transaction's time).
	DirtyKey = "usersync_dirty_at"
	// LastEventKey records on a sync_user job the kind of the latest event
	// that asked for it: LastEventDeleted or LastEventChanged.
	LastEventKey = "usersync_last_event"
	// EventAtKey records on a sync_user job when the latest event that
	// coalesced into it arrived (the webhook transaction's time on the
	// database clock); the job's creation is its first event's time.
	EventAtKey = "usersync_event_at"
	// PausedKey marks a sync_user job that waits because deletions by sync
	// are paused (the value is when it was set).
	PausedKey = "usersync_deletion_paused_at"
)

// Values of LastEventKey.
const (
	LastEventDeleted = "deleted"
	LastEventChanged = "changed"
)

// AsyncCommit lets tx commit without waiting for its WAL flush: for a
// transaction whose loss after commit is harmless (its job is rescued and
// run again).
func AsyncCommit(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
		return fmt.Errorf("asynchronous commit: %w", err)
	}
	return nil
}

// AsyncCommitCustomPlans are the statements that make a transaction
// AsyncCommit's, for one whose statements take arrays of any length (a
// group commit's): they also plan each of them for its own arguments
// (plan_cache_mode = force_custom_plan). A prepared statement's cached
// generic plan does not know how many ids an array holds and was chosen
// for the table's size when it was planned: for River's
// JobSetStateIfRunningMany it became two sequential scans of river_job per
// call as the table grew during a drain. They are run right after BEGIN.
func AsyncCommitCustomPlans() []string {
	return []string{"SET LOCAL synchronous_commit = off", "SET LOCAL plan_cache_mode = force_custom_plan"}
}
