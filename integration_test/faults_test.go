package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// credentialVars names, per provider, the variable holding the API secret.
var credentialVars = map[string]string{
	"stackauth": "STACK_SECRET_SERVER_KEY",
	"clerk":     "CLERK_SECRET_KEY",
	"workos":    "WORKOS_API_KEY",
}

// TestProviderErrorWindow (docs/guarantees.md §6): while the provider answers 5xx or drops
// connections, sync jobs fail and are retried with backoff; once it
// recovers, users_sync converges without operator action.
func TestProviderErrorWindow(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, status := range []int{500, 503, 0} {
			name := fmt.Sprint(status)
			if status == 0 {
				name = "connection-reset"
			}
			t.Run(prov+"/"+name, func(t *testing.T) {
				t.Parallel()
				s := NewSystem(t, prov, nil)
				sv := s.Serve(nil)
				ids := s.Fake.Seed(5)
				s.Fake.FailNext(-1, status, 0)
				s.SendAll(sv.Addr, provider.EventUserChanged, ids, 5)
				Eventually(t, 20*time.Second, "every job has failed at least once", func() string {
					for _, id := range ids {
						if j, _ := s.JobOf(id); j.Errors < 1 {
							return fmt.Sprintf("job of %s: %+v", id, j)
						}
					}
					return ""
				})
				if n := len(s.Rows()); n != 0 {
					t.Fatalf("%d rows written while the provider failed every request", n)
				}
				for _, id := range ids {
					if j, _ := s.JobOf(id); j.State == "discarded" || j.State == "cancelled" {
						t.Fatalf("job of %s gave up during a short outage: %+v", id, j)
					}
				}
				s.Fake.ClearFaults()
				s.WaitConverged(30 * time.Second)
			})
		}
	}
}

// TestRateLimitSnoozes (docs/guarantees.md §6): a 429 with Retry-After makes the job wait
// (snooze) without spending an attempt; afterwards it converges.
func TestRateLimitSnoozes(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			sv := s.Serve(nil)
			id := s.Fake.CreateUser()
			s.Fake.FailNext(3, 429, time.Second)
			before := s.Fake.Requests()
			start := time.Now()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			s.WaitConverged(30 * time.Second)
			Eventually(t, 10*time.Second, "no sync job left", s.Idle)
			elapsed := time.Since(start)
			j, _ := s.JobOf(id)
			if j.State != "completed" || j.Attempt != 1 || j.Errors != 0 || j.Snoozes < 3 {
				t.Errorf("job after three 429s: %+v; want completed at attempt 1, no errors, ≥3 snoozes", j)
			}
			if n := s.Fake.Requests() - before; n < 4 {
				t.Errorf("%d provider requests, want ≥ 4 (three 429s, then success)", n)
			}
			if elapsed < 2500*time.Millisecond {
				t.Errorf("converged after %s: the Retry-After of 1s (three times) was not honoured", elapsed)
			}
		})
	}
}

// TestRateLimitBackfillPage (§6.6: "for every job kind"): a 429 on a
// backfill page snoozes it without spending an attempt.
func TestRateLimitBackfillPage(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			s.Serve(nil)
			s.Fake.Seed(30)
			s.Fake.FailNext(2, 429, time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if code, out := s.Backfill(ctx, "--wait"); code != 0 {
				t.Fatalf("backfill --wait exited %d: %s", code, out)
			}
			s.WaitConverged(10 * time.Second)
			var attempts, errs, snoozes int
			if err := s.Pool.QueryRow(context.Background(), `SELECT coalesce(max(attempt), 0), coalesce(sum(coalesce(array_length(errors, 1), 0)), 0),
				coalesce(sum(coalesce((metadata->>'snoozes')::int, 0)), 0) FROM `+s.is()+`.river_job WHERE kind = 'backfill_page'`).
				Scan(&attempts, &errs, &snoozes); err != nil {
				t.Fatal(err)
			}
			if attempts != 1 || errs != 0 || snoozes < 2 {
				t.Errorf("backfill_page jobs after two 429s: max attempt %d, %d errors, %d snoozes; want 1, 0, ≥2", attempts, errs, snoozes)
			}
		})
	}
}

// TestBadCredentialsLoud (docs/guarantees.md §6, §9): rejected credentials are reported in
// the log (ERROR, naming credentials), the metric and `usersync status`,
// and the secret never appears in any of them.
func TestBadCredentialsLoud(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			v, ok := credentialVars[prov]
			if !ok {
				t.Fatalf("add %s's credential variable to credentialVars", prov)
			}
			good := s.Env[v]
			wrong := good + "WrongKeyZq7"
			if len(good) > 24 { // same length and prefix as the real one
				wrong = good[:len(good)/2] + "WrongKeyZq7" + good[len(good)/2+11:]
			}
			s.Env[v] = wrong
			sv := s.Start(nil, "serve")
			id := s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			Eventually(t, 20*time.Second, "an ERROR log line about credentials", func() string {
				for _, rec := range logRecords(sv.Logs()) {
					if rec["level"] == "ERROR" && strings.Contains(strings.ToLower(fmt.Sprint(rec)), "credentials") {
						return ""
					}
				}
				return "logs so far: " + tail(sv.Logs(), 2000)
			})
			metric := regexp.MustCompile(`(?m)^usersync_provider_bad_credentials\{provider="` + prov + `"\} 1$`)
			Eventually(t, 10*time.Second, "usersync_provider_bad_credentials is 1", func() string {
				code, body := httpGet(t, "http://"+sv.Addr+"/metrics", nil)
				if code != 200 || !metric.MatchString(body) {
					return fmt.Sprintf("GET /metrics: %d\n%s", code, grepLines(body, "bad_credentials"))
				}
				return ""
			})
			// status reads provider_status, which the service writes about once
			// a second: await both forms of the report. The text form must say
			// so in its attention list, not merely quote a job's error text.
			var statusOut, js string
			Eventually(t, 10*time.Second, "usersync status and status --json report the credentials", func() string {
				code, out := s.Run(nil, "status")
				statusOut = out
				if code == 0 || !strings.Contains(out, "rejected usersync's credentials") {
					return fmt.Sprintf("status exited %d:\n%s", code, out)
				}
				_, js = s.Run(nil, "status", "--json")
				var rep struct {
					Providers []struct {
						Provider         string     `json:"provider"`
						BadCredentialsAt *time.Time `json:"bad_credentials_at"`
					} `json:"providers"`
				}
				i := strings.Index(js, "{\n  \"providers\"")
				if i < 0 {
					return "status --json printed no report:\n" + js
				}
				if err := json.NewDecoder(strings.NewReader(js[i:])).Decode(&rep); err != nil {
					return fmt.Sprintf("status --json: %v\n%s", err, js)
				}
				if len(rep.Providers) != 1 || rep.Providers[0].Provider != prov || rep.Providers[0].BadCredentialsAt == nil {
					return "status --json: bad_credentials_at not set: " + js
				}
				return ""
			})
			if _, ok := s.Rows()[id]; ok {
				t.Error("a row was written with rejected credentials")
			}
			for _, secret := range []string{wrong, good} {
				for what, text := range map[string]string{"logs": sv.Logs(), "status": statusOut + js} {
					if strings.Contains(text, secret) {
						t.Errorf("the API secret appears in the %s", what)
					}
				}
			}
			if n := s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE errors::text LIKE '%' || $1 || '%'`, wrong); n != 0 {
				t.Error("the API secret is stored in river_job.errors")
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStatusRightAfterCredentialRejection: the moment River has stored a
// sync's "credentials rejected" error (which `status` lists under recent
// errors), `status` already reports the rejection and exits 1: provider
// health is written before the worker returns the error, not on a timer, so
// status never shows the error and "All providers healthy" together.
func TestStatusRightAfterCredentialRejection(t *testing.T) {
	t.Parallel()
	prov := slowTestProvider("clerk")[0]
	s := NewSystem(t, prov, nil)
	v := credentialVars[prov]
	s.Env[v] = s.Env[v] + "WrongKeyZq7"
	sv := s.Start(nil, "serve")
	id := s.Fake.CreateUser()
	if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	Eventually(t, 20*time.Second, "the sync's error stored by River", func() string {
		if n := s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = 'sync_user' AND args->>'user_id' = $1
			AND coalesce(array_length(errors, 1), 0) > 0`, id); n == 0 {
			return "no error stored yet"
		}
		return ""
	})
	code, out := s.Run(nil, "status")
	if code != 1 || !strings.Contains(out, "rejected usersync's credentials") || strings.Contains(out, "All providers healthy") {
		t.Errorf("status right after the rejection exited %d:\n%s", code, out)
	}
}
