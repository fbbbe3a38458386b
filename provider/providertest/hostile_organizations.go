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

// HostileOrganizations describes a provider client for
// [RunHostileOrganizations].
type HostileOrganizations struct {
	// New returns a client of the API served at root (scheme://host:port,
	// no path) that authenticates with key.
	New func(t *testing.T, root, key string) provider.Organizations
	// Key is the client's secret credential.
	Key string
	// OrganizationID is a well-formed organization id for the provider.
	OrganizationID string
	// NotFound writes the provider's own answer for an organization that
	// does not exist (status, headers and body as the real API sends them).
	NotFound http.HandlerFunc
	// EnvVar names the API URL variable the error hints must name.
	EnvVar string
}

// RunHostileOrganizations is [RunHostile] for the organization calls
// (docs/http.md; docs/guarantees.md §9, §10): only the provider's own
// not-found answer says an organization is gone; a redirect is never
// followed with the credential; an error answer that echoes the credential
// does not put it in the error; an answer announced too large is refused.
func RunHostileOrganizations(t *testing.T, h HostileOrganizations) {
	t.Helper()
	ctx := context.Background()
	serve := func(t *testing.T, fn http.HandlerFunc) provider.Organizations {
		srv := httptest.NewServer(fn)
		t.Cleanup(srv.Close)
		return h.New(t, srv.URL, h.Key)
	}
	calls := func(o provider.Organizations) map[string]func() error {
		return map[string]func() error{
			"FetchOrganization": func() error { _, err := o.FetchOrganization(ctx, h.OrganizationID); return err },
			"ListOrganizations": func() error { _, err := o.ListOrganizations(ctx, ""); return err },
			"ListMemberships":   func() error { _, err := o.ListMemberships(ctx, h.OrganizationID, ""); return err },
		}
	}

	t.Run("OwnNotFoundIsDeletion", func(t *testing.T) {
		o := serve(t, h.NotFound)
		if _, err := o.FetchOrganization(ctx, h.OrganizationID); !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Fatalf("the provider's own not-found answer: %v, want ErrOrganizationNotFound", err)
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
		} {
			t.Run(name, func(t *testing.T) {
				o := serve(t, func(w http.ResponseWriter, r *http.Request) {
					if a.ctype != "" {
						w.Header().Set("Content-Type", a.ctype)
					}
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte(a.body))
				})
				_, err := o.FetchOrganization(ctx, h.OrganizationID)
				var se *provider.StatusError
				switch {
				case errors.Is(err, provider.ErrOrganizationNotFound):
					t.Fatalf("a 404 that is not the provider's own answer was taken as a deletion: %v", err)
				case !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || !errors.Is(err, provider.ErrForeignNotFound):
					t.Fatalf("got %v, want a StatusError 404 wrapping ErrForeignNotFound (retried)", err)
				case !strings.Contains(err.Error(), h.EnvVar):
					t.Errorf("error %q gives no hint about %s", err, h.EnvVar)
				}
				for what, call := range calls(o) {
					if err := call(); err == nil || errors.Is(err, provider.ErrOrganizationNotFound) {
						t.Errorf("%s on a foreign 404: %v, want an error that is not ErrOrganizationNotFound", what, err)
					}
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
			o := serve(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.RequestURI(), code)
			})
			for what, call := range calls(o) {
				err := call()
				var se *provider.StatusError
				if !errors.As(err, &se) || se.StatusCode != code || !errors.Is(err, provider.ErrRedirect) || !strings.Contains(err.Error(), h.EnvVar) {
					t.Errorf("%s, HTTP %d redirect: %v, want a StatusError %d naming %s", what, code, err, code, h.EnvVar)
				}
			}
		}
		if n := seen.Load(); n != 0 {
			t.Errorf("the redirect target got %d requests", n)
		}
	})

	t.Run("EchoedCredentialScrubbed", func(t *testing.T) {
		for _, status := range []int{400, 401, 403, 404, 409, 422, 500, 502} {
			o := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				dump := headerDump(r.Header)
				_, _ = w.Write([]byte(`{"message":` + quote(dump) + `,"code":` + quote(dump) +
					`,"error":` + quote(dump) + `,"errors":[{"code":"x","message":` + quote(dump) + `,"long_message":` + quote(dump) + `}]}`))
			})
			for what, call := range calls(o) {
				err := call()
				if err == nil {
					t.Fatalf("%s, HTTP %d: no error", what, status)
				}
				if strings.Contains(err.Error(), h.Key) || strings.Contains(err.Error(), h.Key[len(h.Key)/2:]) {
					t.Errorf("%s, HTTP %d: the error holds the key: %v", what, status, err)
				}
			}
		}
	})

	t.Run("AnnouncedHugeAnswerRefused", func(t *testing.T) {
		o := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1073741824") // 1 GiB, never sent
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"id":"` + h.OrganizationID + `"`))
		})
		for what, call := range calls(o) {
			if err := call(); !errors.Is(err, provider.ErrResponseTooLarge) {
				t.Errorf("%s, a 1 GiB answer: %v, want ErrResponseTooLarge", what, err)
			}
		}
	})
}
