package app

import (
	"context"

	"github.com/usersync/usersync/internal/migrate"
)

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
