package oascheck_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider/providertest/oascheck"
)

// fakeTB collects the errors a checker reports at cleanup, so that a test
// can check a checker finds what it must without failing itself.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, strings.TrimSpace(strings.ReplaceAll(format, "%", "")))
	_ = args
}
func (f *fakeTB) Helper() {}

// TestCheckerFindsViolations checks that the checker reports what it must:
// a response body that breaks the schema, an undeclared query parameter, a
// request without bearer credentials, a path outside the document, and a
// status the operation does not declare; and stays silent on a valid
// exchange.
func TestCheckerFindsViolations(t *testing.T) {
	doc := oascheck.Load(t, filepath.Join(oascheck.ReferenceDir(t), "openapi", "workos-open-api-spec.yaml"))
	const good = `{"object":"user","id":"user_01E4ZCR3C56J083X43JQXF3JK5","first_name":"A","last_name":null,` +
		`"profile_picture_url":null,"email":"a@example.com","email_verified":true,"external_id":null,` +
		`"last_sign_in_at":null,"created_at":"2026-01-15T12:00:00.000Z","updated_at":"2026-01-15T12:00:00.000Z"}`
	var body string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()

	cases := []struct {
		name, path, body string
		status           int
		auth             bool
		wantProblem      string
	}{
		{"valid", "/user_management/users/user_01E4ZCR3C56J083X43JQXF3JK5", good, 200, true, ""},
		{"bad body", "/user_management/users/user_01E4ZCR3C56J083X43JQXF3JK5", strings.Replace(good, `"email":"a@example.com",`, "", 1), 200, true, "response 200"},
		{"no auth", "/user_management/users/user_01E4ZCR3C56J083X43JQXF3JK5", good, 200, false, "security"},
		{"undeclared param", "/user_management/users?limit=10&status=all", `{"object":"list","data":[],"list_metadata":{"before":null,"after":null}}`, 200, true, `query parameter "status"`},
		{"bad param", "/user_management/users?limit=1000", `{"object":"list","data":[],"list_metadata":{"before":null,"after":null}}`, 200, true, "limit"},
		{"unknown path", "/users/user_01E4ZCR3C56J083X43JQXF3JK5", good, 200, true, "no operation"},
		{"undeclared status", "/user_management/users/user_01E4ZCR3C56J083X43JQXF3JK5", `{"message":"x"}`, 418, true, "declares no 418"},
	}
	for _, tc := range cases {
		tb := &fakeTB{TB: t}
		chk := oascheck.New(tb, doc, srv.URL, oascheck.Options{}, nil)
		body, status = tc.body, tc.status
		req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth {
			req.Header.Set("Authorization", "Bearer sk_test_123")
		}
		resp, err := (&http.Client{Transport: chk.Transport(srv.Client().Transport)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		probs := strings.Join(chk.Problems(), "\n")
		switch {
		case tc.wantProblem == "" && probs != "":
			t.Errorf("%s: unexpected problems: %s", tc.name, probs)
		case tc.wantProblem != "" && !strings.Contains(probs, tc.wantProblem):
			t.Errorf("%s: problems %q do not mention %q", tc.name, probs, tc.wantProblem)
		}
		for _, fn := range tb.cleanups {
			fn()
		}
		if (len(tb.errs) > 0) != (tc.wantProblem != "") {
			t.Errorf("%s: %d errors reported at cleanup", tc.name, len(tb.errs))
		}
	}
}
