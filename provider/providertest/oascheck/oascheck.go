// Package oascheck checks a provider client and its fake against the
// provider's own OpenAPI document: every request the client sends must be
// valid for the document (path, method, parameters, security), and every
// response the fake gives must validate against the document's schema for
// that operation and status.
//
// It is meant for tests only: it reads the provider's published document from
// a folder beside the repository (see [ReferenceDir]) and skips the test when
// that folder is absent. It is built on github.com/getkin/kin-openapi.
package oascheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/usersync/usersync/internal/refdata"
)

// ReferenceDir returns the folder of the providers' published documents and
// payloads (see package refdata), or skips the test, saying why, when it is
// absent.
func ReferenceDir(t testing.TB) string {
	t.Helper()
	dir, err := refdata.Dir()
	if err != nil {
		t.Skipf("%v: this test checks usersync against them and cannot run here", err)
	}
	return dir
}

// Doc is a loaded OpenAPI document.
type Doc struct {
	// Name is the file's base name, for messages.
	Name string
	doc  *openapi3.T
}

// Load loads and resolves the OpenAPI document at path. It skips the test
// when the file is absent.
func Load(t testing.TB, path string) *Doc {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("OpenAPI document %s is absent (%v): the contract test needs the provider's own document", filepath.Base(path), err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load OpenAPI document %s: %v", filepath.Base(path), err)
	}
	return &Doc{Name: filepath.Base(path), doc: doc}
}

// Newest returns the path of the lexically last file in dir matching pattern
// (documents named by date, e.g. clerk-bapi-2026-05-12.yml), skipping the test
// when there is none.
func Newest(t testing.TB, dir, pattern string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(matches) == 0 {
		t.Skipf("no OpenAPI document %s in %s", pattern, dir)
	}
	sort.Strings(matches)
	return matches[len(matches)-1]
}

// Components returns the named response of the document's components
// (components/responses/<name>), for [Options.Undeclared]; it fails the test
// when there is none.
func (d *Doc) ComponentResponse(t testing.TB, name string) *openapi3.ResponseRef {
	t.Helper()
	if d.doc.Components == nil || d.doc.Components.Responses[name] == nil {
		t.Fatalf("%s has no components/responses/%s", d.Name, name)
	}
	return d.doc.Components.Responses[name]
}

// ComponentSchema returns the named schema of the document's components.
func (d *Doc) ComponentSchema(t testing.TB, name string) *openapi3.SchemaRef {
	t.Helper()
	if d.doc.Components == nil || d.doc.Components.Schemas[name] == nil {
		t.Fatalf("%s has no components/schemas/%s", d.Name, name)
	}
	return d.doc.Components.Schemas[name]
}

// OperationResponse returns the response the operation with that id
// declares for status; it fails the test when there is none.
func (d *Doc) OperationResponse(t testing.TB, operationID string, status int) *openapi3.ResponseRef {
	t.Helper()
	for _, item := range d.doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID == operationID {
				if r := op.Responses.Status(status); r != nil {
					return r
				}
				t.Fatalf("%s: operation %s declares no %d answer", d.Name, operationID, status)
			}
		}
	}
	t.Fatalf("%s has no operation %s", d.Name, operationID)
	return nil
}

// Options adjusts a [Checker].
type Options struct {
	// Undeclared returns the response definition to validate an answer with
	// when the operation declares neither its status nor a default (e.g. a
	// 429 or 5xx, which both providers' documents leave out of the user
	// endpoints while defining their error envelope elsewhere). nil: such
	// answers are reported as errors.
	Undeclared func(operationID string, status int) *openapi3.ResponseRef
}

// Coverage counts, across checkers, the (operation, status) pairs whose
// responses were validated, so a test can require that the interesting ones
// (200, 404, 401, 429, 5xx) actually happened.
type Coverage struct {
	mu   sync.Mutex
	seen map[string]int
}

// Add records one validated answer.
func (c *Coverage) Add(operationID string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]int{}
	}
	c.seen[operationID+" "+strconv.Itoa(status)]++
}

// Count returns how many answers of that operation and status were validated.
func (c *Coverage) Count(operationID string, status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[operationID+" "+strconv.Itoa(status)]
}

// String lists what was validated, for failure messages.
func (c *Coverage) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.seen))
	for k, n := range c.seen {
		keys = append(keys, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// Checker validates the traffic of one client against one document whose
// servers were replaced by one base URL (the fake's).
type Checker struct {
	t      testing.TB
	name   string
	router routers.Router
	opts   Options
	cov    *Coverage

	mu       sync.Mutex
	problems []string
	seenProb map[string]int
}

// New returns a checker for traffic to baseURL (the fake's API base URL,
// including any base path the document's servers have, such as Clerk's /v1).
// Problems found are reported as test errors when t's test ends (a transport
// may still be in use by goroutines the test has not waited for, which must
// not call t.Errorf late). cov may be nil.
func New(t testing.TB, d *Doc, baseURL string, opts Options, cov *Coverage) *Checker {
	t.Helper()
	doc := *d.doc // shallow copy: only the servers differ per checker
	doc.Servers = openapi3.Servers{{URL: strings.TrimRight(baseURL, "/")}}
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatalf("%s: build router: %v", d.Name, err)
	}
	if cov == nil {
		cov = &Coverage{}
	}
	c := &Checker{t: t, name: d.Name, router: router, opts: opts, cov: cov}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.problems {
			if n := c.seenProb[p]; n > 1 {
				t.Errorf("%s: %s (%d times)", c.name, p, n)
			} else {
				t.Errorf("%s: %s", c.name, p)
			}
		}
	})
	return c
}

// problem records a problem once (repeats are counted), shortened: schema
// errors quote the whole schema, which says nothing the document does not.
func (c *Checker) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if i := strings.Index(msg, "\nSchema:"); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seenProb == nil {
		c.seenProb = map[string]int{}
	}
	if c.seenProb[msg]++; c.seenProb[msg] == 1 {
		c.problems = append(c.problems, msg)
	}
}

// Problems returns the problems found so far (they are also reported when
// the test ends).
func (c *Checker) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// Transport wraps base (nil: http.DefaultTransport) so that every request and
// response that passes through it is validated.
func (c *Checker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, base: base}
}

type transport struct {
	c    *Checker
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	input, reqErr := tr.c.validateRequest(req)
	if reqErr != nil {
		tr.c.problem("request %s %s: %v", req.Method, redactedURL(req.URL), reqErr)
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil || input == nil {
		return resp, err
	}
	body, readErr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if readErr != nil {
		// A dropped connection mid-body: nothing complete to validate.
		return resp, nil
	}
	if err := tr.c.validateResponse(input, resp.StatusCode, resp.Header, body); err != nil {
		tr.c.problem("response %d to %s %s: %v", resp.StatusCode, req.Method, input.Route.Path, err)
	}
	return resp, nil
}

// Probe sends req through base and validates only the response (for
// requests that are deliberately invalid, to check the fake's error answer);
// it reports whether the document also finds the request invalid, and the
// status.
func (c *Checker) Probe(base http.RoundTripper, req *http.Request) (requestInvalid bool, status int, err error) {
	input, reqErr := c.validateRequest(req)
	if input == nil {
		return false, 0, fmt.Errorf("no operation of %s matches %s %s: %v", c.name, req.Method, redactedURL(req.URL), reqErr)
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return reqErr != nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reqErr != nil, resp.StatusCode, err
	}
	if err := c.validateResponse(input, resp.StatusCode, resp.Header, body); err != nil {
		c.problem("response %d to %s %s: %v", resp.StatusCode, req.Method, redactedURL(req.URL), err)
	}
	return reqErr != nil, resp.StatusCode, nil
}

// validateRequest finds the operation and validates the request against it.
// input is nil when no operation matches.
func (c *Checker) validateRequest(req *http.Request) (*openapi3filter.RequestValidationInput, error) {
	route, pathParams, err := c.router.FindRoute(req)
	if err != nil {
		return nil, fmt.Errorf("no operation in the document: %w", err)
	}
	input := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: pathParams,
		Route:      route,
		Options: &openapi3filter.Options{
			MultiError:         true,
			AuthenticationFunc: bearerAuth,
		},
	}
	var errs []error
	if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
		errs = append(errs, err)
	}
	// kin-openapi ignores query parameters the operation does not declare; a
	// client that sends one relies on a filter or option the provider does
	// not have (or has under another name), so flag it.
	declared := map[string]bool{}
	for _, params := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	for name := range req.URL.Query() {
		if !declared[name] {
			errs = append(errs, fmt.Errorf("query parameter %q is not declared by operation %s", name, route.Operation.OperationID))
		}
	}
	return input, errors.Join(errs...)
}

// validateResponse validates one answer against the operation's definition
// for its status (or Options.Undeclared's).
func (c *Checker) validateResponse(input *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	route := input.Route
	opID := route.Operation.OperationID
	responses := route.Operation.Responses
	if responses.Status(status) == nil && responses.Default() == nil {
		var alt *openapi3.ResponseRef
		if c.opts.Undeclared != nil {
			alt = c.opts.Undeclared(opID, status)
		}
		if alt == nil {
			return fmt.Errorf("operation %s declares no %d answer", opID, status)
		}
		// Validate against a copy of the operation that declares it.
		op := *route.Operation
		op.Responses = openapi3.NewResponses(openapi3.WithStatus(status, alt))
		r := *route
		r.Operation = &op
		in := *input
		in.Route = &r
		input = &in
	}
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
	})
	if err == nil {
		c.cov.Add(opID, status)
	}
	return err
}

// bearerAuth checks HTTP bearer security schemes: an Authorization header
// "Bearer <token>" with a non-empty token. Whether the token is right is the
// fake's business (it answers 401), not the document's.
func bearerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %q (%s) is not checked by oascheck", in.SecuritySchemeName, s.Type)
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return fmt.Errorf("security scheme %q: no Authorization: Bearer header", in.SecuritySchemeName)
	}
	return nil
}

// redactedURL is the request URL for messages (it holds no credentials: keys
// travel in headers).
func redactedURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// ValidateSchema validates a JSON value against the named component schema
// (components/schemas/<name>); all violations are reported.
func (d *Doc) ValidateSchema(name string, value []byte) error {
	if d.doc.Components == nil || d.doc.Components.Schemas[name] == nil || d.doc.Components.Schemas[name].Value == nil {
		return fmt.Errorf("%s has no components/schemas/%s", d.Name, name)
	}
	var v any
	if err := json.Unmarshal(value, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	opts := []openapi3.SchemaValidationOption{openapi3.MultiErrors()}
	if d.doc.IsOpenAPI31OrLater() {
		opts = append(opts, openapi3.EnableJSONSchema2020())
	}
	return d.doc.Components.Schemas[name].Value.VisitJSON(v, opts...)
}

// Refusal is a list request the document itself rejects (Query, e.g.
// "limit=501") and the status the fake must answer it with.
type Refusal struct {
	Query  string
	Status int
}

// ExpectRefused sends GET listURL?Query for each refusal, with the given
// Authorization header, through base, and fails t unless the document
// rejects the request and the fake answers it with the refusal's status in
// a body of the documented shape.
func (c *Checker) ExpectRefused(t testing.TB, base http.RoundTripper, listURL, authorization string, refusals []Refusal) {
	t.Helper()
	for _, r := range refusals {
		req, err := http.NewRequest(http.MethodGet, listURL+"?"+r.Query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", authorization)
		invalid, status, err := c.Probe(base, req)
		if err != nil {
			t.Fatalf("%s: %v", r.Query, err)
		}
		if !invalid {
			t.Errorf("%s: the document accepts this request; the probe is meant to be invalid", r.Query)
		}
		if status != r.Status {
			t.Errorf("%s: fake answered %d, want %d", r.Query, status, r.Status)
		}
	}
}
