package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/usersync/usersync/internal/config"
)

// IO is a command's surroundings.
type IO struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	SchemaSQL      string
}

// Command is one `usersync <Name>` subcommand: Summary is its line in the
// usage text, Run runs it with the arguments after its name.
type Command struct {
	Name, Summary string
	Run           func(ctx context.Context, st IO, args []string) error
}

// commands are the production commands, one file each (serve.go,
// workercmd.go, migratecmd.go, backfill.go, status.go).
func commands() []Command {
	return []Command{
		{"serve", "run the service: webhook receiver, health, metrics, River UI, and workers", runServe},
		{"worker", "run sync workers only (no HTTP); start more to scale out", runWorker},
		{"migrate", "apply River's migrations and schema.sql (idempotent)", runMigrate},
		{"backfill", "enqueue a full backfill of every configured provider, or follow the one going", runBackfill},
		{"status", "show per-provider sync health, jobs and recent errors", runStatus},
	}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Main runs the usersync command line and returns the process exit code.
// extra commands (the binary adds the demo, which lives in a package of its
// own) are listed before the production ones.
func Main(ctx context.Context, args []string, st IO, extra ...Command) int {
	cmds := append(append([]Command(nil), extra...), commands()...)
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usersync keeps a users_sync table in your Postgres in step with your auth provider's users.")
		fmt.Fprintln(w, "\nUsage: usersync <command> [flags]\n\nCommands:")
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-9s %s\n", c.Name, c.Summary)
		}
		fmt.Fprintln(w, "\nConfiguration comes from the environment (DATABASE_URL, STACK_*, USERSYNC_*); see README.md.")
		fmt.Fprintln(w, "Run 'usersync <command> --help' for a command's flags.")
	}
	if len(args) == 0 {
		usage(st.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(st.Stdout)
		return 0
	}
	for _, c := range cmds {
		if c.Name != args[0] {
			continue
		}
		err := c.Run(ctx, st, args[1:])
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return 0
		}
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			err = ee.err
		}
		if err != nil {
			fmt.Fprintf(st.Stderr, "usersync %s: %v\n", c.Name, err)
		}
		return code
	}
	fmt.Fprintf(st.Stderr, "usersync: unknown command %q\n\n", args[0])
	usage(st.Stderr)
	return 2
}

func newFlags(st IO, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("usersync "+name, flag.ContinueOnError)
	fs.SetOutput(st.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: usersync %s [flags]\n\n%s\n", name, usage)
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string, st IO) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(st.Stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return &exitError{2, nil}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func loadEnv(st IO, requireDB bool) (*Env, error) {
	cfg, err := config.Load(st.LookupEnv, requireDB)
	if err != nil {
		return nil, err
	}
	env := &Env{Config: cfg, SchemaSQL: st.SchemaSQL}
	env.Logger = redactLogger(NewLogger(cfg.LogFormat, st.Stderr, slog.LevelInfo), env.redactor())
	return env, nil
}

const migrateHint = `Run 'usersync migrate' first (or start with --migrate).`
