// Command usersync keeps a users_sync table in an application's Postgres
// database in step with the users of its hosted auth provider (Stack Auth,
// Clerk, WorkOS), using River jobs in that same database. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/usersync/usersync/internal/app"
	"github.com/usersync/usersync/internal/demo"
	"github.com/usersync/usersync/usersync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], app.IO{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, SchemaSQL: usersync.SchemaSQL}, demo.Command())
	stop()
	os.Exit(code)
}
