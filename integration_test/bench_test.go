package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// Benchmarks (figures in README.md):
//
//	go test -run '^$' -bench . -benchtime 1x ./integration_test/
//
// Each compares usersync with a baseline measured in the same run on the
// same database server, and reports the ratio.

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// BenchmarkWebhookIngest: signed webhooks posted by 32 concurrent clients to
// `serve` with workers off (each answered only after its job commits),
// against plain single-row INSERT transactions from 32 pgx clients.
func BenchmarkWebhookIngest(b *testing.B) {
	const conc = 32
	const n = 20000
	s := NewSystem(b, "stackauth", map[string]string{"USERSYNC_WORKERS": "0", "USERSYNC_DB_MAX_CONNS": "20"})
	sv := s.Serve(nil)
	bodies := make([][]byte, n)
	headers := make([]http.Header, n)
	for i := range n {
		bodies[i], headers[i] = s.Fake.Webhook(provider.EventUserChanged, newUUID())
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	client := &http.Client{Transport: tr}
	url := "http://" + sv.Addr + "/webhooks/stackauth"

	baseline := pgtest.NewPool(b, s.DBURL, conc)
	if _, err := baseline.Exec(context.Background(), `CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v text)`); err != nil {
		b.Fatal(err)
	}

	var webhookRate, insertRate float64
	b.ResetTimer()
	for range b.N {
		var next atomic.Int64
		var failed atomic.Int64
		start := time.Now()
		parallel(conc, func() {
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i]))
				req.Header = headers[i].Clone()
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					// Drain, so the connection is reused (as a provider's
					// sender keeps its connections alive).
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
		webhookRate = float64(n) / time.Since(start).Seconds()
		if failed.Load() > 0 {
			b.Fatalf("%d webhooks failed", failed.Load())
		}

		next.Store(0)
		start = time.Now()
		parallel(conc, func() {
			for next.Add(1) <= n {
				if _, err := baseline.Exec(context.Background(), `INSERT INTO bench_insert (v) VALUES ($1)`, "x"); err != nil {
					failed.Add(1)
				}
			}
		})
		insertRate = float64(n) / time.Since(start).Seconds()
	}
	b.StopTimer()
	var jobs int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM usersync.river_job WHERE kind = 'sync_user'`).Scan(&jobs); err != nil || jobs != n*b.N {
		b.Fatalf("jobs enqueued = %d (%v), want %d", jobs, err, n*b.N)
	}
	b.ReportMetric(webhookRate, "webhooks/s")
	b.ReportMetric(insertRate, "baseline-inserts/s")
	b.ReportMetric(webhookRate/insertRate, "ratio")
	b.ReportMetric(0, "ns/op")
}

func parallel(n int, fn func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	wg.Wait()
}

// BenchmarkWebhookToRowLatency: new users' webhooks at a fixed 200 events/s,
// a fake provider answering in 5 ms; latency from sending the webhook to the
// row's change notification (i.e. after its commit).
//
// The percentiles are of the steady state: a first second of events at the
// same rate, for other users, warms the pipeline (pool connections and their
// backends' caches, HTTP connections to the fake) and is not counted in
// them; its slowest event is reported as cold-max-ms.
func BenchmarkWebhookToRowLatency(b *testing.B) {
	const rate = 200
	const n = 2000
	const warm = rate // one second
	// The request budget (STACK_RATE_LIMIT, 500/s by default) would hold
	// 200 events/s back: this measures the pipeline, not the budget.
	s := NewSystem(b, "stackauth", map[string]string{"USERSYNC_WORKERS": "32", "USERSYNC_DB_MAX_CONNS": "20",
		"STACK_RATE_LIMIT": "1000000"})
	s.Fake.SetLatency(5 * time.Millisecond)
	sv := s.Serve(nil)
	newIDs := func(k int) []string {
		ids := make([]string, k)
		for i := range ids {
			ids[i] = s.Fake.CreateUser()
		}
		return ids
	}
	var cold, lat []time.Duration
	for range b.N {
		cold = measureLatency(b, s, sv.Addr, newIDs(warm), rate)
		lat = measureLatency(b, s, sv.Addr, newIDs(n), rate)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(slices.Max(cold).Microseconds())/1000, "cold-max-ms")
	b.ReportMetric(0, "ns/op")
}

func measureLatency(b *testing.B, s *System, addr string, ids []string, rate int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DBURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN neon_identity_users_sync`); err != nil {
		b.Fatal(err)
	}
	sent := make([]atomic.Int64, len(ids))
	index := map[string]int{}
	for i, id := range ids {
		index[id] = i
	}
	// Pre-sign; each webhook is sent from its own goroutine at its time.
	bodies := make([][]byte, len(ids))
	headers := make([]http.Header, len(ids))
	for i, id := range ids {
		bodies[i], headers[i] = s.Fake.Webhook(provider.EventUserChanged, id)
	}
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := range ids {
			<-tick.C
			go func(i int) {
				sent[i].Store(time.Now().UnixNano())
				if code := s.Post(addr, bodies[i], headers[i]); code != 200 {
					b.Errorf("webhook answered %d", code)
				}
			}(i)
		}
	}()
	var lat []time.Duration
	for len(lat) < len(ids) {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			b.Fatalf("after %d rows: %v", len(lat), err)
		}
		at := time.Now().UnixNano()
		var p struct{ ID string }
		_ = json.Unmarshal([]byte(note.Payload), &p)
		i, ok := index[p.ID]
		if !ok {
			continue
		}
		lat = append(lat, time.Duration(at-sent[i].Load()))
	}
	return lat
}

// BenchmarkBackfill: a full backfill of 100,000 users from the fake at zero
// latency, against a baseline of the same raw_json rows loaded with COPY and
// INSERT ... SELECT ... ON CONFLICT into a users_sync-shaped table.
func BenchmarkBackfill(b *testing.B) {
	const n = 100_000
	s := NewSystem(b, "stackauth", map[string]string{"USERSYNC_NOTIFY_CHANNEL": "neon_identity_users_sync"})
	s.Fake.Seed(n)
	s.Serve(nil)
	var rate, baseRate float64
	for range b.N {
		start := time.Now()
		if code, out := s.Backfill(context.Background(), "--wait"); code != 0 {
			b.Fatalf("backfill exited %d: %s", code, out)
		}
		rate = n / time.Since(start).Seconds()
		baseRate = baselineLoad(b, s.Pool, s.Fake.Snapshot())
	}
	var listed int64
	if err := s.Pool.QueryRow(context.Background(), `SELECT users_listed FROM usersync.backfill_run WHERE status = 'completed' ORDER BY id LIMIT 1`).Scan(&listed); err != nil || listed != n {
		b.Fatalf("run listed %d users (%v), want %d", listed, err, n)
	}
	b.ReportMetric(rate, "users/s")
	b.ReportMetric(baseRate, "baseline-rows/s")
	b.ReportMetric(rate/baseRate, "ratio")
	b.ReportMetric(0, "ns/op")
}

func baselineLoad(b *testing.B, pool *pgxpool.Pool, snap map[string]json.RawMessage) float64 {
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS bench_users; CREATE TABLE bench_users (LIKE neon_identity.users_sync INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, 0, len(snap))
	for _, raw := range snap {
		rows = append(rows, []any{string(raw)})
	}
	start := time.Now()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE bench_in (raw text) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bench_in"}, []string{"raw"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO bench_users (raw_json, id, name, email, created_at, updated_at)
			SELECT raw::jsonb, raw::jsonb->>'id', raw::jsonb->>'display_name', raw::jsonb->>'primary_email',
			       to_timestamp((raw::jsonb->>'signed_up_at_millis')::float8 / 1000), now()
			FROM bench_in
			ON CONFLICT (id) DO UPDATE SET raw_json = excluded.raw_json, name = excluded.name, email = excluded.email,
			       created_at = excluded.created_at, updated_at = excluded.updated_at
			WHERE bench_users.raw_json IS DISTINCT FROM excluded.raw_json`)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(len(snap)) / time.Since(start).Seconds()
}

// BenchmarkBackfillPeakRSS: peak resident memory of a `usersync worker`
// process backfilling 1,000,000 users (the fake runs in the test process).
func BenchmarkBackfillPeakRSS(b *testing.B) {
	const n = 1_000_000
	s := NewSystem(b, "stackauth", nil)
	s.Fake.Seed(n)
	var peakMB float64
	var rate float64
	for range b.N {
		w := s.Start(nil, "worker")
		start := time.Now()
		if code, out := s.Backfill(context.Background(), "--wait"); code != 0 {
			b.Fatalf("backfill exited %d: %s", code, out)
		}
		rate = n / time.Since(start).Seconds()
		peakMB = vmHWM(b, w.Cmd.Process.Pid)
		w.Terminate(b)
	}
	b.ReportMetric(peakMB, "peak-RSS-MB")
	b.ReportMetric(rate, "users/s")
	b.ReportMetric(0, "ns/op")
}

func vmHWM(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// noopArgs is the bare River baseline's job: nothing to do.
type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// BenchmarkDrain: a backlog of 10,000 sync_user jobs (new users, enqueued
// in one transaction as webhooks would) worked by one `usersync worker`
// process on its defaults against the fake at zero latency, until the last
// row's change notification; beside bare River (one client in the test
// process, 1000 workers, FetchCooldown 2 ms) working as many no-op jobs on
// the same database, from their commit until the last completes.
func BenchmarkDrain(b *testing.B) {
	const n = 10_000
	// No request budget to speak of (STACK_RATE_LIMIT): this measures the
	// pipeline, not the budget.
	s := NewSystem(b, "stackauth", map[string]string{"STACK_RATE_LIMIT": "1000000"})
	// The binary's defaults: workers sized for the machine, 20 connections.
	delete(s.Env, "USERSYNC_WORKERS")
	delete(s.Env, "USERSYNC_DB_MAX_CONNS")
	ids := s.Fake.Seed(n)
	ctx := context.Background()

	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	rc, err := river.NewClient(riverpgxv5.New(pgtest.NewPool(b, s.DBURL, 20)), &river.Config{
		Schema:              "usersync",
		Workers:             workers,
		Queues:              map[string]river.QueueConfig{"bench_noop": {MaxWorkers: 1000}},
		FetchCooldown:       2 * time.Millisecond,
		SkipUnknownJobCheck: true,
		Logger:              slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}

	// bare works n no-op jobs with bare River and returns its rate.
	bare := func() float64 {
		completed, cancel := rc.SubscribeConfig(&river.SubscribeConfig{ChanSize: 2 * n, Kinds: []river.EventKind{river.EventKindJobCompleted}})
		defer cancel()
		if err := rc.Start(ctx); err != nil {
			b.Fatal(err)
		}
		params := make([]river.InsertManyParams, n)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}, InsertOpts: &river.InsertOpts{Queue: "bench_noop"}}
		}
		if _, err := rc.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		timeout := time.After(5 * time.Minute)
		for got := 0; got < n; {
			select {
			case ev, ok := <-completed:
				if !ok {
					b.Fatal("River closed the subscription")
				}
				if ev.Job.Kind == "bench_noop" {
					got++
				}
			case <-timeout:
				b.Fatalf("bare River completed %d of %d no-op jobs in 5 minutes", got, n)
			}
		}
		rate := n / time.Since(start).Seconds()
		if err := rc.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		return rate
	}

	var usersRate, riverRate, cpuPerUser float64
	for range b.N {
		// Bare River before and after usersync, averaged: the machine's
		// load drifts during the run.
		before := bare()

		// usersync: the worker process is up and idle before the backlog
		// commits.
		w := s.Start(nil, "worker")
		Eventually(b, 30*time.Second, "worker running", func() string {
			if strings.Contains(w.Logs(), "usersync worker running") {
				return ""
			}
			return "no start line yet"
		})
		conn, err := pgx.Connect(ctx, s.DBURL)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `LISTEN neon_identity_users_sync`); err != nil {
			b.Fatal(err)
		}
		refs := make([]jobs.UserRef, len(ids))
		for i, id := range ids {
			refs[i] = jobs.UserRef{Provider: "stackauth", UserID: id}
		}
		if _, err := s.Pool.Exec(ctx, `TRUNCATE neon_identity.users_sync, usersync.user_state`); err != nil {
			b.Fatal(err)
		}
		tx, err := s.Pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jobs.EnqueueSyncs(ctx, tx, rc, "usersync", refs); err != nil {
			b.Fatal(err)
		}
		cpu0 := procCPU(b, w.Cmd.Process.Pid)
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		waitCtx, stop := context.WithTimeout(ctx, 5*time.Minute)
		for got := 0; got < n; got++ {
			if _, err := conn.WaitForNotification(waitCtx); err != nil {
				b.Fatalf("after %d rows: %v", got, err)
			}
		}
		usersRate = n / time.Since(start).Seconds()
		cpuPerUser = (procCPU(b, w.Cmd.Process.Pid) - cpu0).Seconds() * 1e6 / n
		stop()
		conn.Close(ctx)
		w.Terminate(b)

		riverRate = (before + bare()) / 2
	}
	if got := s.Int(`SELECT count(*) FROM neon_identity.users_sync`); got != n {
		b.Fatalf("%d rows, want %d", got, n)
	}
	b.ReportMetric(usersRate, "users/s")
	b.ReportMetric(riverRate, "river-jobs/s")
	b.ReportMetric(usersRate/riverRate, "ratio")
	b.ReportMetric(cpuPerUser, "worker-cpu-µs/user")
	b.ReportMetric(0, "ns/op")
}

// procCPU is the CPU time (user + system) process pid has used.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (which may hold spaces).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
