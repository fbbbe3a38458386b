package integration_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/internal/app"
)

// bfPageSize is the number of users per backfill page, by provider (the
// largest page each provider's list API allows; docs/jobs.md: at most 1000).
func bfPageSize(prov string) int {
	switch prov {
	case "clerk":
		return 500
	case "workos":
		return 100
	default:
		return 1000
	}
}

// bfListPages returns how many pages a complete listing of the provider's
// current users takes, walking the list with the fake's own client (the
// page size usersync uses): the number of pages of a run that lists them
// without interruption. It is not always ceil(n/page size): Clerk's cursor
// lists again the users that share the last listed user's created_at
// millisecond (see provider/clerk/list.go), so a page may bring fewer new
// users than its size. Call it while no fault or latency is injected.
func (s *System) bfListPages() int {
	s.t.Helper()
	p := s.Fake.Provider()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pages, cursor := 0, ""
	for {
		page, err := p.ListUsers(ctx, cursor)
		if err != nil {
			s.t.Fatalf("list %s users with the fake's client (page %d): %v", s.Provider, pages+1, err)
		}
		pages++
		if page.Next == "" {
			return pages
		}
		if pages > 100_000 {
			s.t.Fatalf("listing %s users does not end", s.Provider)
		}
		cursor = page.Next
	}
}

// bfRun is one row of usersync.backfill_run.
type bfRun struct {
	ID                       int64
	Status                   string
	StartedAt                time.Time
	Pages                    int
	Listed, Written, Deleted int64
	Restarts                 int
	NextCursor, LastUserID   string
	Recent                   []string // the last users of the last committed page
	LastError                *string
}

// bfRuns returns every backfill run, oldest first.
func (s *System) bfRuns() []bfRun {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT id, status, started_at, pages, users_listed, users_written, users_deleted,
		restarts, coalesce(next_cursor, ''), coalesce(last_user_id, ''), recent_user_ids, last_error
		FROM `+pgx.Identifier{s.Internal}.Sanitize()+`.backfill_run ORDER BY id`)
	if err != nil {
		s.t.Fatalf("read backfill_run: %v", err)
	}
	var out []bfRun
	for rows.Next() {
		var r bfRun
		if err := rows.Scan(&r.ID, &r.Status, &r.StartedAt, &r.Pages, &r.Listed, &r.Written, &r.Deleted,
			&r.Restarts, &r.NextCursor, &r.LastUserID, &r.Recent, &r.LastError); err != nil {
			s.t.Fatalf("read backfill_run: %v", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read backfill_run: %v", err)
	}
	return out
}

// bfLastRun returns the newest backfill run, or nil.
func (s *System) bfLastRun() *bfRun {
	s.t.Helper()
	rs := s.bfRuns()
	if len(rs) == 0 {
		return nil
	}
	return &rs[len(rs)-1]
}

// bfJob is the waiting or running backfill_page job (the head of a chain).
type bfJob struct {
	ID          int64
	State       string
	Attempt     int
	Snoozes     int
	Errors      int
	Cursor      string
	RunID       string
	AttemptedAt *time.Time
	ScheduledAt time.Time
	LastErrorAt *time.Time
	// RunningFor is how long ago (database clock) the current attempt began.
	RunningFor time.Duration
}

// bfActiveJob returns the backfill_page job that is not finalized, or nil.
func (s *System) bfActiveJob() *bfJob {
	s.t.Helper()
	var j bfJob
	err := s.Pool.QueryRow(context.Background(), `SELECT id, state::text, attempt, coalesce((metadata->>'snoozes')::int, 0),
		coalesce(array_length(errors, 1), 0), coalesce(args->>'cursor', ''), coalesce(args->>'run_id', ''), attempted_at, scheduled_at,
		(errors[array_upper(errors, 1)]->>'at')::timestamptz, coalesce(now() - attempted_at, '0')
		FROM `+pgx.Identifier{s.Internal}.Sanitize()+`.river_job
		WHERE kind = 'backfill_page' AND state NOT IN ('completed', 'cancelled', 'discarded') ORDER BY id DESC LIMIT 1`).
		Scan(&j.ID, &j.State, &j.Attempt, &j.Snoozes, &j.Errors, &j.Cursor, &j.RunID, &j.AttemptedAt, &j.ScheduledAt, &j.LastErrorAt, &j.RunningFor)
	if err == pgx.ErrNoRows {
		return nil
	}
	if err != nil {
		s.t.Fatalf("read backfill_page job: %v", err)
	}
	return &j
}

// bfCount runs a count query against the database.
func (s *System) bfCount(sql string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// bfXmins returns each users_sync row's xmin (its row version).
func (s *System) bfXmins() map[string]string {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT id, xmin::text FROM `+pgx.Identifier{s.Schema, "users_sync"}.Sanitize())
	if err != nil {
		s.t.Fatalf("read xmin: %v", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, x string
		if err := rows.Scan(&id, &x); err != nil {
			s.t.Fatal(err)
		}
		out[id] = x
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// bfStatus runs `usersync status` in process.
func (s *System) bfStatus(args ...string) (int, string) {
	var out lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := app.Main(ctx, append([]string{"status"}, args...), app.IO{Stdout: &out, Stderr: &out, LookupEnv: s.lookup, SchemaSQL: schemaSQL()})
	return code, out.String()
}

type bfResult struct {
	code int
	out  string
}

// bfBackfillAsync runs `usersync backfill args...` in process in the
// background; its result arrives on the channel. It gives up after timeout.
func (s *System) bfBackfillAsync(timeout time.Duration, args ...string) <-chan bfResult {
	ch, _ := s.bfBackfillAsyncOut(timeout, args...)
	return ch
}

// bfBackfillAsyncOut is bfBackfillAsync that also gives access to the
// command's output while it runs.
func (s *System) bfBackfillAsyncOut(timeout time.Duration, args ...string) (<-chan bfResult, *lockedBuffer) {
	ch := make(chan bfResult, 1)
	out := &lockedBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		defer cancel()
		code := app.Main(ctx, append([]string{"backfill"}, args...), app.IO{Stdout: out, Stderr: out, LookupEnv: s.lookup, SchemaSQL: schemaSQL()})
		ch <- bfResult{code, out.String()}
	}()
	return ch, out
}

// bfAwait waits for a background backfill command to return.
func bfAwait(t testing.TB, ch <-chan bfResult, timeout time.Duration) bfResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("usersync backfill did not return within %s", timeout)
		return bfResult{}
	}
}

// bfBackfillWait runs `usersync backfill --wait` and fails the test unless it
// exits 0; it returns the newest run.
func (s *System) bfBackfillWait(t testing.TB, timeout time.Duration) *bfRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code, out := s.Backfill(ctx, "--wait")
	if code != 0 {
		t.Fatalf("usersync backfill --wait exited %d:\n%s", code, tail(out, 3000))
	}
	r := s.bfLastRun()
	if r == nil || r.Status != "completed" {
		t.Fatalf("backfill --wait returned 0 but the newest run is %+v\n%s", r, tail(out, 3000))
	}
	return r
}

// apiURLVar returns the name of the environment variable that points usersync
// at the fake's API.
func (s *System) apiURLVar() string {
	s.t.Helper()
	for k, v := range s.Fake.Env() {
		if strings.HasSuffix(k, "_API_URL") && v == s.Fake.URL() {
			return k
		}
	}
	s.t.Fatalf("no *_API_URL variable in the %s fake's Env()", s.Provider)
	return ""
}

// holdProxy sits between usersync and a fake's API. When armed, it holds the
// next list-users response (already read from the fake, so its data is what
// the provider had then) until released: a page fetched, not yet written.
// It never parses a body, so it works for every provider.
type holdProxy struct {
	srv *httptest.Server
	// URL is the API base URL to point usersync at: the proxy's address with
	// the fake's base path (Clerk's ends in /v1).
	URL string

	mu      sync.Mutex
	release chan struct{}
	held    chan struct{}
}

func newHoldProxy(t testing.TB, target string) *holdProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{}
	// Requests already carry the base path: forward them to the fake's host
	// as they are.
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.HasSuffix(resp.Request.URL.Path, "/users") {
			return nil
		}
		p.mu.Lock()
		release, held := p.release, p.held
		p.release, p.held = nil, nil
		p.mu.Unlock()
		if release == nil {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		close(held)
		select {
		case <-release:
			return nil
		case <-resp.Request.Context().Done():
			return resp.Request.Context().Err()
		}
	}
	p.srv = httptest.NewServer(rp)
	p.URL = p.srv.URL + u.Path
	t.Cleanup(p.srv.Close)
	return p
}

// Arm makes the proxy hold the next list response. held is closed once it
// does; release lets it through (safe to call more than once; also called
// on cleanup).
func (p *holdProxy) Arm(t testing.TB) (held <-chan struct{}, release func()) {
	rel, h := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.release, p.held = rel, h
	p.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return h, release
}
