package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usersync/usersync/internal/webhook"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
)

// stubProvider accepts bodies of the form "<kind>:<id>" signed with the
// header X-Sig: ok; everything else is a parse error of the kind named.
type stubProvider struct{ provider.Provider }

func (stubProvider) Name() string { return "stub" }

func (stubProvider) ParseWebhook(body []byte, h http.Header) (provider.Event, error) {
	if h.Get("X-Sig") != "ok" {
		return provider.Event{}, fmt.Errorf("stub: %w: no signature", provider.ErrBadSignature)
	}
	kind, id, _ := strings.Cut(string(body), ":")
	switch kind {
	case "changed":
		return provider.Event{Type: "user.updated", Kind: provider.EventUserChanged, UserID: id}, nil
	case "ignored":
		return provider.Event{Type: "session.created", Kind: provider.EventIgnored}, nil
	case "org":
		return provider.Event{Type: "organization.updated", Kind: provider.EventOrganizationChanged, OrganizationID: id}, nil
	case "orgdeleted":
		return provider.Event{Type: "organization.deleted", Kind: provider.EventOrganizationDeleted, OrganizationID: id}, nil
	case "member":
		org, user, _ := strings.Cut(id, "/")
		return provider.Event{Type: "organizationMembership.deleted", Kind: provider.EventMembershipChanged, OrganizationID: org, UserID: user}, nil
	}
	return provider.Event{}, fmt.Errorf("stub: %w: id %q is \x07 odd", provider.ErrBadPayload, id)
}

type stubCommitter struct {
	err  error
	refs []jobs.UserRef
}

func (c *stubCommitter) Submit(_ context.Context, ref jobs.UserRef) error {
	if c.err != nil {
		return c.err
	}
	c.refs = append(c.refs, ref)
	return nil
}

func TestHandlerStatuses(t *testing.T) {
	cases := []struct {
		name, method, path, body, sig string
		commitErr                     error
		want                          int
		enqueued                      bool
	}{
		{"change", "POST", "/webhooks/stub", "changed:u1", "ok", nil, 200, true},
		{"ignored event", "POST", "/webhooks/stub", "ignored:", "ok", nil, 200, false},
		{"bad signature", "POST", "/webhooks/stub", "changed:u1", "", nil, 401, false},
		{"bad payload", "POST", "/webhooks/stub", "junk:\x00", "ok", nil, 400, false},
		{"database down", "POST", "/webhooks/stub", "changed:u1", "ok", errors.New("db down"), 503, false},
		{"too large", "POST", "/webhooks/stub", strings.Repeat("x", webhook.MaxBodyBytes+1), "ok", nil, 413, false},
		{"unknown provider", "POST", "/webhooks/other", "changed:u1", "ok", nil, 404, false},
		{"GET", "GET", "/webhooks/stub", "", "ok", nil, 405, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			com := &stubCommitter{err: c.commitErr}
			h := webhook.NewHandler([]provider.Provider{stubProvider{}}, com, nil, slog.New(slog.DiscardHandler))
			mux := http.NewServeMux()
			mux.Handle("/webhooks/{provider}", h)
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			req.Header.Set("X-Sig", c.sig)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, c.want, rec.Body.String())
			}
			if got := len(com.refs) > 0; got != c.enqueued {
				t.Fatalf("enqueued = %v, want %v", got, c.enqueued)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("answer is not JSON: %q", rec.Body.String())
			}
		})
	}
}

type outcomes struct{ got []string }

func (o *outcomes) Webhook(_, eventType, outcome string) {
	o.got = append(o.got, eventType+" "+outcome)
}

// Organization and membership events: with organizations off, answered
// 200 and ignored (nothing enqueued); with them on, each asks for a sync of
// its organization (a membership event too, not of its user).
func TestHandlerOrganizationEvents(t *testing.T) {
	for _, on := range []bool{false, true} {
		for _, c := range []struct{ body, typ, org string }{
			{"org:org_1", "organization.updated", "org_1"},
			{"orgdeleted:org_2", "organization.deleted", "org_2"},
			{"member:org_3/user_9", "organizationMembership.deleted", "org_3"},
		} {
			t.Run(fmt.Sprintf("on=%v/%s", on, c.typ), func(t *testing.T) {
				com := &stubCommitter{}
				obs := &outcomes{}
				h := webhook.NewHandler([]provider.Provider{stubProvider{}}, com, obs, slog.New(slog.DiscardHandler)).SyncOrganizations(on)
				req := httptest.NewRequest("POST", "/webhooks/stub", strings.NewReader(c.body))
				req.Header.Set("X-Sig", "ok")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					t.Fatalf("status %d, want 200", rec.Code)
				}
				if !on {
					if len(com.refs) != 0 || len(obs.got) != 1 || obs.got[0] != c.typ+" ignored" {
						t.Fatalf("organizations off: enqueued %+v, outcomes %v; want nothing, [%s ignored]", com.refs, obs.got, c.typ)
					}
					return
				}
				want := jobs.UserRef{Provider: "stub", OrganizationID: c.org, Deleted: c.typ == "organization.deleted"}
				if len(com.refs) != 1 || com.refs[0] != want || len(obs.got) != 1 || obs.got[0] != c.typ+" enqueued" {
					t.Fatalf("organizations on: enqueued %+v, outcomes %v; want [%+v], [%s enqueued]", com.refs, obs.got, want, c.typ)
				}
			})
		}
	}
}
