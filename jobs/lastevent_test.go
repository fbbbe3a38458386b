package jobs

import "testing"

func TestLastEventPerUser(t *testing.T) {
	in := []UserRef{
		{Provider: "stackauth", UserID: "a", Deleted: false},
		{Provider: "stackauth", UserID: "b", Deleted: true},
		{Provider: "stackauth", UserID: "a", Deleted: true},
		{Provider: "clerk", UserID: "a", Deleted: false},
		{Provider: "stackauth", UserID: "b", Deleted: false},
		{Provider: "stackauth", UserID: "a", Deleted: true},
	}
	got := lastEventPerUser(in)
	want := []UserRef{{Provider: "stackauth", UserID: "a", Deleted: true}, {Provider: "stackauth", UserID: "b", Deleted: false}, {Provider: "clerk", UserID: "a", Deleted: false}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	if in[0].Deleted || !in[1].Deleted {
		t.Error("the input was modified")
	}
}

func TestLastEventWasDeletion(t *testing.T) {
	for md, want := range map[string]bool{
		`{}`: false, ``: false, `not json`: false,
		`{"usersync_last_event":"deleted"}`:             true,
		`{"usersync_last_event":"changed"}`:             false,
		`{"usersync_last_event":1}`:                     false,
		`{"snoozes":2,"usersync_last_event":"deleted"}`: true,
		`{"usersync_dirty_at":"2026-01-01T00:00:00Z"}`:  false,
		string(deletedMetadata):                         true,
	} {
		if got := LastEventWasDeletion([]byte(md)); got != want {
			t.Errorf("LastEventWasDeletion(%s) = %v, want %v", md, got, want)
		}
	}
}
