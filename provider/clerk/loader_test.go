package clerk_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// gate holds every request of a client's transport until the test lets it
// through, and tells the test which requests arrived: it makes the loader's
// batching deterministic (ids queue up exactly while the gate is shut).
type gate struct {
	arrived chan *held
	opened  chan struct{} // closed: every request goes through
	once    sync.Once

	mu   sync.Mutex
	seen []*http.Request
}

// held is one request waiting at the gate.
type held struct {
	req     *http.Request
	release chan struct{}
}

func newGate() *gate {
	return &gate{arrived: make(chan *held, 10000), opened: make(chan struct{})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (g *gate) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		g.mu.Lock()
		g.seen = append(g.seen, req)
		g.mu.Unlock()
		h := &held{req: req, release: make(chan struct{})}
		g.arrived <- h
		select {
		case <-h.release:
		case <-g.opened:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		return rt.RoundTrip(req)
	})
}

// next returns the next request to arrive at the gate (it stays held).
func (g *gate) next(t *testing.T) *held {
	t.Helper()
	select {
	case h := <-g.arrived:
		return h
	case <-time.After(30 * time.Second):
		t.Fatal("no request arrived at the gate")
		return nil
	}
}

// let lets one held request through.
func (h *held) let() { close(h.release) }

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// requests returns every request that reached the gate.
func (g *gate) requests() []*http.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*http.Request(nil), g.seen...)
}

// waitFor polls cond until it holds (a condition, not a duration, is awaited).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gatedFake returns a fake and a client of it whose requests pass the gate.
func gatedFake(t *testing.T) (*clerkfake.Fake, *clerk.Client, *gate) {
	t.Helper()
	g := newGate()
	f := clerkfake.New(clerkfake.Options{WrapTransport: g.wrap})
	t.Cleanup(f.Close)
	t.Cleanup(g.open)
	return f, f.Provider().(*clerk.Client), g
}

type result struct {
	u   provider.User
	err error
}

// fetchAll starts one FetchUser per id and returns a function that waits for
// them and returns their results in the order of ids.
func fetchAll(ctx context.Context, c *clerk.Client, ids []string) func() []result {
	out := make([]result, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			u, err := c.FetchUser(ctx, id)
			out[i] = result{u, err}
		})
	}
	return func() []result { wg.Wait(); return out }
}

// occupySlots sends two lone lookups and holds them at the gate, so that the
// ids fetched next queue up; it returns a function that waits for their
// results, and the two held requests.
func occupySlots(t *testing.T, c *clerk.Client, g *gate, ids [2]string) (func() []result, [2]*held) {
	t.Helper()
	wait := fetchAll(context.Background(), c, ids[:])
	var hs [2]*held
	for i := range hs {
		hs[i] = g.next(t)
		if r := hs[i].req; r.URL.RawQuery != "" {
			t.Fatalf("a lone lookup was sent as %s, want GET /users/{id}", r.URL)
		}
	}
	return wait, hs
}

// loaderGoroutines counts the goroutines running the loader's code.
func loaderGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("clerk.(*loader).run")) {
			n++
		}
	}
	return n
}

func checkNoLoaderGoroutines(t *testing.T, c *clerk.Client) {
	t.Helper()
	waitFor(t, "the loader to go idle", func() bool { return clerk.LoaderIdle(c) })
	waitFor(t, "the loader's goroutines to end", func() bool { return loaderGoroutines() == 0 })
}

// sameUser reports whether two lookups gave the same user, field by field.
func sameUser(a, b provider.User) bool {
	return reflect.DeepEqual(a, b)
}

// TestLoaderCoalesces: concurrent FetchUser calls share batched lookups of
// at most 100 ids (limit = the number of ids); each caller gets exactly what
// a lone lookup of its id gives, deleted users included (confirmed by the
// single-user GET), and the fake sees far fewer requests than callers.
func TestLoaderCoalesces(t *testing.T) {
	f, c, g := gatedFake(t)
	ids := f.Seed(300)
	gone := map[string]bool{}
	for i := 5; i < len(ids); i += 29 {
		if !f.DeleteUser(ids[i]) {
			t.Fatalf("DeleteUser(%s) = false", ids[i])
		}
		gone[ids[i]] = true
	}
	// The slots are held by the first two ids (both live).
	waitFirst, _ := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
	rest := ids[2:]
	wait := fetchAll(context.Background(), c, rest)
	waitFor(t, "every id to queue", func() bool { return clerk.LoaderQueued(c) == len(rest) })
	before := f.Requests()
	g.open()
	results := append(waitFirst(), wait()...)
	checkNoLoaderGoroutines(t, c)

	goneInBatches := 0
	for _, id := range rest {
		if gone[id] {
			goneInBatches++
		}
	}
	// 2 lone lookups, 298 ids in 3 lists (100, 100, 98), and one single
	// GET for each deleted id, absent from its list.
	wantRequests := 2 + 3 + goneInBatches
	if got := f.Requests(); got != int64(wantRequests) {
		t.Errorf("the fake saw %d requests for %d users, want %d", got, len(ids), wantRequests)
	}
	if before != 0 {
		t.Errorf("requests reached the fake through a shut gate: %d", before)
	}
	var sizes []int
	for _, r := range g.requests() {
		if r.URL.Path != "/v1/users" {
			continue
		}
		q := r.URL.Query()
		n := len(q["user_id"])
		sizes = append(sizes, n)
		if q.Get("limit") != strconv.Itoa(n) {
			t.Errorf("list of %d ids sent limit=%q", n, q.Get("limit"))
		}
		for k := range q {
			if k != "user_id" && k != "limit" {
				t.Errorf("batched lookup sends %s=%q", k, q.Get(k))
			}
		}
	}
	if !reflect.DeepEqual(sizes, []int{100, 100, 98}) {
		t.Errorf("batch sizes = %v, want [100 100 98]", sizes)
	}

	snap := f.Snapshot()
	ref := f.Provider().(*clerk.Client)
	for i, id := range ids {
		r := results[i]
		if gone[id] {
			if !errors.Is(r.err, provider.ErrUserNotFound) {
				t.Errorf("FetchUser(deleted %s) = %v, want ErrUserNotFound", id, r.err)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("FetchUser(%s): %v", id, r.err)
		}
		if !bytes.Equal(r.u.Raw, snap[id]) {
			t.Errorf("user %s: Raw differs from the fake's Snapshot", id)
		}
		single, err := clerk.FetchOne(context.Background(), ref, id)
		if err != nil {
			t.Fatalf("lone lookup of %s: %v", id, err)
		}
		if !sameUser(r.u, single) {
			t.Errorf("user %s: batched %+v, lone %+v", id, r.u, single)
		}
	}
}

// TestLoaderLoneFetch: a lone FetchUser is one GET /users/{id}, as before
// batching, for a live and for a deleted user.
func TestLoaderLoneFetch(t *testing.T) {
	f, c, g := gatedFake(t)
	g.open()
	ids := f.Seed(2)
	f.DeleteUser(ids[1])
	if _, err := c.FetchUser(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchUser(context.Background(), ids[1]); !errors.Is(err, provider.ErrUserNotFound) {
		t.Fatalf("FetchUser(deleted) = %v, want ErrUserNotFound", err)
	}
	reqs := g.requests()
	if len(reqs) != 2 || f.Requests() != 2 {
		t.Fatalf("two lone lookups sent %d requests (the fake saw %d), want 2", len(reqs), f.Requests())
	}
	for i, r := range reqs {
		if r.URL.Path != "/v1/users/"+ids[i] || r.URL.RawQuery != "" {
			t.Errorf("lone lookup %d sent %s, want GET /v1/users/%s", i, r.URL, ids[i])
		}
	}
	checkNoLoaderGoroutines(t, c)
}

// TestLoaderDuplicates: callers of an id queued together share one lookup
// (the id is sent once) and get equal but separate users.
func TestLoaderDuplicates(t *testing.T) {
	f, c, g := gatedFake(t)
	ids := f.Seed(4)
	waitFirst, _ := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
	want := []string{ids[2], ids[2], ids[2], ids[2], ids[2], ids[3]}
	wait := fetchAll(context.Background(), c, want)
	waitFor(t, "two distinct ids to queue", func() bool { return clerk.LoaderQueued(c) == 2 })
	g.open()
	res := wait()
	waitFirst()
	var list *http.Request
	for _, r := range g.requests() {
		if r.URL.Path == "/v1/users" {
			if list != nil {
				t.Fatalf("two list requests: %s and %s", list.URL, r.URL)
			}
			list = r
		}
	}
	if list == nil {
		t.Fatal("no batched lookup was sent")
	}
	got := list.URL.Query()["user_id"]
	slices.Sort(got)
	wantIDs := []string{ids[2], ids[3]}
	slices.Sort(wantIDs)
	if !reflect.DeepEqual(got, wantIDs) {
		t.Errorf("user_id = %v, want [%s %s]", got, ids[2], ids[3])
	}
	if n := f.Requests(); n != 3 {
		t.Errorf("the fake saw %d requests, want 3", n)
	}
	for i, r := range res {
		if r.err != nil || r.u.ID != want[i] {
			t.Fatalf("result %d: %v, %v", i, r.u.ID, r.err)
		}
		if i > 0 && i < 5 && !sameUser(r.u, res[0].u) {
			t.Errorf("callers of one id got different users")
		}
	}
	res[0].u.Raw[0] = 'X'
	*res[0].u.Name += "!"
	if res[1].u.Raw[0] == 'X' || *res[1].u.Name == *res[0].u.Name {
		t.Errorf("callers of one id share memory")
	}
	checkNoLoaderGoroutines(t, c)
}

// TestLoaderNoJoinAfterSend: a caller never joins a lookup already sent (its
// answer could predate the caller's event); it gets a lookup of its own.
func TestLoaderNoJoinAfterSend(t *testing.T) {
	f, c, g := gatedFake(t)
	ids := f.Seed(1)
	first := fetchAll(context.Background(), c, ids)
	g.next(t) // sent, held at the gate
	second := fetchAll(context.Background(), c, ids)
	g.next(t) // the second slot sends its own lookup
	g.open()
	for _, r := range append(first(), second()...) {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := f.Requests(); n != 2 {
		t.Errorf("the fake saw %d requests, want 2 (one per caller)", n)
	}
	// With one slot, the second caller queues behind the first, still apart.
	f2, c2, g2 := gatedFake(t)
	ids = f2.Seed(1)
	clerk.SetLoaderLimits(c2, clerk.MaxBatch, 1)
	first = fetchAll(context.Background(), c2, ids)
	g2.next(t)
	second = fetchAll(context.Background(), c2, ids)
	waitFor(t, "the second caller to queue", func() bool { return clerk.LoaderQueued(c2) == 1 })
	g2.open()
	for _, r := range append(first(), second()...) {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := f2.Requests(); n != 2 {
		t.Errorf("one slot: the fake saw %d requests, want 2", n)
	}
}

// TestLoaderErrorsFanOut: a failed batched lookup fails every caller of it
// with the classified error (429 with its Retry-After, 5xx, bad
// credentials, a dropped connection), with no credential in the text.
func TestLoaderErrorsFanOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		check  func(error) bool
	}{
		{"429", http.StatusTooManyRequests, func(err error) bool {
			var rl *provider.RateLimitedError
			return errors.As(err, &rl) && rl.RetryAfter == 7*time.Second
		}},
		{"503", http.StatusServiceUnavailable, func(err error) bool {
			var se *provider.StatusError
			return errors.As(err, &se) && se.StatusCode == 503 && !errors.Is(err, provider.ErrUserNotFound)
		}},
		{"reset", 0, func(err error) bool {
			return err != nil && !errors.Is(err, provider.ErrUserNotFound) && !errors.Is(err, provider.ErrBadCredentials)
		}},
		{"credentials", -1, func(err error) bool { return errors.Is(err, provider.ErrBadCredentials) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			f := clerkfake.New(clerkfake.Options{WrapTransport: g.wrap})
			defer f.Close()
			defer g.open()
			ids := f.Seed(52)
			c := f.Provider().(*clerk.Client)
			if tc.status == -1 {
				c = f.ProviderWithBadCredentials().(*clerk.Client)
			} else {
				f.FailNext(-1, tc.status, 7*time.Second)
			}
			waitFirst, _ := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
			wait := fetchAll(context.Background(), c, ids[2:])
			waitFor(t, "50 ids to queue", func() bool { return clerk.LoaderQueued(c) == 50 })
			g.open()
			for i, r := range append(waitFirst(), wait()...) {
				if !tc.check(r.err) {
					t.Fatalf("caller %d: error = %v", i, r.err)
				}
				for k, v := range f.Env() {
					if !strings.HasSuffix(k, "_URL") && strings.Contains(r.err.Error(), v) {
						t.Errorf("error %q contains %s", r.err, k)
					}
				}
			}
			lists := 0
			for _, r := range g.requests() {
				if r.URL.Path == "/v1/users" {
					lists++
				}
			}
			// A dropped connection may be retried once by Go's transport.
			if lists != 1 || f.Requests() > 6 {
				t.Errorf("52 callers: %d batched lookups, %d requests at the fake; want 1 batch and 3 requests",
					lists, f.Requests())
			}
			checkNoLoaderGoroutines(t, c)
		})
	}
}

// TestLoaderContextCancel: a caller whose context ends returns its context's
// error at once (while the request is still held), and the request goes on
// for the other callers of the batch; a request that no caller waits for any
// more is cancelled; callers that leave while queued are dropped from the
// queue.
func TestLoaderContextCancel(t *testing.T) {
	t.Run("OthersGoOn", func(t *testing.T) {
		f, c, g := gatedFake(t)
		ids := f.Seed(4)
		waitFirst, slots := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
		ctxA, cancelA := context.WithCancel(context.Background())
		defer cancelA()
		waitA := fetchAll(ctxA, c, ids[2:3])
		waitFor(t, "A to queue", func() bool { return clerk.LoaderQueued(c) == 1 })
		waitB := fetchAll(context.Background(), c, ids[3:4])
		waitFor(t, "B to queue", func() bool { return clerk.LoaderQueued(c) == 2 })
		slots[0].let() // its slot then sends {A, B}
		list := g.next(t)
		if got := list.req.URL.Query()["user_id"]; len(got) != 2 {
			t.Fatalf("batched lookup %s, want two ids", list.req.URL)
		}
		cancelA()
		if r := waitA()[0]; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled caller: error = %v, want context.Canceled", r.err)
		}
		if err := list.req.Context().Err(); err != nil {
			t.Fatalf("one caller's cancellation cancelled the batch: %v", err)
		}
		list.let()
		if r := waitB()[0]; r.err != nil || r.u.ID != ids[3] {
			t.Fatalf("the other caller of the batch: %v, %v", r.u.ID, r.err)
		}
		slots[1].let()
		for _, r := range waitFirst() {
			if r.err != nil {
				t.Fatal(r.err)
			}
		}
		if n := f.Requests(); n != 3 {
			t.Errorf("the fake saw %d requests, want 3", n)
		}
		checkNoLoaderGoroutines(t, c)
	})

	t.Run("AllGoneCancels", func(t *testing.T) {
		f, c, g := gatedFake(t)
		ids := f.Seed(4)
		waitFirst, slots := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
		ctx, cancel := context.WithCancel(context.Background())
		wait := fetchAll(ctx, c, ids[2:4])
		waitFor(t, "two ids to queue", func() bool { return clerk.LoaderQueued(c) == 2 })
		slots[0].let()
		list := g.next(t)
		cancel()
		for _, r := range wait() {
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("cancelled caller: error = %v", r.err)
			}
		}
		waitFor(t, "the abandoned request to be cancelled", func() bool { return list.req.Context().Err() != nil })
		slots[1].let()
		waitFirst()
		if n := f.Requests(); n != 2 {
			t.Errorf("the fake saw %d requests, want 2 (the abandoned batch never reached it)", n)
		}
		checkNoLoaderGoroutines(t, c)
	})

	t.Run("QueuedDropped", func(t *testing.T) {
		f, c, g := gatedFake(t)
		ids := f.Seed(4)
		waitFirst, _ := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
		ctx, cancel := context.WithCancel(context.Background())
		wait := fetchAll(ctx, c, ids[2:4])
		waitFor(t, "two ids to queue", func() bool { return clerk.LoaderQueued(c) == 2 })
		cancel()
		for _, r := range wait() {
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("cancelled caller: error = %v", r.err)
			}
		}
		if n := clerk.LoaderQueued(c); n != 0 {
			t.Errorf("%d abandoned ids still queued", n)
		}
		g.open()
		waitFirst()
		checkNoLoaderGoroutines(t, c)
		if n := f.Requests(); n != 2 {
			t.Errorf("the fake saw %d requests, want 2 (nothing sent for the abandoned ids)", n)
		}
	})
}

// TestLoaderAbsentIsNotDeletion: an id absent from a batched answer (or a
// batched lookup the server does not answer usefully) is looked up alone,
// and only Clerk's own 404 to that lookup is a deletion; a foreign 404 is
// not, and a user the lone lookup finds is returned.
func TestLoaderAbsentIsNotDeletion(t *testing.T) {
	const (
		key     = "sk_test_hostile0test0secret0key0value"
		found   = "user_2found"
		foreign = "user_2foreign"
		own     = "user_2own"
		other   = "user_2other"
	)
	userJSON := func(id string) string {
		return `{"id":"` + id + `","object":"user","first_name":"Ada","last_name":"L","created_at":1700000000000,"updated_at":1700000000000}`
	}
	for name, list := range map[string]http.HandlerFunc{
		"empty list": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[` + userJSON(other) + `]`)) // none of the ids asked for
		},
		"listed twice": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[` + userJSON(found) + `,` + userJSON(found) + `]`)) // ambiguous: looked up alone
		},
		"list 404": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("404 page not found\n"))
		},
		"list 422": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"errors":[{"message":"is invalid","long_message":"user_id is invalid","code":"form_param_value_invalid"}]}`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v1/users":
					list(w, r)
				case "/v1/users/" + found, "/v1/users/" + other:
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(userJSON(strings.TrimPrefix(r.URL.Path, "/v1/users/"))))
				case "/v1/users/" + own:
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte(`{"errors":[{"message":"not found","long_message":"Resource not found","code":"resource_not_found"}],"clerk_trace_id":"abc"}`))
				default:
					w.Header().Set("Content-Type", "text/plain")
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte("404 page not found\n"))
				}
			}))
			defer srv.Close()
			g := newGate()
			defer g.open()
			c, err := clerk.New(clerk.Config{SecretKey: key, APIURL: srv.URL + "/v1",
				HTTPClient: &http.Client{Transport: g.wrap(srv.Client().Transport)}})
			if err != nil {
				t.Fatal(err)
			}
			waitFirst, _ := occupySlots(t, c, g, [2]string{other, other})
			wait := fetchAll(context.Background(), c, []string{found, foreign, own})
			waitFor(t, "three ids to queue", func() bool { return clerk.LoaderQueued(c) == 3 })
			g.open()
			res := wait()
			waitFirst()
			if res[0].err != nil || res[0].u.ID != found {
				t.Errorf("user absent from the list but found alone: %v, %v", res[0].u.ID, res[0].err)
			}
			var se *provider.StatusError
			if errors.Is(res[1].err, provider.ErrUserNotFound) || !errors.As(res[1].err, &se) || se.StatusCode != 404 ||
				!errors.Is(res[1].err, provider.ErrForeignNotFound) {
				t.Errorf("absent from the list, foreign 404 alone: %v, want a StatusError 404 (no deletion)", res[1].err)
			}
			if !errors.Is(res[2].err, provider.ErrUserNotFound) {
				t.Errorf("absent from the list, Clerk's 404 alone: %v, want ErrUserNotFound", res[2].err)
			}
			lists, singles := 0, 0
			for _, r := range g.requests() {
				if r.URL.Path == "/v1/users" {
					lists++
				} else {
					singles++
				}
			}
			if lists != 1 || singles != 5 {
				t.Errorf("%d lists and %d single lookups, want 1 and 5", lists, singles)
			}
			checkNoLoaderGoroutines(t, c)
		})
	}
}

// TestLoaderNoLeak: bursts of lookups, with failures and cancellations,
// leave no loader goroutine behind once they are answered.
func TestLoaderNoLeak(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	ids := f.Seed(200)
	c := f.Provider().(*clerk.Client)
	f.SetLatency(2 * time.Millisecond)
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		if round == 1 {
			f.FailNext(3, http.StatusServiceUnavailable, 0)
		}
		wait := fetchAll(ctx, c, ids)
		if round == 2 {
			cancel()
		}
		wait()
		cancel()
		checkNoLoaderGoroutines(t, c)
	}
	if n := f.Requests(); n >= 3*int64(len(ids)) {
		t.Errorf("%d requests for 3×%d lookups: nothing was batched", n, len(ids))
	}
}

// TestLoaderSizeCap: a user in a batched answer larger than a single-user
// answer may be is not taken from the list; its lone lookup fails as it
// always did (ErrResponseTooLarge), and the other users of the batch are
// served.
func TestLoaderSizeCap(t *testing.T) {
	f, c, g := gatedFake(t)
	ids := f.Seed(4)
	raw, _ := f.User(ids[3])
	big := append(bytes.TrimSuffix(raw, []byte("}")), []byte(`,"padding":"`+strings.Repeat("x", provider.MaxUserResponseBytes)+`"}`)...)
	if _, err := f.PutUser(big); err != nil {
		t.Fatal(err)
	}
	waitFirst, _ := occupySlots(t, c, g, [2]string{ids[0], ids[1]})
	wait := fetchAll(context.Background(), c, ids[2:4])
	waitFor(t, "two ids to queue", func() bool { return clerk.LoaderQueued(c) == 2 })
	g.open()
	waitFirst()
	res := wait()
	if res[0].err != nil {
		t.Errorf("the other user of the batch: %v", res[0].err)
	}
	if !errors.Is(res[1].err, provider.ErrResponseTooLarge) {
		t.Errorf("oversized user: %v, want ErrResponseTooLarge", res[1].err)
	}
	if _, err := clerk.FetchOne(context.Background(), c, ids[3]); !errors.Is(err, provider.ErrResponseTooLarge) {
		t.Errorf("oversized user alone: %v, want ErrResponseTooLarge", err)
	}
	// Two lone lookups, one batch, one lone lookup of the oversized user,
	// and the FetchOne above.
	if n := f.Requests(); n != 5 {
		t.Errorf("the fake saw %d requests, want 5", n)
	}
}
