package app

import (
	"context"
	"errors"
	"flag"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/usersync/usersync/internal/config"
)

// What a command outside this package (the demo, in package demo) builds on:
// the same flag handling, exit codes, schemas and backfill steps as the
// production commands. Each is a thin exported door onto the code the
// production commands use.

// NewFlags returns the flag set of `usersync name`, whose --help prints
// usage (the command's description) and its flags.
func NewFlags(st IO, name, usage string) *flag.FlagSet { return newFlags(st, name, usage) }

// ParseFlags parses args into fs as the production commands do: --help prints
// the usage on st.Stdout and returns flag.ErrHelp (exit 0); a bad flag or a
// stray argument returns an error that makes [Main] exit 2.
func ParseFlags(fs *flag.FlagSet, args []string, st IO) error { return parse(fs, args, st) }

// UsageError wraps err so that [Main] prints it and exits 2 (bad usage).
func UsageError(err error) error { return &exitError{2, err} }

// TargetSchemas returns the schemas holding users_sync for cfg: the target
// schema of each enabled provider (Stack Auth, Clerk, WorkOS, in that order),
// or USERSYNC_SCHEMA when none is enabled.
func TargetSchemas(cfg *config.Config) []string { return targetSchemas(cfg) }

// Backfill runs `usersync backfill --wait --provider prov` on pool: it
// starts a forced full backfill of prov (or joins the run already going),
// prints its progress to w until it ends, and reports whether the run
// completed.
func Backfill(ctx context.Context, w io.Writer, env *Env, pool *pgxpool.Pool, prov string) (bool, error) {
	eng, _, err := openEngine(ctx, env, pool)
	if err != nil {
		return false, err
	}
	if eng == nil {
		return false, errors.New("no provider is configured")
	}
	defer eng.Close()
	b, err := eng.StartBackfill(ctx, prov)
	if err != nil {
		return false, err
	}
	return follow(ctx, w, b)
}
