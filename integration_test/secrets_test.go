package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// secretValues returns the secret configuration values of env (API keys,
// webhook secrets, passwords) with the recognisable parts of each.
func secretValues(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if v == "" || !(strings.Contains(k, "SECRET") || strings.Contains(k, "API_KEY") || strings.Contains(k, "PASSWORD")) {
			continue
		}
		out[k] = v
		if i := strings.IndexByte(v, '_'); i >= 0 && len(v)-i > 12 {
			out[k+" (without prefix)"] = v[i+1:]
		}
	}
	return out
}

func checkNoSecrets(t *testing.T, what, text string, secrets map[string]string) {
	t.Helper()
	for k, v := range secrets {
		if strings.Contains(text, v) {
			t.Errorf("%s contains the value of %s", what, k)
		}
	}
}

// TestSecretsNeverLogged (docs/guarantees.md §9): with every secret set to a recognisable
// value, errors that involve them (rejected API key, forged webhooks, wrong
// River UI password, unreachable or malformed DATABASE_URL with a password)
// never put a secret in the output, nor in the database.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{
				"USERSYNC_DB_MAX_CONNS": "4",
				"USERSYNC_UI_USER":      "ops-Admin-u4",
				"USERSYNC_UI_PASSWORD":  "uiPw-Secret-9x7Q",
			})
			v := credentialVars[prov]
			good := s.Env[v]
			s.Env[v] = good + "Wrong5ecretTail"
			secrets := secretValues(s.Env)
			secrets["real API key"] = good
			secrets["basic auth header"] = base64.StdEncoding.EncodeToString([]byte("ops-Admin-u4:uiPw-Secret-9x7Q"))

			sv := s.Start(nil, "serve")
			id := s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			other := fakes[prov]()
			t.Cleanup(other.Close)
			body, _ := s.Fake.Webhook(provider.EventUserChanged, id)
			for _, h := range []http.Header{other.SignWebhook(body, time.Now()), s.Fake.SignWebhook(body, time.Now().Add(-time.Hour)), {}} {
				if code, _ := s.PostRaw(sv.Addr, bytes.NewReader(body), h); code != 401 {
					t.Errorf("forged delivery answered %d, want 401", code)
				}
			}
			for _, pw := range []string{"uiPw-Secret-9x7Q-wrong", ""} {
				req, _ := http.NewRequest(http.MethodGet, "http://"+sv.Addr+"/riverui/", nil)
				req.SetBasicAuth("ops-Admin-u4", pw)
				if code, _ := httpDo(req); code != 401 {
					t.Errorf("River UI with a wrong password answered %d", code)
				}
			}
			// A burst of guesses (docs/http.md): each checked one is logged, without the
			// password; beyond a few, they are refused unchecked (429).
			throttled := 0
			for i := range 30 {
				req, _ := http.NewRequest(http.MethodGet, "http://"+sv.Addr+"/riverui/", nil)
				req.SetBasicAuth("ops-Admin-u4", fmt.Sprintf("uiPw-Secret-9x7Q-guess%02d", i))
				switch code, _ := httpDo(req); code {
				case 401:
				case 429:
					throttled++
				default:
					t.Errorf("River UI guess %d answered %d", i, code)
				}
			}
			if throttled == 0 {
				t.Errorf("30 wrong passwords in a row were all checked: no throttling")
			}
			Eventually(t, 10*time.Second, "failed UI logins are logged with the user name", func() string {
				for _, rec := range logRecords(sv.Logs()) {
					if rec["msg"] == "River UI: failed login" && rec["user"] == "ops-Admin-u4" {
						return ""
					}
				}
				return "logs so far: " + tail(sv.Logs(), 2000)
			})
			Eventually(t, 20*time.Second, "the rejected credentials are logged", func() string {
				if !strings.Contains(sv.Logs(), "credentials") {
					return "logs so far: " + tail(sv.Logs(), 2000)
				}
				return ""
			})
			_, status := s.Run(nil, "status")
			_, printed := s.Run(nil, "migrate", "--print-sql")
			sv.Terminate(t)
			checkNoSecrets(t, "serve's output", sv.Logs(), secrets)
			if strings.Contains(sv.Logs(), "-guess") {
				t.Errorf("a tried River UI password is in serve's output")
			}
			checkNoSecrets(t, "status output", status, secrets)
			checkNoSecrets(t, "migrate --print-sql output", printed, secrets)
			var dump string
			for _, q := range []string{
				`SELECT coalesce(string_agg(errors::text || metadata::text || args::text, ' '), '') FROM ` + s.is() + `.river_job`,
				`SELECT coalesce(string_agg(p::text, ' '), '') FROM ` + s.is() + `.provider_status p`,
			} {
				var part string
				if err := s.Pool.QueryRow(t.Context(), q).Scan(&part); err != nil {
					t.Fatal(err)
				}
				dump += part
			}
			checkNoSecrets(t, "the database (river_job, provider_status)", dump, secrets)

			// A DATABASE_URL with a password that cannot be used.
			const dbPw = "DbPw-Secret-5k3Zr"
			secrets["database password"] = dbPw
			for _, u := range []string{
				"postgres://usersync:" + dbPw + "@127.0.0.1:1/app?connect_timeout=2",
				"postgres://usersync:" + url.QueryEscape(dbPw+"/?#") + "@127.0.0.1:1/app",
				"postgres://usersync:" + dbPw + "@127.0.0.1:notaport/app",
				"postgres://127.0.0.1:1/app?user=u&password=" + dbPw,
				"host=127.0.0.1 port=1 user=u password=" + dbPw + " dbname=app connect_timeout=2",
				"host=127.0.0.1 port=1 user=u password='" + dbPw + "' dbname=app bogus_option=1",
				"%%postgres://u:" + dbPw + "@[::1",
			} {
				for _, cmd := range []string{"serve", "worker", "migrate", "status"} {
					code, out := s.Run(map[string]string{"DATABASE_URL": u}, cmd)
					if code == 0 {
						t.Errorf("%s with an unusable DATABASE_URL exited 0", cmd)
					}
					checkNoSecrets(t, cmd+"'s output with DATABASE_URL "+strings.ReplaceAll(u, dbPw, "<pw>"), out, secrets)
				}
			}
		})
	}
}

// TestRiverUIAuth (docs/http.md; docs/guarantees.md §9): the River UI is off without credentials, and
// behind basic auth and a same-origin check with them.
func TestRiverUIAuth(t *testing.T) {
	prov := providerNames()[0]
	t.Parallel()
	s := NewSystem(t, prov, nil)
	off := s.Serve(nil)
	for _, p := range []string{"/riverui/", "/riverui", "/riverui/api/jobs?state=available"} {
		if code, _ := httpGet(t, "http://"+off.Addr+p, nil); code != 404 {
			t.Errorf("UI off: GET %s answered %d, want 404", p, code)
		}
	}
	off.Stop()

	on := s.Serve(map[string]string{"USERSYNC_UI_USER": "ops", "USERSYNC_UI_PASSWORD": "correct horse"})
	base := "http://" + on.Addr
	auth := func(u, p string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}}
	}
	right := auth("ops", "correct horse")
	for _, c := range []struct {
		name string
		h    http.Header
		want int
	}{
		{"no auth", nil, 401},
		{"wrong password", auth("ops", "correct horsE"), 401},
		{"wrong user", auth("op", "correct horse"), 401},
		{"empty password", auth("ops", ""), 401},
		{"right auth", right, 200},
	} {
		for _, p := range []string{"/riverui/", "/riverui/api/jobs?state=available"} {
			if code, _ := httpGet(t, base+p, c.h); code != c.want {
				t.Errorf("%s: GET %s answered %d, want %d", c.name, p, code, c.want)
			}
		}
	}
	post := func(h http.Header) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/riverui/api/jobs/cancel", strings.NewReader(`{"job_ids":["1"]}`))
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", "application/json")
		code, _ := httpDo(req)
		return code
	}
	with := func(k, v string) http.Header { h := right.Clone(); h.Set(k, v); return h }
	if code := post(with("Sec-Fetch-Site", "cross-site")); code != 403 {
		t.Errorf("cross-site POST (Sec-Fetch-Site) answered %d, want 403", code)
	}
	if code := post(with("Sec-Fetch-Site", "same-site")); code != 403 {
		t.Errorf("same-site (other origin) POST answered %d, want 403", code)
	}
	if code := post(with("Origin", "https://evil.example")); code != 403 {
		t.Errorf("cross-origin POST (Origin) answered %d, want 403", code)
	}
	if code := post(http.Header{"Sec-Fetch-Site": {"cross-site"}}); code != 401 && code != 403 {
		t.Errorf("cross-site POST without auth answered %d", code)
	}
	if code := post(with("Sec-Fetch-Site", "same-origin")); code == 401 || code == 403 || code == 404 {
		t.Errorf("same-origin POST with auth answered %d: the UI's API is unusable", code)
	}
}

// echoHeaders renders a request's headers as text, the way a hostile or
// badly written server might put them into an error answer.
func echoHeaders(r *http.Request) string {
	// The credential headers first, so that even a short excerpt of the
	// echo holds the key.
	var b strings.Builder
	for _, k := range []string{"Authorization", "X-Stack-Secret-Server-Key"} {
		for _, v := range r.Header.Values(k) {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	for k, vs := range r.Header {
		if k == "Authorization" || k == "X-Stack-Secret-Server-Key" {
			continue
		}
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

// hostileBase returns the API URL of srv with the fake's path (Clerk's /v1).
func (s *System) hostileBase(srv *httptest.Server) string {
	u, err := url.Parse(s.Fake.URL())
	if err != nil {
		s.t.Fatal(err)
	}
	return srv.URL + u.Path
}

// TestEchoedCredentialsNeverLeak (docs/guarantees.md §9): a provider API whose error answers
// echo the request's headers (the Authorization or x-stack-secret-server-key
// header with the key) puts the key in no log line, no river_job.errors, no
// backfill_run, no provider_status and no `status` / `status --json` output.
func TestEchoedCredentialsNeverLeak(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			key := s.Env[credentialVars[prov]]
			secrets := secretValues(s.Env)
			secrets["API key"] = key
			var n atomic.Int64
			codes := []int{500, 401, 404, 400, 403, 502, 422}
			hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				code := codes[int(n.Add(1))%len(codes)]
				dump, _ := json.Marshal(echoHeaders(r))
				d := string(dump)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Echo", strings.ReplaceAll(echoHeaders(r), "\n", " | "))
				w.WriteHeader(code)
				// Every provider's error shape, each field the echo.
				fmt.Fprintf(w, `{"errors":[{"code":"echo","message":%s,"long_message":%s}],"clerk_trace_id":%s,"code":%s,"message":%s,"error":%s}`, d, d, d, d, d, d)
			}))
			t.Cleanup(hostile.Close)
			sv := s.Start(s.WithAPI(s.hostileBase(hostile)), "serve")
			id := s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			if code, out := s.Run(s.WithAPI(s.hostileBase(hostile)), "backfill"); code != 0 {
				t.Fatalf("backfill exited %d: %s", code, out)
			}
			Eventually(t, 30*time.Second, "the sync and backfill jobs have failed and the error is in provider_status", func() string {
				if j, _ := s.JobOf(id); j.Errors < 1 {
					return fmt.Sprintf("job of %s: %+v", id, j)
				}
				if s.Int(`SELECT count(*) FROM `+s.is()+`.river_job WHERE kind = 'backfill_page' AND errors IS NOT NULL`) < 1 {
					return "no backfill_page error yet"
				}
				if s.Int(`SELECT count(*) FROM `+s.is()+`.provider_status WHERE last_error IS NOT NULL`) < 1 {
					return "no provider_status.last_error yet"
				}
				return ""
			})
			_, status := s.Run(nil, "status")
			_, statusJSON := s.Run(nil, "status", "--json")
			sv.Terminate(t)
			if n.Load() == 0 {
				t.Fatal("the hostile API got no request")
			}
			checkNoSecrets(t, "serve's output", sv.Logs(), secrets)
			checkNoSecrets(t, "status output", status, secrets)
			checkNoSecrets(t, "status --json output", statusJSON, secrets)
			var dump string
			for _, q := range []string{
				`SELECT coalesce(string_agg(errors::text || metadata::text || args::text, ' '), '') FROM ` + s.is() + `.river_job`,
				`SELECT coalesce(string_agg(p::text, ' '), '') FROM ` + s.is() + `.provider_status p`,
				`SELECT coalesce(string_agg(b::text, ' '), '') FROM ` + s.is() + `.backfill_run b`,
			} {
				var part string
				if err := s.Pool.QueryRow(t.Context(), q).Scan(&part); err != nil {
					t.Fatal(err)
				}
				dump += part
			}
			if !strings.Contains(dump, "REDACTED") {
				t.Errorf("the stored errors do not show the scrubbed echo (is the test still echoing?):\n%s", tail(dump, 2000))
			}
			checkNoSecrets(t, "the database (river_job, provider_status, backfill_run)", dump, secrets)
		})
	}
}

// TestRedirectNeverCarriesCredentials (docs/guarantees.md §9): an API that redirects to
// another address (here another port) never gets the key sent there; the
// redirect is a provider error that names the API URL variable.
func TestRedirectNeverCarriesCredentials(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, map[string]string{"USERSYNC_DB_MAX_CONNS": "4"})
			key := s.Env[credentialVars[prov]]
			var reached, withKey atomic.Int64
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached.Add(1)
				if strings.Contains(echoHeaders(r), key) {
					withKey.Add(1)
				}
				w.WriteHeader(http.StatusNotFound)
			}))
			t.Cleanup(other.Close)
			var redirected atomic.Int64
			hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				redirected.Add(1)
				code := []int{302, 307, 301, 308}[int(redirected.Load())%4]
				http.Redirect(w, r, other.URL+r.URL.RequestURI(), code)
			}))
			t.Cleanup(hostile.Close)
			sv := s.Start(s.WithAPI(s.hostileBase(hostile)), "serve")
			id := s.Fake.CreateUser()
			if code := s.Send(sv.Addr, provider.EventUserChanged, id); code != 200 {
				t.Fatalf("webhook answered %d", code)
			}
			Eventually(t, 30*time.Second, "the sync job has failed on the redirect", func() string {
				if j, _ := s.JobOf(id); j.Errors < 1 {
					return fmt.Sprintf("job of %s: %+v", id, j)
				}
				return ""
			})
			sv.Terminate(t)
			if redirected.Load() == 0 {
				t.Fatal("the redirecting API got no request")
			}
			if reached.Load() != 0 || withKey.Load() != 0 {
				t.Errorf("the redirect target got %d requests, %d with the key", reached.Load(), withKey.Load())
			}
			var errs string
			if err := s.Pool.QueryRow(t.Context(), `SELECT coalesce(string_agg(errors::text, ' '), '') FROM `+s.is()+`.river_job`).Scan(&errs); err != nil {
				t.Fatal(err)
			}
			envVar := map[string]string{"stackauth": "STACK_API_URL", "clerk": "CLERK_API_URL", "workos": "WORKOS_API_URL"}[prov]
			if !strings.Contains(errs, envVar) {
				t.Errorf("the job's error does not point at %s: %s", envVar, tail(errs, 1000))
			}
		})
	}
}

// TestAPIURLWithCredentialsNotPrinted (README "Configuration"): an API URL holding a password is
// refused at start without printing it.
func TestAPIURLWithCredentialsNotPrinted(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		t.Run(prov, func(t *testing.T) {
			t.Parallel()
			s := NewSystem(t, prov, nil)
			const pw = "UrlPw-Secret-4q8Zt"
			envVar := map[string]string{"stackauth": "STACK_API_URL", "clerk": "CLERK_API_URL", "workos": "WORKOS_API_URL"}[prov]
			for _, u := range []string{"https://user:" + pw + "@api.example.com/v1", "ftp://user:" + pw + "@api.example.com/v1",
				"https://api.example.com/v1?key=" + pw, "user:" + pw + "@api.example.com"} {
				for _, cmd := range []string{"serve", "worker", "status"} {
					code, out := s.Run(map[string]string{envVar: u}, cmd)
					if code == 0 {
						t.Errorf("%s with %s=%s exited 0", cmd, envVar, strings.ReplaceAll(u, pw, "<pw>"))
					}
					if strings.Contains(out, pw) || strings.Contains(out, "api.example.com") {
						t.Errorf("%s printed the URL: %s", cmd, out)
					}
				}
			}
		})
	}
}
