package integration_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
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

// TestSecretsNeverLogged (§6.9): with every secret set to a recognisable
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

// TestRiverUIAuth (§4, §6.9): the River UI is off without credentials, and
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
