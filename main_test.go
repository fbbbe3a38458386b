package main

import (
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/usersync/usersync/engine"
)

const module = "github.com/usersync/usersync"

// goListDeps returns the import paths of pkg and of every package it links,
// as `go list -deps` reports them from the module root.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to list dependencies with: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// testOnly reports whether a package is test tooling that a production
// binary must not link: the testing package and its subpackages, and the
// module's own packages built on them.
func testOnly(p string) bool {
	return p == "testing" || strings.HasPrefix(p, "testing/") ||
		p == module+"/provider/providertest" || strings.HasPrefix(p, module+"/provider/providertest/") ||
		p == module+"/internal/pgtest"
}

// TestBinaryLinksNoTestingPackage checks that the usersync binary (this
// package, demo included) does not link the testing package: the provider
// fakes the demo runs are built on provider/fakekit, not on the contract
// suite in provider/providertest.
func TestBinaryLinksNoTestingPackage(t *testing.T) {
	// The check itself must be able to fail: the contract suite imports
	// testing, so its dependency list must be flagged.
	if !slices.ContainsFunc(goListDeps(t, "./provider/providertest"), testOnly) {
		t.Fatal("go list -deps ./provider/providertest lists no testing package; the check below would pass vacuously")
	}

	deps := goListDeps(t, ".")
	// The list is the whole binary's, demo and fakes included.
	for _, want := range []string{module, module + "/internal/app", module + "/internal/demo", module + "/provider/fakekit", "net/http"} {
		if !slices.Contains(deps, want) {
			t.Errorf("go list -deps . does not list %s; got %d packages", want, len(deps))
		}
	}
	for _, p := range deps {
		if testOnly(p) {
			t.Errorf("the usersync binary links %s (test tooling); see `go list -deps .`", p)
		}
	}
}

// TestProductionCommandsDoNotNeedTheDemo checks that the package of the
// production commands (serve, worker, migrate, backfill, status) links
// neither the demo, nor the provider fakes, nor the throwaway PostgreSQL the
// demo starts.
func TestProductionCommandsDoNotNeedTheDemo(t *testing.T) {
	deps := goListDeps(t, "./internal/app")
	if !slices.Contains(deps, module+"/internal/app") {
		t.Fatalf("go list -deps ./internal/app does not list internal/app itself; got %v", deps)
	}
	for _, p := range deps {
		demoOnly := p == module+"/internal/demo" || p == module+"/provider/fakekit" ||
			p == module+"/internal/pgcluster" ||
			(strings.HasPrefix(p, module+"/") && strings.HasSuffix(path.Base(p), "fake"))
		if demoOnly || testOnly(p) {
			t.Errorf("internal/app links %s, which only the demo or tests need", p)
		}
	}
}

// TestSchemaSQLCopyMatches: the engine embeds a copy of schema.sql (Go
// cannot embed a file above the package); `go generate ./engine` refreshes
// it, and this test fails while the two differ.
func TestSchemaSQLCopyMatches(t *testing.T) {
	root, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(root) != engine.SchemaSQL {
		t.Error("engine/schema.sql differs from schema.sql: run `go generate ./engine`")
	}
}
