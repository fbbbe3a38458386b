package clerk_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// benchFake returns a fake answering after latency, and a client of it
// whose transport keeps enough idle connections for k concurrent requests.
func benchFake(b *testing.B, users int, latency time.Duration) (*clerkfake.Fake, *clerk.Client, []string) {
	b.Helper()
	f := clerkfake.New(clerkfake.Options{WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		tr, ok := rt.(*http.Transport)
		if !ok {
			return rt
		}
		tr = tr.Clone()
		tr.MaxIdleConnsPerHost = 2000
		return tr
	}})
	b.Cleanup(f.Close)
	ids := f.Seed(users)
	f.SetLatency(latency)
	return f, f.Provider().(*clerk.Client), ids
}

// BenchmarkFetchUserConcurrent: K callers fetch K different users at once
// from a fake that answers in 5 ms, with batching (the loader as shipped)
// and without it (every lookup a GET /users/{id}, as before batching). One
// op is one round of K lookups. Metrics: requests/user (requests the fake
// saw per lookup) and users/s.
//
//	go test ./provider/clerk/ -run '^$' -bench FetchUserConcurrent -benchtime 20x
func BenchmarkFetchUserConcurrent(b *testing.B) {
	for _, k := range []int{1, 10, 100, 1000} {
		for _, mode := range []string{"batched", "unbatched"} {
			b.Run(fmt.Sprintf("K=%d/%s", k, mode), func(b *testing.B) {
				f, c, ids := benchFake(b, k, 5*time.Millisecond)
				if mode == "unbatched" {
					clerk.SetLoaderLimits(c, 1, 1<<30)
				}
				ctx := context.Background()
				before := f.Requests()
				b.ResetTimer()
				for range b.N {
					var wg sync.WaitGroup
					for _, id := range ids {
						wg.Go(func() {
							if _, err := c.FetchUser(ctx, id); err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
				}
				b.StopTimer()
				lookups := float64(b.N * k)
				b.ReportMetric(float64(f.Requests()-before)/lookups, "requests/user")
				b.ReportMetric(lookups/b.Elapsed().Seconds(), "users/s")
			})
		}
	}
}

// BenchmarkFetchUserLone: one caller at a time against a fake with no
// latency, alternating FetchUser (through the loader) and the bare
// single-user GET, so the ratio loader/direct is measured within one run.
//
//	go test ./provider/clerk/ -run '^$' -bench FetchUserLone -benchtime 3000x
func BenchmarkFetchUserLone(b *testing.B) {
	_, c, ids := benchFake(b, 1, 0)
	ctx := context.Background()
	var direct, loader time.Duration
	b.ResetTimer()
	fetch := func(viaLoader bool) time.Duration {
		t0 := time.Now()
		var err error
		if viaLoader {
			_, err = c.FetchUser(ctx, ids[0])
		} else {
			_, err = clerk.FetchOne(ctx, c, ids[0])
		}
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	for i := range b.N {
		// Alternate which goes first, so neither gains from the other.
		first := i%2 == 0
		d1 := fetch(first)
		d2 := fetch(!first)
		if first {
			loader, direct = loader+d1, direct+d2
		} else {
			direct, loader = direct+d1, loader+d2
		}
	}
	b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "ns/direct")
	b.ReportMetric(float64(loader.Nanoseconds())/float64(b.N), "ns/loader")
	b.ReportMetric(float64(loader)/float64(direct), "loader/direct")
}
