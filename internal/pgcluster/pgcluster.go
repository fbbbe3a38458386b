// Package pgcluster starts and stops throwaway PostgreSQL clusters from the
// locally installed server binaries (initdb, pg_ctl, postgres).
//
// It is used by the test helper package pgtest and by the `usersync demo`
// command when no DATABASE_URL is configured. A cluster lives in a private
// temporary directory, listens only on 127.0.0.1 (and a Unix socket inside
// that directory) on a free TCP port, uses trust authentication for the
// superuser "postgres", and is deleted completely by Stop.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServerBinaries is returned (wrapped) by Start when initdb and pg_ctl
// cannot be found on PATH or in /usr/lib/postgresql/*/bin.
var ErrNoServerBinaries = errors.New("no PostgreSQL server binaries (initdb, pg_ctl) found on PATH or in /usr/lib/postgresql/*/bin; install PostgreSQL or set DATABASE_URL")

const (
	// superuser is the bootstrap superuser created by initdb.
	superuser = "postgres"
	// readyTimeout bounds how long Start waits for the server to accept
	// connections after launching it.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds how long Stop waits for the postmaster to exit.
	stopTimeout = 30 * time.Second
	// startAttempts is how often Start retries when the chosen port was
	// taken between picking it and the server binding it.
	startAttempts = 3
)

// debianServerGlob matches Debian/Ubuntu's versioned server directories.
// It is a variable so tests can point it elsewhere.
var debianServerGlob = "/usr/lib/postgresql/*/bin"

// Cluster is a running throwaway PostgreSQL cluster. Create one with Start
// and release it with Stop.
type Cluster struct {
	url     string
	dir     string // temporary root directory; holds data/, the socket and the log
	dataDir string
	pgCtl   string
	account *account
	logger  *slog.Logger

	proc *process // the running postmaster; nil until launched

	stopOnce sync.Once
	stopErr  error
}

// account is the unprivileged OS account the server runs as when the
// current process is root. A nil *account means "run as the current user".
type account struct {
	name     string
	uid, gid uint32
}

// process is a started postmaster.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // result of cmd.Wait; valid once exited is closed
}

// binaries holds the resolved paths of the server programs.
type binaries struct {
	initdb, pgCtl, postgres string
}

// Start initialises a new cluster in a fresh temporary directory, starts it on
// a free port on 127.0.0.1 and waits until it accepts connections.
//
// The server binaries are looked up on PATH first and otherwise in the
// highest-versioned /usr/lib/postgresql/<N>/bin. When the process runs as
// root, initdb, postgres and pg_ctl are run as the unprivileged "postgres"
// account (or "nobody" if that does not exist), because PostgreSQL refuses
// to run as root.
//
// ctx bounds initialisation and the readiness wait only; the cluster keeps
// running until Stop is called. On Linux the server is also sent SIGQUIT
// (immediate shutdown) if the process that started it dies without calling
// Stop, although the temporary directory is then left behind.
//
// logger may be nil, in which case nothing is logged.
func Start(ctx context.Context, logger *slog.Logger) (*Cluster, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	begin := time.Now()

	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	dir, err := makeTempDir(acct)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		pgCtl:   bins.pgCtl,
		account: acct,
		logger:  logger,
	}
	fail := func(err error) (*Cluster, error) {
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("pgcluster: remove %s: %w", dir, rmErr))
		}
		return nil, err
	}

	if err := c.initdb(ctx, bins.initdb); err != nil {
		return fail(err)
	}

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		err = c.launch(ctx, bins.postgres, port)
		if err == nil {
			break
		}
		if attempt < startAttempts && errors.Is(err, errPortInUse) {
			logger.Debug("pgcluster: port taken, retrying", "port", port, "attempt", attempt)
			continue
		}
		return fail(err)
	}

	logger.Info("pgcluster: started throwaway PostgreSQL cluster",
		"url", c.url, "dir", c.dir, "binaries", filepath.Dir(bins.postgres),
		"elapsed", time.Since(begin).Round(time.Millisecond))
	return c, nil
}

// URL returns the connection URL of the cluster's "postgres" database, for
// example postgres://postgres@127.0.0.1:41234/postgres?sslmode=disable.
func (c *Cluster) URL() string { return c.url }

// Stop shuts the cluster down with `pg_ctl stop -m immediate` (falling back
// to signalling the postmaster) and removes its temporary directory,
// including the data directory. It is safe to call more than once; later
// calls return the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	var errs []error
	if c.proc != nil {
		if err := c.shutdown(c.proc); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgcluster: remove %s: %w", c.dir, err))
	}
	if len(errs) == 0 {
		c.logger.Info("pgcluster: stopped throwaway PostgreSQL cluster", "dir", c.dir)
	}
	return errors.Join(errs...)
}

// shutdown stops the postmaster and waits for it to exit.
func (c *Cluster) shutdown(p *process) error {
	select {
	case <-p.exited:
		return nil // already gone
	default:
	}

	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	cmd := c.configure(exec.CommandContext(ctx, c.pgCtl, "stop", "-D", c.dataDir, "-m", "immediate", "-w"))
	out, ctlErr := cmd.CombinedOutput()
	if ctlErr != nil {
		c.logger.Warn("pgcluster: pg_ctl stop failed; signalling postmaster",
			"err", ctlErr, "output", strings.TrimSpace(string(out)))
		// SIGQUIT is what `pg_ctl stop -m immediate` sends.
		_ = p.cmd.Process.Signal(sigQuit)
	}

	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	if ctlErr != nil {
		return fmt.Errorf("pgcluster: pg_ctl stop: %w: %s", ctlErr, strings.TrimSpace(string(out)))
	}
	return fmt.Errorf("pgcluster: postmaster (pid %d) did not exit within %s; killed", p.cmd.Process.Pid, stopTimeout)
}

// initdb creates the data directory.
func (c *Cluster) initdb(ctx context.Context, initdbPath string) error {
	cmd := c.configure(exec.CommandContext(ctx, initdbPath,
		"-D", c.dataDir,
		"-A", "trust",
		"-U", superuser,
		"-E", "UTF8",
		"--locale=C",
		// Only skips flushing initdb's own output to disk; the running
		// server keeps fsync on.
		"--no-sync",
	))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: initdb %s: %w\n%s", c.dataDir, err, tail(out, 2000))
	}
	return nil
}

// errPortInUse marks a launch failure caused by the port being taken.
var errPortInUse = errors.New("port already in use")

// launch starts the postmaster on port and waits until it accepts
// connections. On failure the process is stopped again.
func (c *Cluster) launch(ctx context.Context, postgresPath string, port int) error {
	logPath := filepath.Join(c.dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("pgcluster: create server log: %w", err)
	}
	defer logFile.Close() // the child has its own copy of the descriptor

	// Deliberately not exec.CommandContext: ctx must not kill the server.
	cmd := c.configure(exec.Command(postgresPath,
		"-D", c.dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.dir,
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
	))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	c.url = fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", superuser, port)
	if err := c.waitReady(ctx, p); err != nil {
		_ = c.shutdown(p)
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("already in use")) {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("%w\nserver log:\n%s", err, tail(log, 4000))
	}
	c.proc = p
	return nil
}

// waitReady polls the server with real connections until one succeeds, the
// postmaster exits, ctx is done or readyTimeout elapses.
func (c *Cluster) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		attemptCtx, attemptCancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, c.url)
		if err == nil {
			err = conn.Ping(attemptCtx)
			_ = conn.Close(attemptCtx)
		}
		attemptCancel()
		if err == nil {
			return nil
		}
		lastErr = err

		select {
		case <-p.exited:
			return fmt.Errorf("pgcluster: postgres exited before accepting connections (%v)", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: server at %s not ready: %w (last error: %v)", c.url, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// configure makes cmd run as the cluster's server account, in the cluster
// directory, with a sanitised environment.
func (c *Cluster) configure(cmd *exec.Cmd) *exec.Cmd {
	cmd.Dir = c.dir // the server account may not be able to access our cwd
	cmd.Env = childEnv(c.account)
	cmd.SysProcAttr = sysProcAttr(c.account)
	return cmd
}

// childEnv is the environment for server processes: the current environment
// minus PG* variables (which would override our flags), with HOME/USER fixed
// up when switching accounts.
func childEnv(acct *account) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		if acct != nil && (strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=")) {
			continue
		}
		env = append(env, kv)
	}
	if acct != nil {
		env = append(env, "USER="+acct.name, "LOGNAME="+acct.name)
	}
	return env
}

// findBinaries locates initdb, pg_ctl and postgres: on PATH first, then in
// the highest-versioned Debian server directory.
func findBinaries() (binaries, error) {
	initdbPath, err1 := exec.LookPath("initdb")
	pgCtlPath, err2 := exec.LookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		// Prefer the postgres next to the (symlink-resolved) pg_ctl, which is
		// what pg_ctl itself would use; fall back to PATH.
		if resolved, err := filepath.EvalSymlinks(pgCtlPath); err == nil {
			if p := filepath.Join(filepath.Dir(resolved), "postgres"); isExecutable(p) {
				return binaries{initdb: initdbPath, pgCtl: pgCtlPath, postgres: p}, nil
			}
		}
		if p, err := exec.LookPath("postgres"); err == nil {
			return binaries{initdb: initdbPath, pgCtl: pgCtlPath, postgres: p}, nil
		}
	}

	dirs, _ := filepath.Glob(debianServerGlob) // only fails on a bad pattern
	type versioned struct {
		dir string
		n   int
	}
	var candidates []versioned
	for _, d := range dirs {
		n, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		candidates = append(candidates, versioned{d, n})
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].n > candidates[j].n })
	for _, v := range candidates {
		b := binaries{
			initdb:   filepath.Join(v.dir, "initdb"),
			pgCtl:    filepath.Join(v.dir, "pg_ctl"),
			postgres: filepath.Join(v.dir, "postgres"),
		}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) && isExecutable(b.postgres) {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("pgcluster: %w", ErrNoServerBinaries)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// serverAccount returns the account to run the server as: nil (the current
// user) unless the process is root.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var lookupErrs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			lookupErrs = append(lookupErrs, err)
			continue
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("pgcluster: parse uid of %q: %w", name, err)
		}
		gid, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("pgcluster: parse gid of %q: %w", name, err)
		}
		if uid == 0 {
			continue
		}
		return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("pgcluster: running as root, but no unprivileged account (postgres or nobody) to run PostgreSQL as: %w", errors.Join(lookupErrs...))
}

// makeTempDir creates the cluster's private root directory, owned by acct
// when it is non-nil. All parent directories must be traversable by acct.
func makeTempDir(acct *account) (string, error) {
	parents := []string{os.TempDir()}
	if acct != nil && parents[0] != "/tmp" {
		parents = append(parents, "/tmp")
	}
	var errs []error
	for _, parent := range parents {
		if acct != nil {
			if err := checkTraversable(parent, acct); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		dir, err := os.MkdirTemp(parent, "usersync-pg-*")
		if err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: create temp dir: %w", err))
			continue
		}
		if acct != nil {
			if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
				_ = os.RemoveAll(dir)
				return "", fmt.Errorf("pgcluster: chown %s to %s: %w", dir, acct.name, err)
			}
		}
		return dir, nil
	}
	return "", errors.Join(errs...)
}

// checkTraversable reports an error unless acct can search every directory
// from / down to dir.
func checkTraversable(dir string, acct *account) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: resolve %s: %w", dir, err)
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("pgcluster: resolve %s: %w", dir, err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: stat %s: %w", p, err)
		}
		if !canSearch(fi, acct) {
			return fmt.Errorf("pgcluster: directory %s is not traversable by %s (set TMPDIR to a world-accessible directory)", p, acct.name)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: pick free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgcluster: pick free port: %w", err)
	}
	return port, nil
}

// tail returns at most the last n bytes of b as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
