package integration_test

// Helpers shared by the guarantee tests (docs/guarantees.md). They complement
// harness_test.go without changing its helpers.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// Exec runs sql on the test pool and fails the test on error.
func (s *System) Exec(sql string, args ...any) {
	s.t.Helper()
	if _, err := s.Pool.Exec(context.Background(), sql, args...); err != nil {
		s.t.Fatalf("exec %q: %v", firstLine(sql), err)
	}
}

// Int runs a query returning one integer.
func (s *System) Int(sql string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		s.t.Fatalf("query %q: %v", firstLine(sql), err)
	}
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// is quotes the internal schema for SQL.
func (s *System) is() string { return pgx.Identifier{s.Internal}.Sanitize() }

// table is the quoted users_sync table.
func (s *System) table() string { return pgx.Identifier{s.Schema, "users_sync"}.Sanitize() }

// SyncJobs counts sync_user jobs (any state).
func (s *System) SyncJobs() int {
	s.t.Helper()
	return s.Int(`SELECT count(*) FROM ` + s.is() + `.river_job WHERE kind = 'sync_user'`)
}

// AllJobs counts river_job rows of any kind but the periodic
// prune_user_state, which is enqueued on a timer, not by any input.
func (s *System) AllJobs() int {
	s.t.Helper()
	return s.Int(`SELECT count(*) FROM ` + s.is() + `.river_job WHERE kind <> 'prune_user_state'`)
}

// UserJob describes the newest sync_user job of one user.
type UserJob struct {
	ID       int64
	State    string
	Attempt  int
	Errors   int
	Snoozes  int
	ErrorsJS string
}

// JobOf returns the newest sync_user job for userID (ok false: none).
func (s *System) JobOf(userID string) (UserJob, bool) {
	s.t.Helper()
	var j UserJob
	err := s.Pool.QueryRow(context.Background(), `SELECT id, state::text, attempt, coalesce(array_length(errors, 1), 0),
		coalesce((metadata->>'snoozes')::int, 0), coalesce(array_to_json(errors)::text, '')
		FROM `+s.is()+`.river_job WHERE kind = 'sync_user' AND args->>'user_id' = $1 ORDER BY id DESC LIMIT 1`, userID).
		Scan(&j.ID, &j.State, &j.Attempt, &j.Errors, &j.Snoozes, &j.ErrorsJS)
	if err == pgx.ErrNoRows {
		return j, false
	}
	if err != nil {
		s.t.Fatalf("job of %s: %v", userID, err)
	}
	return j, true
}

// JobsOf counts sync_user jobs (any state) for userID.
func (s *System) JobsOf(userID string) int {
	s.t.Helper()
	return s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = 'sync_user' AND args->>'user_id' = $1`, userID)
}

// Idle reports "" when no sync_user job is waiting or running.
func (s *System) Idle() string {
	n := s.Int(`SELECT count(*) FROM ` + s.is() + `.river_job WHERE kind = 'sync_user' AND finalized_at IS NULL`)
	if n > 0 {
		return "sync_user jobs not finalized: " + strconv.Itoa(n)
	}
	return ""
}

// env returns the process environment for the binary with extra applied
// (keys starting with "_" are harness options, not passed).
func (s *System) env(extra map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	merged := map[string]string{}
	for k, v := range s.Env {
		merged[k] = v
	}
	for k, v := range extra {
		merged[k] = v
	}
	for k, v := range merged {
		if !strings.HasPrefix(k, "_") && v != unset {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// unset as a value in extra removes the variable from the environment.
const unset = "\x00unset"

// Run runs the binary with args to completion (at most 90 s) and returns
// its exit code and combined output.
func (s *System) Run(extra map[string]string, args ...string) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = s.env(extra)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		s.t.Fatalf("usersync %v did not finish within 90s: %s", args, out.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			s.t.Fatalf("run usersync %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, out.String()
}

// Alive reports whether the process is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// httpDo performs a request and returns status and body (status 0 on a
// transport error, with the error text as body).
func httpDo(req *http.Request) (int, string) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func httpGet(t testing.TB, u string, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	return httpDo(req)
}

// PostRaw posts body (as the given reader, so the caller controls
// Content-Length) with headers h and returns status and response body.
func (s *System) PostRaw(addr string, body io.Reader, h http.Header) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/"+s.Provider, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	return httpDo(req)
}

// SendAll sends a webhook for each id from n goroutines and fails the test
// unless every delivery is answered 2xx.
func (s *System) SendAll(addr string, kind provider.EventKind, ids []string, n int) {
	s.t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	codes := make([]int, len(ids))
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				body, h := s.Fake.Webhook(kind, ids[i])
				req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/"+s.Provider, bytes.NewReader(body))
				req.Header = h.Clone()
				req.Header.Set("Content-Type", "application/json")
				codes[i], _ = httpDo(req)
			}
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c/100 != 2 {
			s.t.Fatalf("webhook for %s answered %d", ids[i], c)
		}
	}
}

// MutateWebhook builds a signed delivery from a real event for id, with
// mutate applied to its decoded JSON body ("data" is the user object in the
// deliveries of every supported provider).
func (s *System) MutateWebhook(id string, mutate func(body map[string]any)) ([]byte, http.Header) {
	s.t.Helper()
	body, _ := s.Fake.Webhook(provider.EventUserChanged, id)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		s.t.Fatalf("fake webhook body: %v", err)
	}
	mutate(m)
	b, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	return b, s.Fake.SignWebhook(b, time.Now())
}

// SetDataID returns a mutation that sets data.id to v (raw JSON).
func SetDataID(v string) func(map[string]any) {
	return func(m map[string]any) {
		m["data"].(map[string]any)["id"] = json.RawMessage(v)
	}
}

// WithAPI returns the environment overrides that point usersync at base
// instead of the fake's API URL (e.g. a proxy in front of the fake).
func (s *System) WithAPI(base string) map[string]string {
	out := map[string]string{}
	for k, v := range s.Fake.Env() {
		if v == s.Fake.URL() {
			out[k] = base
		}
	}
	if len(out) == 0 {
		s.t.Fatalf("no variable of %v holds the fake's URL %s", s.Fake.Env(), s.Fake.URL())
	}
	return out
}

// GateProxy is a reverse proxy in front of a fake's API that can hold
// responses: with Hold on, each response (already produced by the fake, so
// carrying the data as of then) waits until Release.
type GateProxy struct {
	URL     string // base URL with the fake's path
	srv     *httptest.Server
	mu      sync.Mutex
	hold    bool
	release chan struct{}
	held    chan struct{} // receives one value per held response
}

// NewGateProxy starts a proxy for fakeURL; it closes on cleanup.
func NewGateProxy(t testing.TB, fakeURL string) *GateProxy {
	t.Helper()
	u, err := url.Parse(fakeURL)
	if err != nil {
		t.Fatal(err)
	}
	g := &GateProxy{release: make(chan struct{}), held: make(chan struct{}, 100)}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.ModifyResponse = func(resp *http.Response) error {
		// Read the whole body now: the data is fixed as of this moment.
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		g.mu.Lock()
		hold, rel := g.hold, g.release
		g.mu.Unlock()
		if hold {
			g.held <- struct{}{}
			<-rel
		}
		return nil
	}
	g.srv = httptest.NewServer(rp)
	t.Cleanup(func() { g.Release(); g.srv.Close() })
	g.URL = g.srv.URL + strings.TrimRight(u.Path, "/")
	return g
}

// Hold makes subsequent responses wait for Release.
func (g *GateProxy) Hold() {
	g.mu.Lock()
	g.hold = true
	g.release = make(chan struct{})
	g.mu.Unlock()
}

// Release lets held responses through and stops holding.
func (g *GateProxy) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold {
		g.hold = false
		close(g.release)
	}
}

// WaitHeld waits until a response is being held.
func (g *GateProxy) WaitHeld(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(timeout):
		t.Fatalf("no provider response was held within %s", timeout)
	}
}

// AdminConn connects to the "postgres" database of the test server (for
// ALTER DATABASE and terminating backends); closed on cleanup.
func AdminConn(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("admin connection: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// DBName returns the database name of a connection URL.
func DBName(t testing.TB, dbURL string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// logRecords parses JSON log lines (others are skipped).
func logRecords(logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}
