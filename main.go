// Command usersync keeps a users_sync table in an application's Postgres
// database in step with the users of its hosted auth provider (Stack Auth,
// Clerk, WorkOS), using River jobs in that same database. See README.md.
package main

import (
	"context"
	_ "embed"
	"os"
	"os/signal"
	"syscall"

	"github.com/usersync/usersync/internal/app"
	"github.com/usersync/usersync/internal/demo"
)

// schemaSQL is the users_sync table (docs/data-model.md), applied by `usersync migrate`.
//
//go:embed schema.sql
var schemaSQL string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], app.IO{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, SchemaSQL: schemaSQL}, demo.Command())
	stop()
	os.Exit(code)
}
