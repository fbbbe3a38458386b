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
	runHostile(t, hostileCase{key: h.Key, envVar: h.EnvVar, notFound: h.NotFound, id: h.UserID,
		target: func(t *testing.T, root string) hostileTarget {
			p := h.New(t, root, h.Key)
			return hostileTarget{
				gone:  provider.ErrUserNotFound,
				fetch: func() error { _, err := p.FetchUser(ctx, h.UserID); return err },
				others: map[string]func() error{
					"ListUsers": func() error { _, err := p.ListUsers(ctx, ""); return err },
				},
			}
		}})
	serve := func(t *testing.T, fn http.HandlerFunc) provider.Provider {
		srv := httptest.NewServer(fn)
		t.Cleanup(srv.Close)
		return h.New(t, srv.URL, h.Key)
	}

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

// hostileCase is what runHostile needs of one kind of resource: the
// credential, the API URL variable the hints name, the provider's own
// not-found answer, a well-formed id, and the client calls on a server.
type hostileCase struct {
	key, envVar string
	notFound    http.HandlerFunc
	id          string
	target      func(t *testing.T, root string) hostileTarget
}

// hostileTarget is a client's calls of one kind of resource: fetch, whose
// answer gone (the provider's own not-found) is a deletion, and the others.
type hostileTarget struct {
	gone   error
	fetch  func() error
	others map[string]func() error
}

func (h hostileTarget) all() map[string]func() error {
	calls := map[string]func() error{"fetch": h.fetch}
	for name, call := range h.others {
		calls[name] = call
	}
	return calls
}

// runHostile checks every call of c against servers that are not the
// provider's API or that misbehave: see RunHostile.
func runHostile(t *testing.T, c hostileCase) {
	t.Helper()
	serve := func(t *testing.T, fn http.HandlerFunc) hostileTarget {
		srv := httptest.NewServer(fn)
		t.Cleanup(srv.Close)
		return c.target(t, srv.URL)
	}

	t.Run("OwnNotFoundIsDeletion", func(t *testing.T) {
		h := serve(t, c.notFound)
		if err := h.fetch(); !errors.Is(err, h.gone) {
			t.Fatalf("the provider's own not-found answer: %v, want %v", err, h.gone)
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
				h := serve(t, func(w http.ResponseWriter, r *http.Request) {
					if a.ctype != "" {
						w.Header().Set("Content-Type", a.ctype)
					}
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte(a.body))
				})
				err := h.fetch()
				var se *provider.StatusError
				switch {
				case errors.Is(err, h.gone):
					t.Fatalf("a 404 that is not the provider's own answer was taken as a deletion: %v", err)
				case !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || !errors.Is(err, provider.ErrForeignNotFound):
					t.Fatalf("got %v, want a StatusError 404 wrapping ErrForeignNotFound (retried)", err)
				case !strings.Contains(err.Error(), c.envVar):
					t.Errorf("error %q gives no hint about %s", err, c.envVar)
				}
				for what, call := range h.others {
					if err := call(); err == nil || errors.Is(err, h.gone) {
						t.Errorf("%s on a foreign 404: %v, want an error that is not %v", what, err, h.gone)
					}
				}
			})
		}
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		var seen atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			if strings.Contains(headerDump(r.Header), c.key) {
				t.Errorf("the redirect target received the key")
			}
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(other.Close)
		for _, code := range []int{301, 302, 307, 308} {
			h := serve(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.RequestURI(), code)
			})
			for what, call := range h.all() {
				err := call()
				var se *provider.StatusError
				if !errors.As(err, &se) || se.StatusCode != code || !errors.Is(err, provider.ErrRedirect) || !strings.Contains(err.Error(), c.envVar) {
					t.Errorf("%s, HTTP %d redirect: %v, want a StatusError %d naming %s", what, code, err, code, c.envVar)
				}
			}
		}
		if n := seen.Load(); n != 0 {
			t.Errorf("the redirect target got %d requests", n)
		}
	})

	t.Run("EchoedCredentialScrubbed", func(t *testing.T) {
		echoes := map[string]func(status int) http.HandlerFunc{
			// The headers echoed in the shapes the providers' error bodies have.
			"json": func(status int) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					dump := headerDump(r.Header)
					_, _ = w.Write([]byte(`{"message":` + quote(dump) + `,"code":` + quote(dump) +
						`,"error":` + quote(dump) + `,"errors":[{"code":"x","message":` + quote(dump) + `,"long_message":` + quote(dump) + `}]}`))
				}
			},
			"plain text": func(status int) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(status)
					_, _ = w.Write([]byte(headerDump(r.Header)))
				}
			},
		}
		for shape, echo := range echoes {
			for _, status := range []int{400, 401, 403, 404, 409, 422, 500, 502} {
				h := serve(t, echo(status))
				for what, call := range h.all() {
					err := call()
					if err == nil {
						t.Fatalf("%s, HTTP %d (%s): no error", what, status, shape)
					}
					if strings.Contains(err.Error(), c.key) || strings.Contains(err.Error(), c.key[len(c.key)/2:]) {
						t.Errorf("%s, HTTP %d (%s): the error holds the key: %v", what, status, shape, err)
					}
				}
			}
		}
	})

	t.Run("AnnouncedHugeAnswerRefused", func(t *testing.T) {
		h := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1073741824") // 1 GiB, never sent
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"id":"` + c.id + `"`))
		})
		for what, call := range h.all() {
			if err := call(); !errors.Is(err, provider.ErrResponseTooLarge) {
				t.Errorf("%s, a 1 GiB answer: %v, want ErrResponseTooLarge", what, err)
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
