package integration_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// peakRSS returns the peak resident set size of process pid, in bytes, from
// /proc/<pid>/status (VmHWM).
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read the peak RSS from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// floodSize is the body size of the flood: 8 MiB, just within the webhook
// body limit.
const floodSize = 8<<20 - 1024

// flood posts n concurrent webhooks of floodSize bytes to a fresh `usersync
// serve` (signed by the fake, or with no signature headers at all) and
// returns the answers by status (0 = transport error) and the process's
// peak RSS before and after.
func flood(t testing.TB, prov string, n int, signed bool) (codes map[int]int, retryAfter bool, before, peak int64) {
	s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4", "USERSYNC_WORKERS": "4"})
	sv := s.Start(nil, "serve")
	pid := sv.Cmd.Process.Pid
	id := s.Fake.CreateUser()
	body, h := s.Fake.Webhook(provider.EventUserChanged, id)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["padding"] = ""
	small, _ := json.Marshal(m)
	m["padding"] = strings.Repeat("p", floodSize-len(small))
	big, err := json.Marshal(m)
	if err != nil || len(big) != floodSize {
		t.Fatalf("flood body: %d bytes, %v", len(big), err)
	}
	if signed {
		h = s.Fake.SignWebhook(big, time.Now())
	} else {
		h = http.Header{}
	}
	before = peakRSS(t, pid)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 2 * time.Minute}
	defer client.CloseIdleConnections()
	codes = map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, "http://"+sv.Addr+"/webhooks/"+prov, bytes.NewReader(big))
			req.Header = h.Clone()
			req.Header.Set("Content-Type", "application/json")
			<-start
			code, ra := 0, false
			if resp, err := client.Do(req); err == nil {
				code, ra = resp.StatusCode, resp.Header.Get("Retry-After") != ""
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			retryAfter = retryAfter || (code == 503 && ra)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	peak = peakRSS(t, pid)
	if !sv.Alive() {
		t.Fatalf("usersync serve died under the flood: %s", tail(sv.Logs(), 2000))
	}
	return codes, retryAfter, before, peak
}

// maxFloodRSS is the bound the peak RSS of `usersync serve` must stay under
// during a webhook flood (docs/guarantees.md §12: memory is bounded); without the
// bounds, 200 unsigned 8 MiB posts took it to 2.4 GB.
const maxFloodRSS = 300 << 20

// TestWebhookFloodMemoryBounded (docs/http.md; docs/guarantees.md §12): 200 concurrent 8 MiB posts,
// unsigned or signed, keep the peak RSS of a real `usersync serve` process
// under maxFloodRSS. Unsigned ones are all refused 401 (their bodies are
// never read); signed ones beyond the body budget get 503 with Retry-After.
func TestWebhookFloodMemoryBounded(t *testing.T) {
	prov := slowTestProvider("stackauth")[0]
	for _, signed := range []bool{false, true} {
		name := map[bool]string{false: "unsigned", true: "signed"}[signed]
		t.Run(name, func(t *testing.T) {
			codes, retryAfter, before, peak := flood(t, prov, 200, signed)
			t.Logf("%s: 200 concurrent %d-byte posts: answers %v; peak RSS %.1f MiB (%.1f MiB before)", name, floodSize, codes, float64(peak)/(1<<20), float64(before)/(1<<20))
			if peak > maxFloodRSS {
				t.Errorf("peak RSS %d MiB, over the bound of %d MiB", peak>>20, maxFloodRSS>>20)
			}
			if !signed {
				for code, k := range codes {
					if code != 401 && code != 0 {
						t.Errorf("%d unsigned posts answered %d, want 401", k, code)
					}
				}
				if codes[401] == 0 {
					t.Errorf("no unsigned post was answered 401: %v", codes)
				}
				return
			}
			for code, k := range codes {
				if code != 200 && code != 503 && code != 0 {
					t.Errorf("%d signed posts answered %d, want 200 or 503", k, code)
				}
			}
			if codes[503] == 0 || !retryAfter {
				t.Errorf("no signed post beyond the body budget got 503 with Retry-After: %v", codes)
			}
			if codes[200] == 0 {
				t.Errorf("no signed post was accepted: %v", codes)
			}
		})
	}
}

// BenchmarkWebhookFloodRSS reports the peak RSS of `usersync serve` under
// 200 concurrent 8 MiB posts, unsigned and signed (go test ./integration_test/
// -run '^$' -bench WebhookFloodRSS -benchtime 1x).
func BenchmarkWebhookFloodRSS(b *testing.B) {
	prov := slowTestProvider("stackauth")[0]
	for _, signed := range []bool{false, true} {
		b.Run(map[bool]string{false: "unsigned", true: "signed"}[signed], func(b *testing.B) {
			var peak int64
			for range b.N {
				_, _, _, p := flood(b, prov, 200, signed)
				peak = max(peak, p)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		})
	}
}
