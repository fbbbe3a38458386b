// Command usersync keeps a users_sync table in an application's Postgres
// database in step with the users of its hosted auth provider (Stack Auth,
// Clerk, WorkOS), using River jobs in that same database. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/usersync/usersync/engine"
	"github.com/usersync/usersync/internal/app"
	"github.com/usersync/usersync/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], app.IO{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, SchemaSQL: engine.SchemaSQL}, demo.Command())
	stop()
	os.Exit(code)
}
