package integration_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usersync/usersync/internal/pgtest"
)

// TestDemoOrganizations runs `usersync demo --organizations` (on a test
// database) and waits until its live output shows organizations created,
// renamed and deleted and members joining and leaving, each read back from
// organizations_sync and memberships_sync as the notifications arrive; then
// Ctrl-C stops it cleanly, and the tables hold what it showed.
func TestDemoOrganizations(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	cmd := exec.Command(binPath, "demo", "--organizations", "--users", "40", "--rate", "25")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "USERSYNC_LOG_FORMAT=json", "DATABASE_URL=" + dbURL,
		"USERSYNC_DB_MAX_CONNS=6"}
	out, errs := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, errs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start demo: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("demo stdout:\n%s\nstderr:\n%s", tail(out.String(), 4000), tail(withoutDebug(errs.String()), 4000))
		}
	})

	// Lines of the live phase, e.g.
	//   12:00:01 insert  6a0c…  organization "Acme"
	//   12:00:02 delete  4f1e…  member Ada <ada@example.com> of "Acme"
	seen := map[string]*regexp.Regexp{
		"organization created": regexp.MustCompile(`(?m)^\s+\S+\s+insert\s+\S+\s+organization "[^"]+"`),
		"organization renamed": regexp.MustCompile(`(?m)^\s+\S+\s+update\s+\S+\s+organization "[^"]+"`),
		"organization deleted": regexp.MustCompile(`(?m)^\s+\S+\s+delete\s+\S+\s+organization `),
		"member joined":        regexp.MustCompile(`(?m)^\s+\S+\s+insert\s+\S+\s+member .* of "[^"]+"`),
		"member left":          regexp.MustCompile(`(?m)^\s+\S+\s+delete\s+\S+\s+member `),
	}
	Eventually(t, 3*time.Minute, "the demo shows organizations and memberships changing", func() string {
		select {
		case <-done:
			t.Fatalf("demo exited early (%v)", waitErr)
		default:
		}
		text := out.String()
		live := strings.Index(text, "now simulating")
		if live < 0 {
			return "no live phase yet"
		}
		var missing []string
		for what, re := range seen {
			if !re.MatchString(text[live:]) {
				missing = append(missing, what)
			}
		}
		if len(missing) > 0 {
			return "not shown yet: " + strings.Join(missing, ", ")
		}
		return ""
	})
	text := out.String()
	if !regexp.MustCompile(`organizations_sync: [1-9]\d* organizations, \d+ marked deleted; \S+\.memberships_sync: [1-9]\d* memberships`).MatchString(text) {
		t.Errorf("the demo never printed non-zero organization and membership counts")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("demo exited with %v after Ctrl-C, want 0", waitErr)
		}
	case <-time.After(time.Minute):
		t.Fatal("demo did not stop within a minute of Ctrl-C")
	}
	for _, rec := range logRecords(errs.String()) {
		if rec["level"] == "ERROR" {
			t.Errorf("ERROR logged by the demo: %v", rec)
		}
	}

	pool := pgtest.NewPool(t, dbURL, 2)
	var orgs, deletedOrgs, members, deletedMembers int
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FILTER (WHERE deleted_at IS NULL) FROM neon_identity.organizations_sync),
		(SELECT count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM neon_identity.organizations_sync),
		(SELECT count(*) FILTER (WHERE deleted_at IS NULL) FROM neon_identity.memberships_sync),
		(SELECT count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM neon_identity.memberships_sync)`).
		Scan(&orgs, &deletedOrgs, &members, &deletedMembers); err != nil {
		t.Fatalf("read the organization tables the demo filled: %v", err)
	}
	if orgs == 0 || deletedOrgs == 0 || members == 0 || deletedMembers == 0 {
		t.Errorf("after the demo: %d organizations (%d deleted), %d memberships (%d deleted); want some of each", orgs, deletedOrgs, members, deletedMembers)
	}
}
