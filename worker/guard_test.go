package worker_test

import (
	"testing"

	"github.com/usersync/usersync/worker"
)

func TestHoldDeletions(t *testing.T) {
	cases := []struct {
		would, live, listed int64
		guard               float64
		hold                bool
	}{
		{0, 600, 0, 0.1, false},    // nothing to delete: nothing to hold
		{600, 600, 0, 0.1, true},   // empty list: everything would go
		{3, 3, 0, 0.1, true},       // empty list, however few rows
		{3, 3, 0, 1, true},         // empty list, whatever the guard
		{15, 300, 285, 0.1, false}, // 5%
		{86, 285, 199, 0.1, true},  // 30%
		{10, 50, 40, 0, false},     // exactly the floor
		{11, 50, 39, 0, true},      // one over the floor, over the share
		{11, 200, 189, 0.1, false}, // one over the floor, under the share
		{30, 300, 270, 0.1, false}, // exactly the share
		{31, 300, 269, 0.1, true},  // over the share
		{11, 11, 1, 1, false},      // guard 1: only the empty list holds
	}
	for _, c := range cases {
		if got := worker.HoldDeletions(c.would, c.live, c.listed, c.guard); got != c.hold {
			t.Errorf("HoldDeletions(would %d, live %d, listed %d, guard %v) = %v, want %v", c.would, c.live, c.listed, c.guard, got, c.hold)
		}
	}
}

func TestConfirmCommand(t *testing.T) {
	if got, want := worker.ConfirmCommand("clerk", 42), "usersync backfill --confirm-deletions --provider clerk --run 42"; got != want {
		t.Errorf("ConfirmCommand = %q, want %q", got, want)
	}
}
