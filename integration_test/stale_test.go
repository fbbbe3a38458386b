package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// canonical returns raw re-encoded with sorted keys, so that a jsonb value
// read back from Postgres compares equal to the provider's bytes.
func canonical(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid JSON: " + string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// addAudit installs a trigger that records every row version of users_sync
// (insert, update, delete) with the fetch token of the write: the start of
// the attempt of the sync_user job completed in the same transaction.
func (s *System) addAudit() {
	s.t.Helper()
	s.Exec(fmt.Sprintf(`
CREATE TABLE public.users_sync_audit (
  seq bigserial PRIMARY KEY, op text NOT NULL, id text NOT NULL, raw jsonb, deleted boolean, fetched_at timestamptz
);
CREATE FUNCTION public.users_sync_audit() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  INSERT INTO public.users_sync_audit (op, id, raw, deleted, fetched_at)
  VALUES (TG_OP, r.id, r.raw_json, r.deleted_at IS NOT NULL,
    -- The token of the write: the attempted_at of the sync_user job this
    -- transaction completed (the worker completes it before writing).
    (SELECT j.attempted_at FROM %[1]s.river_job j WHERE j.xmin = pg_current_xact_id()::xid
       AND j.kind = 'sync_user' AND j.args->>'user_id' = r.id AND j.state = 'completed'));
  RETURN NULL;
END $f$;
CREATE TRIGGER users_sync_audit AFTER INSERT OR UPDATE OR DELETE ON %[2]s
  FOR EACH ROW EXECUTE FUNCTION public.users_sync_audit();`, s.is(), s.table(), quoteLit(s.Provider)))
}

func quoteLit(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

type auditRow struct {
	Seq       int64
	Op, ID    string
	Raw       []byte
	Deleted   bool
	FetchedAt *time.Time
}

func (s *System) audit() []auditRow {
	s.t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT seq, op, id, raw, deleted, fetched_at FROM public.users_sync_audit ORDER BY seq`)
	if err != nil {
		s.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[auditRow])
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// versionLog remembers, per user, the sequence of profiles the provider
// had, so a stored raw_json can be mapped to how new it is.
type versionLog struct {
	mu  sync.Mutex
	idx map[string]map[string]int // id → canonical raw → version
	n   map[string]int
}

func newVersionLog() *versionLog {
	return &versionLog{idx: map[string]map[string]int{}, n: map[string]int{}}
}

func (v *versionLog) record(id string, raw json.RawMessage) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.idx[id] == nil {
		v.idx[id] = map[string]int{}
	}
	c := canonical(raw)
	if _, ok := v.idx[id][c]; !ok {
		v.n[id]++
		v.idx[id][c] = v.n[id]
	}
}

func (v *versionLog) version(id string, raw []byte) (int, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.idx[id][canonical(raw)]
	return n, ok
}

// TestNoStaleOverwriteAcrossProcesses (docs/guarantees.md §3): two `worker` processes and a
// `serve` process (with workers) race on the same users while the provider
// changes them and webhooks (with duplicates) flow. Every row version is
// audited by a trigger: per user, the fetch token never goes backwards, no
// version ever holds older provider data than the one it replaced (not even
// for a moment, when fetches overlap), a deleted user is never brought back
// (the fake never restores one), and the table converges.
func TestNoStaleOverwriteAcrossProcesses(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			s.addAudit()
			versions := newVersionLog()
			ids := s.Fake.Seed(12)
			snap := s.Fake.Snapshot()
			for _, id := range ids {
				versions.record(id, snap[id])
			}
			s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			s.Start(map[string]string{"USERSYNC_WORKERS": "4"}, "worker")
			sv := s.Start(map[string]string{"USERSYNC_WORKERS": "2"}, "serve")
			s.Fake.SetLatency(5 * time.Millisecond)

			var (
				mu          sync.Mutex // serialises a change at the fake with recording it
				deleted     = map[string]bool{}
				wg          sync.WaitGroup
				stop        = time.Now().Add(6 * time.Second)
				done        atomic.Bool // set once the load has run long enough
				bad         = make(chan string, 100)
				unavailable atomic.Int64
			)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 7))
					for !done.Load() {
						id := ids[rng.IntN(len(ids))]
						kind := provider.EventUserChanged
						mu.Lock()
						switch n := rng.IntN(100); {
						case n < 60 && !deleted[id]:
							s.Fake.UpdateUser(id)
							versions.record(id, s.Fake.Snapshot()[id])
						case n < 61 && !deleted[id] && len(deleted) < 3:
							s.Fake.DeleteUser(id)
							deleted[id] = true
						}
						if deleted[id] {
							kind = provider.EventUserDeleted
						}
						body, h := s.Fake.Webhook(kind, id)
						mu.Unlock()
						// Deliveries may be duplicated (provider retries), and a 503
						// is retried as a provider would.
						for range 1 + rng.IntN(2) {
							code := s.Post(sv.Addr, body, h)
							for try := 0; code == 503 && try < 5; try++ {
								unavailable.Add(1)
								time.Sleep(100 * time.Millisecond) // the provider's retry delay
								code = s.Post(sv.Addr, body, h)
							}
							if code != 200 {
								select {
								case bad <- fmt.Sprintf("webhook for %s answered %d", id, code):
								default:
								}
							}
						}
					}
				}()
			}
			// Operators may insert sync_user jobs with SQL (docs/jobs.md): such jobs
			// bypass River's uniqueness, so several syncs of one user run at
			// once in different processes and finish in any order.
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(99, 7))
				for !done.Load() {
					id := ids[rng.IntN(len(ids))]
					if _, err := s.Pool.Exec(context.Background(), `INSERT INTO `+s.is()+`.river_job (kind, queue, args, max_attempts)
						SELECT 'sync_user', $1, json_build_object('provider', $2::text, 'user_id', $3::text), 30 FROM generate_series(1, 3)`,
						"sync_"+s.Provider, s.Provider, id); err != nil {
						select {
						case bad <- "insert jobs with SQL: " + err.Error():
						default:
						}
						return
					}
					time.Sleep(20 * time.Millisecond) // pacing of the load, not synchronisation
				}
			}()
			// The load runs for 6 s and, on a slow machine, until the table
			// has seen enough row versions for the race to mean something
			// (checked below), for at most a minute.
			for time.Now().Before(stop) || s.Int(`SELECT count(*) FROM public.users_sync_audit WHERE op <> 'DELETE'`) < 4*len(ids) {
				if time.Now().After(stop.Add(time.Minute)) {
					break
				}
				time.Sleep(100 * time.Millisecond) // polling interval of the condition above
			}
			done.Store(true)
			wg.Wait()
			close(bad)
			for msg := range bad {
				t.Fatal(msg)
			}
			if n := unavailable.Load(); n > 0 {
				t.Logf("%d deliveries answered 503 and were retried", n)
			}
			s.Fake.ClearFaults()
			s.WaitConverged(30 * time.Second)
			Eventually(t, 30*time.Second, "no sync job left", s.Idle)

			var procs int
			if err := s.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT a) FROM `+s.is()+`.river_job, unnest(attempted_by) a
				WHERE kind = 'sync_user'`).Scan(&procs); err != nil {
				t.Fatal(err)
			}
			if procs < 2 {
				t.Errorf("sync jobs were worked by %d process(es); the race needs several", procs)
			}

			type last struct {
				fetched *time.Time
				version int
				deleted bool
			}
			prev := map[string]last{}
			changes := 0
			for _, a := range s.audit() {
				if a.Op == "DELETE" {
					t.Errorf("audit %d: row %s removed in soft mode", a.Seq, a.ID)
					continue
				}
				changes++
				if a.FetchedAt == nil {
					t.Errorf("audit %d: %s written without a fetch token", a.Seq, a.ID)
					continue
				}
				v, ok := versions.version(a.ID, a.Raw)
				if !ok {
					t.Errorf("audit %d: %s holds a profile the provider never had: %s", a.Seq, a.ID, tail(string(a.Raw), 200))
					continue
				}
				if p, ok := prev[a.ID]; ok {
					if a.FetchedAt.Before(*p.fetched) {
						t.Errorf("audit %d: %s replaced data fetched at %s by data fetched at %s (stale overwrite)",
							a.Seq, a.ID, p.fetched.Format(time.RFC3339Nano), a.FetchedAt.Format(time.RFC3339Nano))
					}
					if v < p.version {
						// Fetches that overlap in time may see the provider's
						// versions in either order: such a write is ordered by the
						// provider's updated_at, or not applied at all. An app
						// reading the table must never see an older profile.
						t.Errorf("audit %d: %s went from provider version %d back to %d", a.Seq, a.ID, p.version, v)
					}
					if p.deleted && !a.Deleted {
						t.Errorf("audit %d: deleted user %s brought back", a.Seq, a.ID)
					}
				}
				prev[a.ID] = last{a.FetchedAt, v, a.Deleted}
			}
			if changes < 3*len(ids) {
				t.Errorf("only %d row versions for %d users: the race did not exercise updates", changes, len(ids))
			}
			// The trigger saw the token the writing statement stored.
			for id, p := range prev {
				var f time.Time
				if err := s.Pool.QueryRow(context.Background(), `SELECT fetched_at FROM `+s.is()+`.user_state WHERE provider = $1 AND user_id = $2`,
					s.Provider, id).Scan(&f); err != nil {
					t.Fatal(err)
				}
				if f.Before(*p.fetched) {
					t.Errorf("%s: user_state.fetched_at %s older than the audited token %s", id, f, p.fetched)
				}
			}
			for id := range deleted {
				if r, ok := s.Rows()[id]; ok && r.DeletedAt == nil {
					t.Errorf("deleted user %s not marked deleted", id)
				}
			}
		})
	}
}

// TestEventDuringRunningSyncNotLost (docs/guarantees.md §3): a webhook that arrives while a
// sync of the same user is running (its provider response already read,
// with the old profile) is not lost: the user ends up with the newer
// profile.
func TestEventDuringRunningSyncNotLost(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			gate := NewGateProxy(t, s.Fake.URL())
			sv := s.Serve(s.WithAPI(gate.URL))
			id := s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			s.WaitConverged(10 * time.Second)

			gate.Hold()
			s.Fake.UpdateUser(id)
			v1 := s.Fake.Snapshot()[id]
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			gate.WaitHeld(t, 10*time.Second) // the sync has read v1 and is waiting

			s.Fake.UpdateUser(id)
			v2 := s.Fake.Snapshot()[id]
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook during the running sync answered %d", code)
			}
			if j, _ := s.JobOf(id); j.State != "running" {
				t.Fatalf("the first sync is %q, not running: the test would prove nothing", j.State)
			}
			gate.Release()

			Eventually(t, 15*time.Second, "row holds the profile changed during the running sync", func() string {
				r, ok := s.Rows()[id]
				switch {
				case !ok:
					return "no row"
				case canonical(r.Raw) == canonical(v2):
					return ""
				case canonical(r.Raw) == canonical(v1):
					return "row holds the profile the running sync read (event lost?)"
				default:
					return "row holds another profile: " + tail(string(r.Raw), 200)
				}
			})
			Eventually(t, 10*time.Second, "no sync job left", s.Idle)
		})
	}
}

// TestBurstCoalesces (docs/guarantees.md §3; docs/jobs.md): 100 webhooks for one user cost far fewer
// than 100 provider fetches, and the last change still lands.
func TestBurstCoalesces(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			sv := s.Serve(nil)
			id := s.Fake.CreateUser()
			s.Fake.SetLatency(200 * time.Millisecond)
			before := s.Fake.Requests()
			burst := make([]string, 50)
			for i := range burst {
				burst[i] = id
			}
			s.SendAll(sv.Addr, provider.EventUserChanged, burst, 20)
			s.Fake.UpdateUser(id)
			s.SendAll(sv.Addr, provider.EventUserChanged, burst, 20)
			s.WaitConverged(20 * time.Second)
			Eventually(t, 20*time.Second, "no sync job left", s.Idle)
			fetches := s.Fake.Requests() - before
			jobs := s.JobsOf(id)
			t.Logf("100 webhooks → %d sync_user jobs, %d provider requests", jobs, fetches)
			if fetches > 10 || jobs > 10 {
				t.Errorf("100 webhooks for one user cost %d provider requests and %d jobs; want at most 10 each", fetches, jobs)
			}
		})
	}
}
