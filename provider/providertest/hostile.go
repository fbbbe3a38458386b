package providertest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersync/usersync/provider"
)

// Hostile describes a provider client for [RunHostile].
type Hostile struct {
	// New returns a client of the API served at root (scheme://host:port,
	// no path) that authenticates with key.
	New func(t *testing.T, root, key string) provider.Provider
	// Key is the client's secret credential.
	Key string
	// UserID is a well-formed user id for the provider.
	UserID string
	// NotFound writes the provider's own answer for a user that does not
	// exist (status, headers and body as the real API sends them).
	NotFound http.HandlerFunc
	// EnvVar names the API URL variable the error hints must name.
	EnvVar string
}

// RunHostile checks a client against servers that are not the provider's
// API or that misbehave (docs/http.md; docs/guarantees.md §9, §10): only the provider's own
// not-found answer is a deletion; a redirect is never followed with the
// credential; an error answer that echoes the credential does not put it in
// the error; an answer that never ends is cut at the size limit with a
// clear error.
func RunHostile(t *testing.T, h Hostile) {
	t.Helper()
	ctx := context.Background()
	serve := func(t *testing.T, fn http.HandlerFunc) provider.Provider {
		srv := httptest.NewServer(fn)
		t.Cleanup(srv.Close)
		return h.New(t, srv.URL, h.Key)
	}

	t.Run("OwnNotFoundIsDeletion", func(t *testing.T) {
		p := serve(t, h.NotFound)
		if _, err := p.FetchUser(ctx, h.UserID); !errors.Is(err, provider.ErrUserNotFound) {
			t.Fatalf("the provider's own not-found answer: %v, want ErrUserNotFound", err)
		}
	})

	t.Run("ForeignNotFoundIsNoDeletion", func(t *testing.T) {
		for name, a := range map[string]struct{ ctype, body string }{
			"plain text":        {"text/plain; charset=utf-8", "404 page not found\n"},
			"message only":      {"application/json", `{"message":"Not Found"}`},
			"html":              {"text/html", "<html><body><h1>404 Not Found</h1></body></html>"},
			"empty":             {"", ""},
			"other error code":  {"application/json", `{"code":"not_found","message":"Not Found","error":"Not Found"}`},
			"empty errors list": {"application/json", `{"errors":[]}`},
			"other json":        {"application/json", `{"statusCode":404,"error":"Not Found"}`},
		} {
			t.Run(name, func(t *testing.T) {
				p := serve(t, func(w http.ResponseWriter, r *http.Request) {
					if a.ctype != "" {
						w.Header().Set("Content-Type", a.ctype)
					}
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte(a.body))
				})
				_, err := p.FetchUser(ctx, h.UserID)
				var se *provider.StatusError
				switch {
				case errors.Is(err, provider.ErrUserNotFound):
					t.Fatalf("a 404 that is not the provider's own answer was taken as a deletion: %v", err)
				case !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || !errors.Is(err, provider.ErrForeignNotFound):
					t.Fatalf("got %v, want a StatusError 404 wrapping ErrForeignNotFound (retried)", err)
				case !strings.Contains(err.Error(), h.EnvVar):
					t.Errorf("error %q gives no hint about %s", err, h.EnvVar)
				}
			})
		}
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		var seen atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			if strings.Contains(headerDump(r.Header), h.Key) {
				t.Errorf("the redirect target received the key")
			}
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(other.Close)
		for _, code := range []int{301, 302, 307, 308} {
			p := serve(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.RequestURI(), code)
			})
			_, err := p.FetchUser(ctx, h.UserID)
			var se *provider.StatusError
			if !errors.As(err, &se) || se.StatusCode != code || !errors.Is(err, provider.ErrRedirect) || !strings.Contains(err.Error(), h.EnvVar) {
				t.Errorf("HTTP %d redirect: %v, want a StatusError %d naming %s", code, err, code, h.EnvVar)
			}
			if _, err := p.ListUsers(ctx, ""); err == nil {
				t.Errorf("HTTP %d redirect on the list: no error", code)
			}
		}
		if n := seen.Load(); n != 0 {
			t.Errorf("the redirect target got %d requests", n)
		}
	})

	t.Run("EchoedCredentialScrubbed", func(t *testing.T) {
		for _, status := range []int{400, 401, 403, 404, 409, 422, 500, 502} {
			p := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				dump := headerDump(r.Header)
				// Echo the headers in the shapes the providers' error bodies have.
				_, _ = w.Write([]byte(`{"message":` + quote(dump) + `,"code":` + quote(dump) +
					`,"error":` + quote(dump) + `,"errors":[{"code":"x","message":` + quote(dump) + `,"long_message":` + quote(dump) + `}]}`))
			})
			_, err := p.FetchUser(ctx, h.UserID)
			if err == nil {
				t.Fatalf("HTTP %d: no error", status)
			}
			if strings.Contains(err.Error(), h.Key) || strings.Contains(err.Error(), h.Key[len(h.Key)/2:]) {
				t.Errorf("HTTP %d: the error holds the key: %v", status, err)
			}
			_, err = p.ListUsers(ctx, "")
			if err != nil && strings.Contains(err.Error(), h.Key) {
				t.Errorf("HTTP %d on the list: the error holds the key: %v", status, err)
			}
		}
		// The same as plain text.
		p := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(headerDump(r.Header)))
		})
		if _, err := p.FetchUser(ctx, h.UserID); err == nil || strings.Contains(err.Error(), h.Key) {
			t.Errorf("plain-text echo: %v", err)
		}
	})

	t.Run("AnnouncedHugeAnswerRefused", func(t *testing.T) {
		p := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1073741824") // 1 GiB, never sent
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"id":"` + h.UserID + `"`))
		})
		if _, err := p.FetchUser(ctx, h.UserID); !errors.Is(err, provider.ErrResponseTooLarge) {
			t.Errorf("a 1 GiB answer: %v, want ErrResponseTooLarge", err)
		}
		if _, err := p.ListUsers(ctx, ""); !errors.Is(err, provider.ErrResponseTooLarge) {
			t.Errorf("a 1 GiB list page: %v, want ErrResponseTooLarge", err)
		}
	})

	t.Run("EndlessAnswerCut", func(t *testing.T) {
		for _, list := range []bool{false, true} {
			var written atomic.Int64
			p := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				prefix := `{"id":"` + h.UserID + `","data":[`
				if list {
					prefix = `{"items":[`
				}
				n, _ := w.Write([]byte(prefix + `"`))
				written.Add(int64(n))
				chunk := []byte(strings.Repeat("a", 64<<10))
				for r.Context().Err() == nil {
					n, err := w.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
			var err error
			limit := int64(provider.MaxUserResponseBytes)
			if list {
				_, err = p.ListUsers(ctx, "")
				limit = provider.MaxListResponseBytes
			} else {
				_, err = p.FetchUser(ctx, h.UserID)
			}
			if !errors.Is(err, provider.ErrResponseTooLarge) {
				t.Errorf("endless answer (list %v): %v, want ErrResponseTooLarge", list, err)
			}
			// The client stopped reading at the limit: what the server could
			// write is the limit plus what the connection buffers.
			if w := written.Load(); w > limit+16<<20 {
				t.Errorf("endless answer (list %v): the server wrote %d bytes before the client stopped (limit %d)", list, w, limit)
			}
		}
	})
}

func headerDump(h http.Header) string {
	// The credential headers first, so that even a short excerpt of the
	// echo holds the key.
	var b strings.Builder
	for _, k := range []string{"Authorization", "X-Stack-Secret-Server-Key"} {
		for _, v := range h.Values(k) {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	for k, vs := range h {
		if k == "Authorization" || k == "X-Stack-Secret-Server-Key" {
			continue
		}
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}
