package workos_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

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
		"UserlandUsersController_get[0]":  404,
		"UserlandUsersController_list[0]": 422,
	}[opID])
}

// TestContractOpenAPI runs the provider contract suite with every request the
// client sends and every answer the fake gives validated against WorkOS's own
// OpenAPI document: paths, query parameters (and no undeclared ones), bearer
// security, and the UserlandUser / UserlandUserList / error schemas.
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
	const get, list = "UserlandUsersController_get[0]", "UserlandUsersController_list[0]"
	for _, want := range []struct {
		op     string
		status int
	}{
		{get, 200}, {get, 404}, {get, 401}, {get, 429}, {get, 503},
		{list, 200}, {list, 401}, {list, 429},
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
}
