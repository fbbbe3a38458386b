package clerk_test

import (
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/providertest"
	"github.com/usersync/usersync/provider/providertest/oascheck"
)

func TestOrganizationsContract(t *testing.T) {
	providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
		return clerkfake.New(clerkfake.Options{})
	})
}

// TestOrganizationsContractSmallPages runs the organization contract with
// pages of 7 (an overlap of 1), so that every listing has many pages and the
// deletions between them exercise the overlap check.
func TestOrganizationsContractSmallPages(t *testing.T) {
	providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
		return clerkfake.New(clerkfake.Options{PageSize: 7})
	})
}

// runOrganizationsOpenAPI runs the organization contract with every request
// and answer validated against Clerk's document (part of TestContractOpenAPI).
func runOrganizationsOpenAPI(t *testing.T, doc *oascheck.Doc, cov *oascheck.Coverage, undeclared func(string, int) *openapi3.ResponseRef) {
	providertest.RunOrganizations(t, func(t *testing.T) fakekit.OrganizationsFake {
		var chk *oascheck.Checker
		f := clerkfake.New(clerkfake.Options{
			PageSize:      250, // several pages and cursors in every long listing
			WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return chk.Transport(rt) },
		})
		chk = oascheck.New(t, doc, f.URL(), oascheck.Options{Undeclared: undeclared}, cov)
		return f
	})
}
