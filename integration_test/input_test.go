package integration_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// TestBadInput (docs/http.md; docs/guarantees.md §8): forged, stale, malformed and oversized deliveries
// to a real `serve` process each get the documented 4xx, enqueue nothing and
// change nothing; ignored event types get 2xx and enqueue nothing; the
// process survives all of it.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			sv := s.Start(map[string]string{"USERSYNC_WORKERS": "2"}, "serve")
			id := s.Fake.CreateUser()

			// A valid delivery larger than 4 MiB (docs/http.md: a Stack Auth
			// profile_image_url may be a 1 MB data URL) is accepted.
			big, bigH := s.MutateWebhook(id, func(m map[string]any) {
				m["data"].(map[string]any)["profile_image_url"] = "data:image/png;base64," + strings.Repeat("QUJD", 5<<20/4)
			})
			if code, body := s.PostRaw(sv.Addr, bytes.NewReader(big), bigH); code != 200 {
				t.Fatalf("valid 5 MiB delivery answered %d: %s", code, body)
			}
			s.WaitConverged(15 * time.Second)
			Eventually(t, 10*time.Second, "no sync job left", s.Idle)
			jobsBefore, rowsBefore := s.AllJobs(), s.Rows()

			other := fakes[prov]() // same provider, another webhook secret
			t.Cleanup(other.Close)
			valid, _ := s.Fake.Webhook(provider.EventUserChanged, id)
			signed := func(b []byte) http.Header { return s.Fake.SignWebhook(b, time.Now()) }
			mutated := func(v string) ([]byte, http.Header) { return s.MutateWebhook(id, SetDataID(v)) }

			type req struct {
				name string
				body []byte
				h    http.Header
				want int
			}
			var reqs []req
			add := func(name string, want int, body []byte, h http.Header) {
				reqs = append(reqs, req{name, body, h, want})
			}
			add("missing signature", 401, valid, http.Header{})
			add("forged signature (other secret)", 401, valid, other.SignWebhook(valid, time.Now()))
			add("stale signature (1 h old)", 401, valid, s.Fake.SignWebhook(valid, time.Now().Add(-time.Hour)))
			add("future signature (1 h ahead)", 401, valid, s.Fake.SignWebhook(valid, time.Now().Add(time.Hour)))
			tampered := bytes.Replace(valid, []byte(id), []byte(strings.ToUpper(id[:1])+id[1:]+"0"), 1)
			add("body changed after signing", 401, tampered, signed(valid))
			for _, b := range []string{"", "{", "not json", "null", "[]", `"x"`, "42", `{"type":`, "{\x00}"} {
				add("unparseable body "+strconvQuote(b), 400, []byte(b), signed([]byte(b)))
			}
			for name, v := range map[string]string{
				"empty id":            `""`,
				"number id":           `12345`,
				"null id":             `null`,
				"object id":           `{"id":"x"}`,
				"array id":            `["x"]`,
				"id over 255 bytes":   `"` + strings.Repeat("a", 256) + `"`,
				"id with NUL":         `"ab\u0000cd"`,
				"id with BEL":         `"ab\u0007cd"`,
				"id with NEL (C1)":    `"ab\u0085cd"`,
				"id with DEL":         `"ab\u007fcd"`,
				"id with newline":     `"ab\ncd"`,
				"id with invalid UTF": "\"ab\xffcd\"",
			} {
				b, h := mutated(v)
				add(name, 400, b, h)
			}
			b, h := s.MutateWebhook(id, func(m map[string]any) { delete(m["data"].(map[string]any), "id") })
			add("missing id", 400, b, h)
			b, h = s.MutateWebhook(id, func(m map[string]any) { m["data"] = "x" })
			add("data not an object", 400, b, h)
			b, h = s.MutateWebhook(id, func(m map[string]any) { delete(m, "data") })
			add("missing data", 400, b, h)
			if prov == "stackauth" {
				b, h = mutated(`"not-a-uuid"`)
				add("non-UUID id", 400, b, h)
				b, h = mutated(`"` + id + `x"`)
				add("UUID with a suffix", 400, b, h)
			}
			// Random garbage, signed: the parser must answer 400, never panic.
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 30 {
				g := make([]byte, 1+rng.IntN(200))
				for j := range g {
					g[j] = byte(rng.IntN(256))
				}
				if i%2 == 0 { // JSON-ish garbage
					g = append([]byte(`{"type":"user.updated","data":{"id":`), g...)
				}
				add("garbage", 400, g, signed(g))
			}

			for _, r := range reqs {
				code, body := s.PostRaw(sv.Addr, bytes.NewReader(r.body), r.h)
				if code != r.want {
					t.Errorf("%s: answered %d (%s), want %d", r.name, code, strings.TrimSpace(body), r.want)
				}
			}

			// Over the body limit: with a Content-Length, and chunked.
			huge := bytes.Repeat([]byte("a"), 9<<20)
			if code, body := s.PostRaw(sv.Addr, bytes.NewReader(huge), signed(huge)); code != 413 {
				t.Errorf("9 MiB body: answered %d (%s), want 413", code, body)
			}
			if code, body := s.PostRaw(sv.Addr, io.MultiReader(bytes.NewReader(huge)), signed(huge)); code != 413 {
				t.Errorf("9 MiB chunked body: answered %d (%s), want 413", code, body)
			}

			// Ignored event types: 2xx, nothing enqueued.
			ib, ih := s.Fake.IgnoredWebhook()
			if code, body := s.PostRaw(sv.Addr, bytes.NewReader(ib), ih); code/100 != 2 {
				t.Errorf("ignored event type answered %d (%s), want 2xx", code, body)
			}

			if !sv.Alive() {
				t.Fatalf("serve died: %s", tail(sv.Logs(), 3000))
			}
			if code, _ := httpGet(t, "http://"+sv.Addr+"/healthz", nil); code != 200 {
				t.Errorf("/healthz answered %d after the bad input", code)
			}
			if n := s.AllJobs(); n != jobsBefore {
				t.Errorf("river_job has %d rows after the bad input, had %d: something was enqueued", n, jobsBefore)
			}
			if after := s.Rows(); !reflect.DeepEqual(rowsBefore, after) {
				t.Errorf("users_sync changed: %d rows before, %d after", len(rowsBefore), len(after))
			}
			for _, rec := range logRecords(sv.Logs()) {
				if m, _ := rec["msg"].(string); strings.Contains(m, "panic") || rec["level"] == "ERROR" {
					t.Errorf("log line after bad input: %v", rec)
				}
			}
			// A valid delivery still works.
			s.Fake.UpdateUser(id)
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("valid delivery after the bad input answered %d", code)
			}
			s.WaitConverged(15 * time.Second)
		})
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
