package pgcluster

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testLogger sends slog output to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	begin := time.Now()
	c, err := Start(ctx, testLogger(t))
	if errors.Is(err, ErrNoServerBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("cluster started in %s at %s", time.Since(begin).Round(time.Millisecond), c.URL())

	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		_ = c.Stop()
		t.Fatalf("connect: %v", err)
	}
	var maxConns, fsync, sharedBuffers, listen string
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections'), current_setting('fsync'),
		current_setting('shared_buffers'), current_setting('listen_addresses')`).Scan(&maxConns, &fsync, &sharedBuffers, &listen)
	_ = conn.Close(ctx)
	if err != nil {
		_ = c.Stop()
		t.Fatalf("query settings: %v", err)
	}
	if maxConns != "300" || fsync != "on" || sharedBuffers != "128MB" || listen != "127.0.0.1" {
		t.Errorf("settings: max_connections=%s fsync=%s shared_buffers=%s listen_addresses=%s", maxConns, fsync, sharedBuffers, listen)
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after Stop (stat err: %v)", c.dir, err)
	}
	shortCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(shortCtx, c.URL()); err == nil {
		_ = conn.Close(ctx)
		t.Errorf("server still accepts connections after Stop")
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestNoBinaries(t *testing.T) {
	// Not parallel: changes PATH and debianServerGlob for the process.
	// Sequential top-level tests finish before parallel ones resume.
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	saved := debianServerGlob
	debianServerGlob = filepath.Join(empty, "*", "bin")
	t.Cleanup(func() { debianServerGlob = saved })

	_, err := Start(t.Context(), nil)
	if !errors.Is(err, ErrNoServerBinaries) {
		t.Fatalf("Start without binaries: err = %v, want ErrNoServerBinaries", err)
	}
	want := "no PostgreSQL server binaries (initdb, pg_ctl) found on PATH or in /usr/lib/postgresql/*/bin; install PostgreSQL or set DATABASE_URL"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestFindBinariesPrefersPath(t *testing.T) {
	t.Parallel()
	b, err := findBinaries()
	if errors.Is(err, ErrNoServerBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.initdb, b.pgCtl, b.postgres} {
		if !isExecutable(p) {
			t.Errorf("%s is not executable", p)
		}
	}
}
