package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed internal.sql
var internalSQL string

// SchemaVersion is the version of usersync's internal tables this build
// expects. Version 2 added user_state's ordering and tombstone columns, held
// backfill runs and the deletion breaker; version 3 the operators' backfill
// requests; version 4 the providers' shared request budgets (rate_limit);
// version 5 organizations (organization_state, backfill_run.kind).
const SchemaVersion = 5

// lockKey is the advisory lock that serializes concurrent migrations.
const lockKey = 0x75737273796e63 // "usrsync"

// Plan says what to migrate.
type Plan struct {
	// InternalSchema holds usersync's own tables.
	InternalSchema string
	// RiverSchema holds River's tables; "" means InternalSchema (the
	// binary's layout).
	RiverSchema string
	// SkipRiver leaves River's migrations to the application: Migrate
	// neither creates RiverSchema nor migrates River's tables (CheckMigrated
	// still requires them).
	SkipRiver bool
	// TargetSchemas each get a users_sync table (one per enabled provider).
	TargetSchemas []string
	// SchemaSQL is the content of schema.sql.
	SchemaSQL string
	// Organizations also creates organizations_sync and memberships_sync
	// in each target schema (OrganizationsSQL; USERSYNC_ORGANIZATIONS=on).
	Organizations bool
}

// OrganizationsSQL creates a target schema's organizations_sync and
// memberships_sync tables (docs/data-model.md, "Organizations"). Run with
// search_path set to the target schema; every statement is idempotent.
const OrganizationsSQL = `CREATE TABLE IF NOT EXISTS organizations_sync (
  raw_json   jsonb NOT NULL,       -- the provider's full organization object
  id         text  NOT NULL PRIMARY KEY,
  name       text,
  created_at timestamptz,
  updated_at timestamptz,          -- the provider's updated_at, else when this row's content last changed
  deleted_at timestamptz           -- set when the organization is deleted at the provider
);
CREATE INDEX IF NOT EXISTS organizations_sync_deleted_at_idx ON organizations_sync (deleted_at);
CREATE TABLE IF NOT EXISTS memberships_sync (
  raw_json        jsonb NOT NULL,  -- the provider's membership object
  organization_id text  NOT NULL,
  user_id         text  NOT NULL,
  role            text,            -- the provider's role key; NULL for Stack Auth
  created_at      timestamptz,
  updated_at      timestamptz,
  deleted_at      timestamptz,
  PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_sync_user_id_idx ON memberships_sync (user_id);
`

// NotMigratedError says what is missing from a database that was never (or
// not fully) migrated.
type NotMigratedError struct{ Missing string }

func (e *NotMigratedError) Error() string {
	return "database is not migrated (" + e.Missing + "): run `usersync migrate` first"
}

// Schemas are the plan's internal and River schemas.
func (p Plan) Schemas() Schemas {
	return Schemas{Internal: p.InternalSchema, River: p.RiverSchema}.withDefaults()
}

// Migrate applies every migration: River's (in the River schema) and
// usersync's. It is idempotent and safe when several processes run it at
// once: they take turns on an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, plan Plan, logger *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must be released even if ctx is done.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey))
	}()

	sc := plan.Schemas()
	schemas := []string{sc.Internal}
	if !plan.SkipRiver {
		schemas = append(schemas, sc.River)
	}
	for _, schema := range schemas {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrate: create schema %s: %w", schema, err)
		}
	}
	if !plan.SkipRiver {
		m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: sc.River, Logger: logger})
		if err != nil {
			return fmt.Errorf("migrate: river: %w", err)
		}
		res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("migrate: river migrations: %w", err)
		}
		for _, v := range res.Versions {
			logger.Info("applied River migration", "version", v.Version, "name", v.Name)
		}
	}
	for _, step := range MigrationSteps(plan) {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, step.SQL)
			return err
		}); err != nil {
			return fmt.Errorf("migrate: %s: %w", step.Name, err)
		}
	}
	logger.Info("database migrated", "internal_schema", plan.InternalSchema, "target_schemas", plan.TargetSchemas)
	return nil
}

// Step is one named, idempotent block of SQL.
type Step struct {
	Name string
	SQL  string
}

// MigrationSteps returns usersync's own (non-River) migration SQL, in order.
func MigrationSteps(plan Plan) []Step {
	is := pgx.Identifier{plan.InternalSchema}.Sanitize()
	steps := []Step{{
		Name: "usersync internal tables in " + plan.InternalSchema,
		SQL: "SET LOCAL search_path TO " + is + ";\n" + internalSQL +
			fmt.Sprintf("\nINSERT INTO usersync_migration (version) VALUES (%d) ON CONFLICT DO NOTHING;\n", SchemaVersion),
	}}
	for _, s := range plan.TargetSchemas {
		ts := pgx.Identifier{s}.Sanitize()
		steps = append(steps, Step{
			Name: "users_sync in " + s,
			SQL:  "CREATE SCHEMA IF NOT EXISTS " + ts + ";\nSET LOCAL search_path TO " + ts + ";\n" + plan.SchemaSQL,
		})
		if plan.Organizations {
			steps = append(steps, Step{
				Name: "organizations_sync and memberships_sync in " + s,
				SQL:  "SET LOCAL search_path TO " + ts + ";\n" + OrganizationsSQL,
			})
		}
	}
	return steps
}

// PrintMigrationSQL writes what Migrate would execute: River's pending migrations (all of
// them when pool is nil or the database cannot be read) and usersync's SQL.
func PrintMigrationSQL(ctx context.Context, w io.Writer, pool *pgxpool.Pool, plan Plan) error {
	sc := plan.Schemas()
	is := pgx.Identifier{sc.Internal}.Sanitize()
	rs := pgx.Identifier{sc.River}.Sanitize()
	fmt.Fprintf(w, "-- usersync migrate: internal schema %s, target schema(s) %s\n", plan.InternalSchema, strings.Join(plan.TargetSchemas, ", "))
	fmt.Fprintf(w, "SELECT pg_advisory_lock(%d);\nCREATE SCHEMA IF NOT EXISTS %s;\n", int64(lockKey), is)
	if rs != is {
		fmt.Fprintf(w, "CREATE SCHEMA IF NOT EXISTS %s;\n", rs)
	}
	fmt.Fprintln(w)
	var driver *riverpgxv5.Driver
	if pool != nil {
		driver = riverpgxv5.New(pool)
	} else {
		driver = riverpgxv5.New(nil)
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: sc.River, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	var versions []rivermigrate.Migration
	pending := false
	if pool != nil {
		res, err := m.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{DryRun: true})
		if err == nil {
			pending = true
			for _, v := range res.Versions {
				fmt.Fprintf(w, "-- River migration %03d %s\n%s\n", v.Version, v.Name, strings.TrimSpace(v.SQL))
			}
			if len(res.Versions) == 0 {
				fmt.Fprintln(w, "-- River migrations: none pending")
			}
		}
	}
	if !pending {
		versions = m.AllVersions()
		for _, v := range versions {
			fmt.Fprintf(w, "-- River migration %03d %s\nSET search_path TO %s;\n%s\n", v.Version, v.Name, rs, strings.TrimSpace(v.SQLUp))
		}
	}
	for _, s := range MigrationSteps(plan) {
		fmt.Fprintf(w, "\n-- %s\nBEGIN;\n%s\nCOMMIT;\n", s.Name, strings.TrimSpace(s.SQL))
	}
	fmt.Fprintf(w, "\nSELECT pg_advisory_unlock(%d);\n", int64(lockKey))
	return nil
}

// CheckMigrated returns a *NotMigratedError when River's tables, usersync's
// tables or a target users_sync table are missing or out of date.
func CheckMigrated(ctx context.Context, pool *pgxpool.Pool, plan Plan) error {
	sc := plan.Schemas()
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: sc.River, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		if isUndefinedTable(err) {
			return &NotMigratedError{Missing: "River tables in schema " + sc.River}
		}
		return fmt.Errorf("check River migrations: %w", err)
	}
	if !res.OK {
		return &NotMigratedError{Missing: "River migrations in schema " + sc.River + ": " + strings.Join(res.Messages, "; ")}
	}
	var v *int
	err = pool.QueryRow(ctx, "SELECT max(version) FROM "+pgx.Identifier{plan.InternalSchema, "usersync_migration"}.Sanitize()).Scan(&v)
	if err != nil {
		if isUndefinedTable(err) {
			return &NotMigratedError{Missing: "usersync tables in schema " + plan.InternalSchema}
		}
		return fmt.Errorf("check usersync migrations: %w", err)
	}
	if v == nil || *v < SchemaVersion {
		return &NotMigratedError{Missing: fmt.Sprintf("usersync tables at version %d", SchemaVersion)}
	}
	for _, s := range plan.TargetSchemas {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{s, "users_sync"}.Sanitize()).Scan(&ok); err != nil {
			return fmt.Errorf("check %s.users_sync: %w", s, err)
		}
		if !ok {
			return &NotMigratedError{Missing: "table " + s + ".users_sync"}
		}
		if !plan.Organizations {
			continue
		}
		for _, tbl := range []string{"organizations_sync", "memberships_sync"} {
			if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{s, tbl}.Sanitize()).Scan(&ok); err != nil {
				return fmt.Errorf("check %s.%s: %w", s, tbl, err)
			}
			if !ok {
				return &NotMigratedError{Missing: "table " + s + "." + tbl + " (USERSYNC_ORGANIZATIONS=on)"}
			}
		}
	}
	return nil
}

func isUndefinedTable(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && (pgErr.SQLState() == "42P01" || pgErr.SQLState() == "3F000")
}
