package jobs

import (
	"encoding/json"
	"testing"
	"time"
)

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

// LatestEvent is the latest of the job's creation and the times of the
// events that coalesced into it, waiting (EventAtKey) or running
// (DirtyKey); an unreadable mark is later than any fetch.
func TestLatestEvent(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := created.Add(time.Second)
	latest := created.Add(2 * time.Second)
	mark := func(kv ...string) []byte {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		b, _ := json.Marshal(m)
		return b
	}
	stamp := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		name string
		meta []byte
		want time.Time
	}{
		{"no metadata", nil, created},
		{"not an object", []byte(`[1]`), created},
		{"coalesced while waiting", mark(EventAtKey, stamp(later)), later},
		{"marked dirty while running", mark(DirtyKey, stamp(later)), later},
		{"both, dirty latest", mark(EventAtKey, stamp(later), DirtyKey, stamp(latest)), latest},
		{"both, coalesced latest", mark(EventAtKey, stamp(latest), DirtyKey, stamp(later)), latest},
		{"a mark before the creation", mark(EventAtKey, stamp(created.Add(-time.Hour))), created},
	} {
		if got := LatestEvent(created, tc.meta); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := LatestEvent(created, mark(EventAtKey, "yesterday")); !got.After(time.Now().AddDate(100, 0, 0)) {
		t.Errorf("unreadable mark: %v, want later than any fetch", got)
	}
}
