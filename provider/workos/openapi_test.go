package workos_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/providertest/oascheck"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// workosSpec loads WorkOS's OpenAPI document from the reference folder
// beside the repository (skipping when it is absent).
func workosSpec(t *testing.T) *oascheck.Doc {
	t.Helper()
	return oascheck.Load(t, filepath.Join(oascheck.ReferenceDir(t), "openapi", "workos-open-api-spec.yaml"))
}

// workosUndeclared: WorkOS's document declares only 200 and 404 for
// GET /user_management/users/{id} and 200 and 422 for the list, although the
// API also answers 401 (bad key), 429 (with Retry-After) and 5xx. Every
// WorkOS error body it does define is {"message": string, ...}; those answers
// are validated against the operation's own declared error (the 404 of the
// lookup, the 422 of the list).
func workosUndeclared(doc *oascheck.Doc, t *testing.T) func(string, int) *openapi3.ResponseRef {
	return func(opID string, status int) *openapi3.ResponseRef {
		if status < 400 {
			return nil
		}
		return errorResponse(doc, t, opID)
	}
}

func errorResponse(doc *oascheck.Doc, t *testing.T, opID string) *openapi3.ResponseRef {
	return doc.OperationResponse(t, opID, map[string]int{
		"UserlandUsersController_get[0]":                     404,
		"UserlandUsersController_list[0]":                    422,
		"OrganizationsController_find":                       404,
		"OrganizationsController_list":                       422,
		"UserlandUserOrganizationMembershipsController_list": 404,
		"UserlandUserOrganizationMembershipsController_get":  404,
	}[opID])
}

// TestContractOpenAPI runs the provider contract suites (users, and
// organizations) with every request the client sends and every answer the
// fake gives validated against WorkOS's own OpenAPI document: paths, query
// parameters (and no undeclared ones), bearer security, and the UserlandUser
// / UserlandUserList / Organization / OrganizationList /
// UserlandUserOrganizationMembershipList / error schemas.
func TestContractOpenAPI(t *testing.T) {
	doc := workosSpec(t)
	cov := &oascheck.Coverage{}
	undeclared := workosUndeclared(doc, t)
	t.Run("suite", func(t *testing.T) {
		providertest.Run(t, func(t *testing.T) fakekit.Fake {
			var chk *oascheck.Checker
			f := workosfake.New(workosfake.Options{
				PageSize:      50,
				WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return chk.Transport(rt) },
			})
			chk = oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: undeclared}, cov)
			return f
		})
	})
	t.Run("organizations", func(t *testing.T) {
		providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
			var chk *oascheck.Checker
			f := workosfake.New(workosfake.Options{
				PageSize:      50,
				WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return chk.Transport(rt) },
			})
			chk = oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: undeclared}, cov)
			return f
		})
	})
	const get, list = "UserlandUsersController_get[0]", "UserlandUsersController_list[0]"
	const oget, olist, mlist = "OrganizationsController_find", "OrganizationsController_list", "UserlandUserOrganizationMembershipsController_list"
	for _, want := range []struct {
		op     string
		status int
	}{
		{get, 200}, {get, 404}, {get, 401}, {get, 429}, {get, 503},
		{list, 200}, {list, 401}, {list, 429},
		{oget, 200}, {oget, 404}, {oget, 401}, {oget, 429}, {oget, 503},
		{olist, 200}, {olist, 401}, {olist, 429}, {olist, 503},
		{mlist, 200}, {mlist, 404}, {mlist, 401}, {mlist, 429}, {mlist, 503},
	} {
		if cov.Count(want.op, want.status) == 0 {
			t.Errorf("no %s answer %d was validated (validated: %s)", want.op, want.status, cov)
		}
	}
}

// TestOrganizationsOpenAPI sends the client's organization and membership
// requests, and the fake's answers (200, WorkOS's 404s, 401, 429, 5xx, a
// refused cursor), through a checker of WorkOS's OpenAPI document: paths,
// the statuses array's encoding (form, not exploded), and the Organization,
// OrganizationList, UserlandUserOrganizationMembershipList and error schemas.
func TestOrganizationsOpenAPI(t *testing.T) {
	doc := workosSpec(t)
	cov := &oascheck.Coverage{}
	var chk *oascheck.Checker
	f := workosfake.New(workosfake.Options{
		PageSize:      3,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return chk.Transport(rt) },
	})
	defer f.Close()
	chk = oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: workosUndeclared(doc, t)}, cov)
	c := f.Organizations()
	ctx := context.Background()
	users := f.Seed(8)
	orgs := f.SeedOrganizations(7, 5)
	org := f.CreateOrganization(users[0])
	for _, u := range users[1:] {
		f.AddMember(org, u, "")
	}
	f.SetMembershipStatus(org, users[1], "inactive")
	f.SetMembershipStatus(org, users[2], "pending")
	f.UpdateOrganization(orgs[0])

	mustOK := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for cursor := ""; ; {
		page, err := c.ListOrganizations(ctx, cursor)
		mustOK("list organizations", err)
		for _, o := range page.Organizations {
			_, err := c.FetchOrganization(ctx, o.ID)
			mustOK("fetch "+o.ID, err)
			for mc := ""; ; {
				mp, err := c.ListMemberships(ctx, o.ID, mc)
				mustOK("list memberships of "+o.ID, err)
				if mc = mp.Next; mc == "" {
					break
				}
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	// WorkOS's 404s: an organization that is gone, and (after an empty page)
	// a membership cursor that is gone.
	f.DeleteOrganization(orgs[1])
	if _, err := c.FetchOrganization(ctx, orgs[1]); !errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("fetch deleted: %v", err)
	}
	if _, err := c.ListMemberships(ctx, orgs[1], ""); !errors.Is(err, provider.ErrOrganizationNotFound) {
		t.Errorf("memberships of deleted: %v", err)
	}
	var lchk *oascheck.Checker
	lenient := workosfake.New(workosfake.Options{
		LenientCursor: true,
		PageSize:      2,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return lchk.Transport(rt) },
	})
	defer lenient.Close()
	lchk = oascheck.New(t, doc, lenient.URL(), oascheck.Options{Undeclared: workosUndeclared(doc, t)}, cov)
	lu := lenient.Seed(3)
	lorg := lenient.CreateOrganization(lu[0])
	lenient.AddMember(lorg, lu[1], "")
	lenient.AddMember(lorg, lu[2], "")
	lc := lenient.Organizations()
	page, err := lc.ListMemberships(ctx, lorg, "")
	mustOK("lenient memberships", err)
	lenient.RemoveMember(lorg, lu[1])
	lenient.RemoveMember(lorg, lu[2])
	if _, err := lc.ListMemberships(ctx, lorg, page.Next); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("gone membership cursor: %v", err)
	}
	// Failures.
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		f.FailNext(3, status, time.Second)
		_, _ = c.FetchOrganization(ctx, org)
		_, _ = c.ListOrganizations(ctx, "")
		_, _ = c.ListMemberships(ctx, org, "")
	}
	bad := f.ProviderWithBadCredentials().(provider.Organizations)
	for _, err := range []error{
		func() error { _, err := bad.FetchOrganization(ctx, org); return err }(),
		func() error { _, err := bad.ListOrganizations(ctx, ""); return err }(),
		func() error { _, err := bad.ListMemberships(ctx, org, ""); return err }(),
	} {
		if !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("bad credentials: %v", err)
		}
	}

	const (
		find  = "OrganizationsController_find"
		list  = "OrganizationsController_list"
		mlist = "UserlandUserOrganizationMembershipsController_list"
		mget  = "UserlandUserOrganizationMembershipsController_get"
	)
	for _, want := range []struct {
		op     string
		status int
	}{
		{find, 200}, {find, 404}, {find, 401}, {find, 429}, {find, 503},
		{list, 200}, {list, 401}, {list, 429}, {list, 503},
		{mlist, 200}, {mlist, 404}, {mlist, 401}, {mlist, 429}, {mlist, 503},
		{mget, 404},
	} {
		if cov.Count(want.op, want.status) == 0 {
			t.Errorf("no %s answer %d was validated (validated: %s)", want.op, want.status, cov)
		}
	}
}

// TestFakeErrorsOpenAPI sends requests the document itself rejects and checks
// that the fake refuses them too, with an answer of the documented shape.
func TestFakeErrorsOpenAPI(t *testing.T) {
	doc := workosSpec(t)
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	chk := oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: workosUndeclared(doc, t)}, nil)
	chk.ExpectRefused(t, f.HTTPClient().Transport, f.URL()+"/user_management/users", "Bearer "+f.Env()["WORKOS_API_KEY"], []oascheck.Refusal{
		{Query: "limit=101", Status: http.StatusUnprocessableEntity},
		{Query: "limit=0", Status: http.StatusUnprocessableEntity},
		{Query: "order=sideways", Status: http.StatusUnprocessableEntity},
	})
	chk.ExpectRefused(t, f.HTTPClient().Transport, f.URL()+"/organizations", "Bearer "+f.Env()["WORKOS_API_KEY"], []oascheck.Refusal{
		{Query: "limit=101", Status: http.StatusUnprocessableEntity},
		{Query: "limit=0", Status: http.StatusUnprocessableEntity},
		{Query: "order=sideways", Status: http.StatusUnprocessableEntity},
	})
	org := f.CreateOrganization("")
	chk.ExpectRefused(t, f.HTTPClient().Transport, f.URL()+"/user_management/organization_memberships", "Bearer "+f.Env()["WORKOS_API_KEY"], []oascheck.Refusal{
		{Query: "organization_id=" + org + "&limit=101", Status: http.StatusUnprocessableEntity},
		{Query: "organization_id=" + org + "&statuses=active,deleted", Status: http.StatusUnprocessableEntity},
	})
	// Neither filter: a request the document accepts (both are optional
	// there) and WorkOS refuses with its documented 400.
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/user_management/organization_memberships?limit=5", nil)
	req.Header.Set("Authorization", "Bearer "+f.Env()["WORKOS_API_KEY"])
	if _, status, err := chk.Probe(f.HTTPClient().Transport, req); err != nil || status != http.StatusBadRequest {
		t.Errorf("no filter: %d, %v", status, err)
	}
}

// TestOrganizationWebhooksOpenAPI validates the fake's organization,
// membership and domain deliveries against the document's EventSchema
// (whose membership events have neither organization_name nor user).
func TestOrganizationWebhooksOpenAPI(t *testing.T) {
	doc := workosSpec(t)
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	u := f.CreateUser()
	org := f.CreateOrganization(u)
	var bodies [][]byte
	add := func(b []byte, _ http.Header) { bodies = append(bodies, b) }
	add(f.OrganizationWebhook(provider.EventOrganizationChanged, org))
	add(f.MembershipWebhook(org, u, false))
	add(f.OrganizationDomainWebhook(org))
	f.UpdateOrganization(org)
	f.UpdateMember(org, u, "")
	add(f.OrganizationWebhook(provider.EventOrganizationChanged, org))
	add(f.MembershipWebhook(org, u, false))
	add(f.IgnoredWebhook())
	f.DeleteOrganization(org)
	add(f.MembershipWebhook(org, u, true))
	add(f.OrganizationWebhook(provider.EventOrganizationDeleted, org))
	// EventSchema is a oneOf by event type: validate each delivery against
	// its own type's branch, for readable failures.
	branches := map[string]*openapi3.Schema{}
	event := doc.ComponentSchema(t, "EventSchema").Value
	for _, part := range append(openapi3.SchemaRefs{{Value: event}}, event.AllOf...) {
		for _, br := range part.Value.OneOf {
			if ev := br.Value.Properties["event"]; ev != nil && ev.Value != nil {
				if c, ok := ev.Value.Const.(string); ok {
					branches[c] = br.Value
				}
			}
		}
	}
	for _, b := range bodies {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		typ, _ := v["event"].(string)
		br := branches[typ]
		if br == nil {
			t.Errorf("EventSchema has no %s", typ)
			continue
		}
		if err := br.VisitJSON(v, openapi3.MultiErrors(), openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s: %s\n%v", typ, b, err)
		}
	}
}
