// Package pgtest gives tests a real, isolated PostgreSQL database.
//
// The server is taken from TEST_DATABASE_URL, else DATABASE_URL. When
// neither is set, one throwaway cluster is started per test binary from the
// local PostgreSQL server binaries (see package pgcluster), lazily on first
// use, and shared by all tests in the process. Every call to NewDatabase
// creates a fresh database on that server, so tests can run in parallel
// without interfering, and drops it again when the test finishes.
//
// Each package that uses pgtest must route its TestMain through RunMain so
// that the throwaway cluster is shut down and deleted when the binary exits:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }
//
// If no URL is set and no server binaries are installed, tests calling
// NewDatabase fail (they are not skipped).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersync/usersync/internal/pgcluster"
)

// DatabasePrefix is the name prefix of every database created by
// NewDatabase; the rest of the name is random lowercase hex.
const DatabasePrefix = "usersync_test_"

const (
	// adminMaxConns caps the shared admin pool; the CI server only allows
	// 100 connections in total.
	adminMaxConns = 2
	// setupTimeout bounds starting the cluster and opening the admin pool.
	setupTimeout = 2 * time.Minute
	// ddlTimeout bounds one CREATE/DROP DATABASE.
	ddlTimeout = time.Minute
)

// server is the process-wide state shared by all tests in a binary.
var server struct {
	once      sync.Once
	err       error
	source    string        // where the server came from, for messages
	baseURL   string        // connection string of the server (any database)
	adminPool *pgxpool.Pool // MaxConns adminMaxConns, "postgres" database
	stop      func() error  // stops the throwaway cluster; nil for env URLs
}

// setup resolves the server and opens the admin pool exactly once.
func setup() error {
	server.once.Do(func() { server.err = doSetup() })
	return server.err
}

func doSetup() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	base, source := "", ""
	for _, env := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			base, source = v, env
			break
		}
	}
	if base == "" {
		logf := func(string, ...any) {}
		if testing.Verbose() {
			logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
		}
		url, stop, err := StartCluster(ctx, logf)
		if err != nil {
			return fmt.Errorf("pgtest: TEST_DATABASE_URL and DATABASE_URL are unset and no throwaway PostgreSQL cluster could be started; "+
				"install the PostgreSQL server binaries (e.g. apt-get install postgresql) or set TEST_DATABASE_URL: %w", err)
		}
		base, source, server.stop = url, "throwaway cluster", stop
	}

	adminURL, err := withDatabase(base, "postgres")
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w", source, err)
	}
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("pgtest: parse admin URL from %s: %w", source, err)
	}
	cfg.MaxConns = adminMaxConns
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		err = fmt.Errorf("pgtest: connect to %s (%s): %w", redact(adminURL), source, err)
		if server.stop != nil {
			err = errors.Join(err, server.stop())
			server.stop = nil
		}
		return err
	}
	server.baseURL, server.source, server.adminPool = base, source, pool
	return nil
}

// RunMain runs the tests with m.Run and then closes pgtest's admin
// connections and stops and deletes the throwaway cluster, if one was
// started. It returns the exit code for os.Exit; a teardown failure turns a
// passing run into exit code 1. Call it from every TestMain of a package
// that uses pgtest:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }
func RunMain(m *testing.M) int {
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func teardown() error {
	if server.adminPool != nil {
		server.adminPool.Close()
		server.adminPool = nil
	}
	if server.stop != nil {
		stop := server.stop
		server.stop = nil
		return stop()
	}
	return nil
}

// StartCluster starts a throwaway PostgreSQL cluster from the local server
// binaries (see pgcluster.Start) and returns its URL (the "postgres"
// database, superuser "postgres", trust auth) and a function that stops it
// and deletes its data directory. Log lines are passed to logf, which may be
// nil. Unlike NewDatabase it does not depend on the testing package, so
// commands such as `usersync demo` can use it when DATABASE_URL is unset.
func StartCluster(ctx context.Context, logf func(string, ...any)) (url string, stop func() error, err error) {
	var w io.Writer = io.Discard
	if logf != nil {
		w = logfWriter(logf)
	}
	c, err := pgcluster.Start(ctx, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		return "", nil, err
	}
	return c.URL(), c.Stop, nil
}

// logfWriter adapts a printf-style function to io.Writer; slog's text
// handler writes one record per Write call.
type logfWriter func(string, ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// NewDatabase creates a fresh, empty database (named DatabasePrefix plus
// random hex, created from template1) on the shared test server and returns
// a URL-form connection string for it. The database is dropped with
// DROP DATABASE ... WITH (FORCE) in t.Cleanup, so connections still open at
// that point are terminated; register pool cleanups after calling
// NewDatabase (as NewPool does) so they run first.
//
// NewDatabase fails the test if no server is available.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatal(err)
	}

	name, err := randomName()
	if err != nil {
		t.Fatal(err)
	}
	url, err := withDatabase(server.baseURL, name)
	if err != nil {
		t.Fatalf("pgtest: build URL for database %s: %v", name, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), ddlTimeout)
	defer cancel()
	if err := createDatabase(ctx, server.adminPool, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
		defer cancel()
		if err := dropDatabase(ctx, server.adminPool, name); err != nil {
			t.Error(err)
		}
	})
	return url
}

// NewPool opens a pgx pool on url with at most maxConns connections (values
// below 1 mean 1), verifies it with a ping, and closes it in t.Cleanup. It
// fails the test on error.
func NewPool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: parse pool config: %v", err)
	}
	cfg.MaxConns = max(maxConns, 1)
	cfg.MinConns = 0

	ctx, cancel := context.WithTimeout(t.Context(), ddlTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool on %s: %v", redact(url), err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: ping %s: %v", redact(url), err)
	}
	return pool
}

// randomName returns DatabasePrefix followed by 16 random hex digits.
func randomName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pgtest: generate database name: %w", err)
	}
	return DatabasePrefix + hex.EncodeToString(b[:]), nil
}

// createDatabase creates database name, retrying briefly while the template
// database is in use by another session (SQLSTATE 55006).
func createDatabase(ctx context.Context, admin *pgxpool.Pool, name string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	for delay := 50 * time.Millisecond; ; delay *= 2 {
		_, err := admin.Exec(ctx, sql)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || delay > 2*time.Second {
			return fmt.Errorf("pgtest: create database %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: create database %s: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(delay):
		}
	}
}

// dropDatabase drops database name, terminating any remaining connections.
func dropDatabase(ctx context.Context, admin *pgxpool.Pool, name string) error {
	sql := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
	if _, err := admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", name, err)
	}
	return nil
}

// redact hides the password in a connection string for messages.
func redact(connString string) string {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil || cfg.Password == "" {
		return connString
	}
	userinfo := strings.TrimPrefix(neturl.UserPassword("", cfg.Password).String(), ":")
	for _, form := range []string{userinfo, neturl.QueryEscape(cfg.Password), cfg.Password} {
		connString = strings.ReplaceAll(connString, form, "xxxxx")
	}
	return connString
}

// CreateDatabase is NewDatabase for code without a testing.TB, such as
// runnable examples: it creates a fresh, empty database on the shared test
// server and returns its URL and a function that drops it (terminating
// connections still open). The package's TestMain must still route through
// RunMain.
func CreateDatabase(ctx context.Context) (url string, drop func() error, err error) {
	if err := setup(); err != nil {
		return "", nil, err
	}
	name, err := randomName()
	if err != nil {
		return "", nil, err
	}
	if url, err = withDatabase(server.baseURL, name); err != nil {
		return "", nil, fmt.Errorf("pgtest: build URL for database %s: %w", name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, ddlTimeout)
	defer cancel()
	if err := createDatabase(cctx, server.adminPool, name); err != nil {
		return "", nil, err
	}
	return url, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
		defer cancel()
		return dropDatabase(ctx, server.adminPool, name)
	}, nil
}
