// Package migrate is the command layer's name for usersync's migrations,
// which package store owns (its tables, their SQL and River's migrations).
package migrate

import (
	"context"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/usersync/usersync/internal/store"
)

// Version is the version of usersync's internal tables this build expects.
const Version = store.SchemaVersion

// Plan says what to migrate (see store.Plan).
type Plan = store.Plan

// NotMigratedError says what is missing from a database that was never (or
// not fully) migrated.
type NotMigratedError = store.NotMigratedError

// Step is one named, idempotent block of SQL.
type Step = store.Step

// Run applies every migration (store.Migrate).
func Run(ctx context.Context, pool *pgxpool.Pool, plan Plan, logger *slog.Logger) error {
	return store.Migrate(ctx, pool, plan, logger)
}

// Statements returns usersync's own (non-River) migration SQL, in order.
func Statements(plan Plan) []Step { return store.MigrationSteps(plan) }

// PrintSQL writes what Run would execute (store.PrintMigrationSQL).
func PrintSQL(ctx context.Context, w io.Writer, pool *pgxpool.Pool, plan Plan) error {
	return store.PrintMigrationSQL(ctx, w, pool, plan)
}

// Check returns a *NotMigratedError when the database is not migrated
// (store.CheckMigrated).
func Check(ctx context.Context, pool *pgxpool.Pool, plan Plan) error {
	return store.CheckMigrated(ctx, pool, plan)
}
