package integration_test

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoInterruptShutsDownCleanly runs `usersync demo` on its own throwaway
// PostgreSQL and interrupts it as a terminal's Ctrl-C does: SIGINT to the
// whole foreground process group. The throwaway server must not get that
// signal (it runs in a process group of its own), so the service stops
// first, without a single ERROR line about a vanished database, and the
// server is stopped and removed last.
func TestDemoInterruptShutsDownCleanly(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binPath, "demo", "--users", "20", "--rate", "20")
	// No DATABASE_URL: the demo starts its own cluster.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "USERSYNC_LOG_FORMAT=json"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	Eventually(t, 3*time.Minute, "the demo to show live changes", func() string {
		select {
		case <-done:
			t.Fatalf("demo exited early (%v):\n%s\n%s", waitErr, tail(out.String(), 2000), tail(errs.String(), 2000))
		default:
		}
		if !strings.Contains(out.String(), "now simulating") {
			return "no live phase yet"
		}
		return ""
	})
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatalf("interrupt the demo's process group: %v", err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("demo exited with %v after Ctrl-C, want 0", waitErr)
		}
	case <-time.After(time.Minute):
		t.Fatalf("demo did not stop within a minute of Ctrl-C:\n%s", tail(out.String(), 2000))
	}
	stdout, stderr := out.String(), errs.String()
	for _, rec := range logRecords(stderr) {
		if rec["level"] == "ERROR" {
			t.Errorf("ERROR logged during shutdown: %v", rec)
		}
	}
	iService := strings.Index(stdout, "service stopped")
	iServer := strings.Index(stdout, "throwaway PostgreSQL stopped")
	if iService < 0 || iServer < 0 || iServer < iService {
		t.Errorf("want the service stopped before the throwaway PostgreSQL; output:\n%s", tail(stdout, 2000))
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", tail(stderr, 4000))
	}
}
