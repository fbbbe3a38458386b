package clerk_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/providertest/oascheck"
)

// clerkSpec loads the newest Clerk Backend API document from the reference
// folder beside the repository (skipping when it is absent).
func clerkSpec(t *testing.T) *oascheck.Doc {
	t.Helper()
	dir := filepath.Join(oascheck.ReferenceDir(t), "openapi")
	return oascheck.Load(t, oascheck.Newest(t, dir, "clerk-bapi-*.yml"))
}

// clerkUndeclared: Clerk's document declares 200/400/401/404 for GetUser and
// 200/400/401/422 for GetUserList, but not the 429 (with Retry-After) that
// its rate limiter answers nor 5xx; it defines their body elsewhere
// (components/responses/TooManyRequests, and the ClerkErrors envelope of
// every error). Those answers are validated against these. The organization
// operations declare 403 AuthorizationInvalid but not the 401 that a wrong
// secret key gets from every endpoint (validated against
// AuthenticationInvalid), and ListOrganizationMemberships declares no 404
// for an organization that does not exist (validated against
// ResourceNotFound; see docs/providers.md).
func clerkUndeclared(doc *oascheck.Doc, t *testing.T) func(string, int) *openapi3.ResponseRef {
	tooMany := doc.ComponentResponse(t, "TooManyRequests")
	errs := doc.ComponentResponse(t, "ClerkErrors")
	authn := doc.ComponentResponse(t, "AuthenticationInvalid")
	notFound := doc.ComponentResponse(t, "ResourceNotFound")
	return func(op string, status int) *openapi3.ResponseRef {
		switch {
		case status == http.StatusUnauthorized:
			return authn
		case status == http.StatusNotFound && op == "ListOrganizationMemberships":
			return notFound
		case status == http.StatusBadRequest && op == "ListOrganizationMemberships":
			return errs // a malformed number, as on every other list
		case status == http.StatusTooManyRequests:
			return tooMany
		case status >= 500:
			return errs
		}
		return nil
	}
}

// TestContractOpenAPI runs the provider contract suite with every request the
// client sends and every answer the fake gives validated against Clerk's own
// OpenAPI document (the newest clerk-bapi-*.yml): paths under the /v1 base,
// query parameters (and no undeclared ones), bearer security, and the
// response schemas (User, the bare User array, ClerkErrors) for 200, 401,
// 404, 429 and 5xx; and likewise the organization contract suite
// (Organization, Organizations, OrganizationMemberships).
func TestContractOpenAPI(t *testing.T) {
	doc := clerkSpec(t)
	cov := &oascheck.Coverage{}
	undeclared := clerkUndeclared(doc, t)
	t.Run("suite", func(t *testing.T) {
		providertest.Run(t, func(t *testing.T) fakekit.Fake {
			var chk *oascheck.Checker
			f := clerkfake.New(clerkfake.Options{
				PageSize:      250, // several pages and cursors in every listing
				WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return chk.Transport(rt) },
			})
			chk = oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: undeclared}, cov)
			return f
		})
	})
	t.Run("organizations", func(t *testing.T) { runOrganizationsOpenAPI(t, doc, cov, undeclared) })
	for _, want := range []struct {
		op     string
		status int
	}{
		{"GetUser", 200}, {"GetUser", 404}, {"GetUser", 401}, {"GetUser", 429}, {"GetUser", 503},
		{"GetUserList", 200}, {"GetUserList", 401}, {"GetUserList", 429},
		{"GetOrganization", 200}, {"GetOrganization", 404}, {"GetOrganization", 401}, {"GetOrganization", 429}, {"GetOrganization", 503},
		{"ListOrganizations", 200}, {"ListOrganizations", 401}, {"ListOrganizations", 429}, {"ListOrganizations", 503},
		{"ListOrganizationMemberships", 200}, {"ListOrganizationMemberships", 404}, {"ListOrganizationMemberships", 401},
		{"ListOrganizationMemberships", 429}, {"ListOrganizationMemberships", 503},
	} {
		if cov.Count(want.op, want.status) == 0 {
			t.Errorf("no %s answer %d was validated (validated: %s)", want.op, want.status, cov)
		}
	}
}

// TestFakeErrorsOpenAPI sends requests the document itself rejects (a page
// over 500, a malformed number) and checks that the fake refuses them too,
// with an answer of the documented shape.
func TestFakeErrorsOpenAPI(t *testing.T) {
	doc := clerkSpec(t)
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	chk := oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: clerkUndeclared(doc, t)}, nil)
	chk.ExpectRefused(t, f.HTTPClient().Transport, f.URL()+"/users", "Bearer "+f.Env()["CLERK_SECRET_KEY"], []oascheck.Refusal{
		{Query: "limit=501", Status: http.StatusUnprocessableEntity},
		{Query: "limit=0", Status: http.StatusUnprocessableEntity},
		{Query: "limit=ten", Status: http.StatusBadRequest},
		{Query: "offset=-1", Status: http.StatusUnprocessableEntity},
		{Query: "banned=maybe", Status: http.StatusBadRequest},
	})
}
