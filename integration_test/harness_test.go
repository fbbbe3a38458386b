package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/usersync/usersync/internal/app"
	"github.com/usersync/usersync/internal/config"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

var binPath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// Test parallelism when -parallel is not given. Most of these tests wait on
// timers (River's rescue of a killed job, retry backoff, injected provider
// latency), not on the CPU, so the package runs more of them at once than
// the default GOMAXPROCS (2 on CI); every top-level test is parallel too, so
// slow tests overlap across test functions. Each System uses up to about 25
// database connections (USERSYNC_DB_MAX_CONNS ≤ 8 per usersync process plus
// River's listener, the test's pool of 4, the in-process commands' pools), a
// model seed up to about 30; at 6 the whole package peaked at about 70. The
// throwaway cluster allows 300 (pgcluster); a server named by
// TEST_DATABASE_URL or DATABASE_URL may allow only 100 (the CI server) and
// is shared with other packages' tests, so fewer run at once there.
const (
	parallelThrowawayCluster = 6
	parallelSharedServer     = 3
)

func run(m *testing.M) int {
	flag.Parse()
	if !flagSet("test.parallel") {
		n := parallelThrowawayCluster
		if os.Getenv("TEST_DATABASE_URL") != "" || os.Getenv("DATABASE_URL") != "" {
			n = parallelSharedServer
		}
		if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
			fmt.Fprintln(os.Stderr, "set -test.parallel:", err)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "usersync-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "usersync")
	build := exec.Command("go", "build", "-o", binPath, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build usersync:", err)
		return 1
	}
	return pgtest.RunMain(m)
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// fakes are the provider fakes the end-to-end tests run against, by name.
var fakes = map[string]func() fakekit.Fake{
	"stackauth": func() fakekit.Fake { return stackfake.New(stackfake.Options{}) },
	"clerk":     func() fakekit.Fake { return clerkfake.New(clerkfake.Options{}) },
	"workos":    func() fakekit.Fake { return workosfake.New(workosfake.Options{}) },
}

// providerNames returns the names of fakes, sorted, for table-driven tests.
func providerNames() []string {
	var ns []string
	for n := range fakes {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// slowTestProvider returns the one provider that a slow test whose property
// does not depend on the provider runs for: prefer, if it has a fake, else
// the first of providerNames. Tests that wait for River to rescue a job of a
// SIGKILLed worker (about a minute: RescueStuckJobsAfter plus the rescuer's
// 30 s period) use it: the rescue and the re-run of the job from its stored
// args are River's and usersync's, the same for every provider, and each
// provider's fetch, list and cursor are covered by the other tests.
func slowTestProvider(prefer string) []string {
	if _, ok := fakes[prefer]; ok {
		return []string{prefer}
	}
	return providerNames()[:1]
}

var schemaSQL = sync.OnceValue(func() string {
	b, err := os.ReadFile("../schema.sql")
	if err != nil {
		panic(err)
	}
	return string(b)
})

// System is one usersync deployment under test: its own database, a fake
// provider, and the environment that points usersync at both.
type System struct {
	t        testing.TB
	Provider string
	Fake     fakekit.Fake
	DBURL    string
	Pool     *pgxpool.Pool
	Env      map[string]string
	Schema   string
	Internal string
}

// NewSystem creates a database and a fake, and migrates the database.
// extra overrides environment variables (e.g. USERSYNC_DELETE_MODE).
func NewSystem(t testing.TB, prov string, extra map[string]string) *System {
	t.Helper()
	newFake, ok := fakes[prov]
	if !ok {
		t.Fatalf("no fake for provider %q", prov)
	}
	fake := newFake()
	t.Cleanup(fake.Close)
	url := pgtest.NewDatabase(t)
	s := &System{t: t, Provider: prov, Fake: fake, DBURL: url, Schema: "neon_identity", Internal: "usersync"}
	s.Env = map[string]string{
		"DATABASE_URL":               url,
		"USERSYNC_DB_MAX_CONNS":      "8",
		"USERSYNC_WORKERS":           "8",
		"USERSYNC_BACKFILL_INTERVAL": "0",
		"USERSYNC_LISTEN":            "127.0.0.1:0",
		"USERSYNC_LOG_FORMAT":        "json",
	}
	for k, v := range fake.Env() {
		s.Env[k] = v
	}
	for k, v := range extra {
		s.Env[k] = v
	}
	if v := s.Env["USERSYNC_SCHEMA"]; v != "" {
		s.Schema = v
	}
	s.Pool = pgtest.NewPool(t, url, 4)
	if !s.skipMigrate() {
		s.Migrate()
	}
	return s
}

func (s *System) skipMigrate() bool { return s.Env["_NO_MIGRATE"] != "" }

func (s *System) lookup(k string) (string, bool) {
	v, ok := s.Env[k]
	return v, ok
}

// Migrate runs `usersync migrate` in process.
func (s *System) Migrate() {
	s.t.Helper()
	var out bytes.Buffer
	code := app.Main(context.Background(), []string{"migrate"}, app.IO{Stdout: &out, Stderr: &out, LookupEnv: s.lookup, SchemaSQL: schemaSQL()})
	if code != 0 {
		s.t.Fatalf("migrate exited %d: %s", code, out.String())
	}
}

// Service is a running `usersync serve`.
type Service struct {
	Addr string
	stop func()
	logs *lockedBuffer
}

// Stop stops the service and waits for it.
func (sv *Service) Stop() { sv.stop() }

// Logs is what the service logged so far (JSON lines, debug level).
func (sv *Service) Logs() string { return sv.logs.String() }

// Serve starts `usersync serve` in this process; it stops on cleanup.
func (s *System) Serve(extra map[string]string) *Service {
	s.t.Helper()
	env := map[string]string{}
	for k, v := range s.Env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, true)
	if err != nil {
		s.t.Fatalf("config: %v", err)
	}
	logs := &lockedBuffer{}
	e := &app.Env{Config: cfg, Logger: app.NewLogger("json", logs, -4), SchemaSQL: schemaSQL()}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, e, false, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		s.t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		s.t.Fatal("serve did not become ready")
	}
	var once sync.Once
	sv := &Service{Addr: addr, logs: logs, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				s.t.Errorf("serve: %v", err)
			}
		})
	}}
	s.t.Cleanup(func() {
		sv.Stop()
		if s.t.Failed() {
			s.t.Logf("usersync serve (in process) logs, River's debug lines left out:\n%s", tail(withoutDebug(logs.String()), 6000))
		}
	})
	return sv
}

// Proc is a usersync binary process.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string
	logs *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logs returns what the process wrote so far.
func (p *Proc) Logs() string { return p.logs.String() }

// Kill sends SIGKILL and waits for the process to die.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate sends SIGTERM and waits for a clean exit.
func (p *Proc) Terminate(t testing.TB) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Errorf("usersync did not stop within 40s of SIGTERM")
		p.Kill()
	}
}

// Start runs the built binary with args (e.g. "serve" or "worker"). For
// serve, it waits until the server listens and sets Addr. The process is
// killed on cleanup.
func (s *System) Start(extra map[string]string, args ...string) *Proc {
	s.t.Helper()
	cmd := exec.Command(binPath, args...)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	merged := map[string]string{}
	for k, v := range s.Env {
		merged[k] = v
	}
	for k, v := range extra {
		merged[k] = v
	}
	for k, v := range merged {
		if !strings.HasPrefix(k, "_") {
			env = append(env, k+"="+v)
		}
	}
	cmd.Env = env
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start usersync: %v", err)
	}
	p := &Proc{Cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.Kill()
		}
		if s.t.Failed() {
			s.t.Logf("usersync %v logs:\n%s", args, tail(p.Logs(), 4000))
		}
	})
	if len(args) > 0 && args[0] == "serve" {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if addr := listenAddr(p.Logs()); addr != "" {
				p.Addr = addr
				return p
			}
			select {
			case <-p.done:
				s.t.Fatalf("usersync serve exited: %s", p.Logs())
			case <-time.After(20 * time.Millisecond):
			}
		}
		s.t.Fatalf("usersync serve did not start listening: %s", p.Logs())
	}
	return p
}

// withoutDebug drops the JSON log lines of level DEBUG (River's chatter).
func withoutDebug(logs string) string {
	var b strings.Builder
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, `"level":"DEBUG"`) {
			b.WriteString(line)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// listenAddr finds the "usersync serving" log line's addr.
func listenAddr(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "usersync serving" {
			return rec.Addr
		}
	}
	return ""
}

// Send posts a signed webhook about user id to the service at addr and
// returns the HTTP status.
func (s *System) Send(addr string, kind provider.EventKind, id string) int {
	s.t.Helper()
	body, h := s.Fake.Webhook(kind, id)
	return s.Post(addr, body, h)
}

// Post posts body with headers h to /webhooks/<provider>.
func (s *System) Post(addr string, body []byte, h http.Header) int {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/"+s.Provider, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Row is one users_sync row.
type Row struct {
	ID        string
	Raw       json.RawMessage
	Name      *string
	Email     *string
	CreatedAt *time.Time
	UpdatedAt *time.Time
	DeletedAt *time.Time
}

// Rows reads every users_sync row by id.
func (s *System) Rows() map[string]Row {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT id, raw_json, name, email, created_at, updated_at, deleted_at FROM `+
		pgx.Identifier{s.Schema, "users_sync"}.Sanitize())
	if err != nil {
		s.t.Fatalf("read users_sync: %v", err)
	}
	out := map[string]Row{}
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.ID, &r.Raw, &r.Name, &r.Email, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt); err != nil {
			s.t.Fatalf("read users_sync: %v", err)
		}
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read users_sync: %v", err)
	}
	return out
}

// Diff compares users_sync with the fake's users and returns the
// differences ("" when converged): every live user has a row equal to its
// profile (minus redacted keys), every other row is marked deleted (soft
// mode) or absent (hard mode).
func (s *System) Diff() string {
	s.t.Helper()
	want := s.Fake.Snapshot()
	rows := s.Rows()
	redact := map[string]bool{}
	for k := range strings.SplitSeq(s.Env["USERSYNC_REDACT"], ",") {
		if k = strings.TrimSpace(k); k != "" {
			redact[k] = true
		}
	}
	hard := s.Env["USERSYNC_DELETE_MODE"] == "hard"
	var diffs []string
	for id, raw := range want {
		r, ok := rows[id]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+id)
		case r.DeletedAt != nil:
			diffs = append(diffs, "marked deleted but live "+id)
		case !jsonEqual(r.Raw, raw, redact):
			diffs = append(diffs, "stale "+id)
		}
	}
	for id, r := range rows {
		if _, ok := want[id]; ok {
			continue
		}
		if hard {
			diffs = append(diffs, "row of deleted user still present "+id)
		} else if r.DeletedAt == nil {
			diffs = append(diffs, "deleted user not marked deleted "+id)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("… and %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "\n")
}

func jsonEqual(got, want json.RawMessage, redact map[string]bool) bool {
	var g, w map[string]any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	for k := range redact {
		delete(w, k)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

// Eventually polls cond every 25 ms until it returns "" or timeout passes;
// on timeout it fails the test with cond's last answer.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		if last = cond(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s:\n%s", what, timeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// WaitConverged waits until users_sync equals the provider.
func (s *System) WaitConverged(timeout time.Duration) {
	s.t.Helper()
	Eventually(s.t, timeout, "users_sync converges to the provider", s.Diff)
}

// JobCounts returns river_job counts by state for kind.
func (s *System) JobCounts(kind string) map[string]int {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT state::text, count(*) FROM `+pgx.Identifier{s.Internal}.Sanitize()+
		`.river_job WHERE kind = $1 GROUP BY 1`, kind)
	if err != nil {
		s.t.Fatalf("job counts: %v", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			s.t.Fatal(err)
		}
		out[st] = n
	}
	return out
}

// Backfill runs `usersync backfill --wait` in process and returns its exit
// code and output.
func (s *System) Backfill(ctx context.Context, args ...string) (int, string) {
	var out lockedBuffer
	code := app.Main(ctx, append([]string{"backfill"}, args...), app.IO{Stdout: &out, Stderr: &out, LookupEnv: s.lookup, SchemaSQL: schemaSQL()})
	return code, out.String()
}
