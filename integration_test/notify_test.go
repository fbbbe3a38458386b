package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// listener collects change notifications; Until uses a notification the
// test sends itself as a barrier: notifications from different
// transactions arrive in commit order, so everything committed before the
// barrier has arrived once the barrier has.
type listener struct {
	t       *testing.T
	conn    *pgx.Conn
	channel string
	s       *System
	n       int
}

type change struct {
	ID string `json:"id"`
	Op string `json:"op"`
}

func (s *System) listen(t *testing.T, channel string) *listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return &listener{t: t, conn: conn, channel: channel, s: s}
}

// Drain returns the changes notified since the last call.
func (l *listener) Drain() []change {
	l.t.Helper()
	l.n++
	marker := fmt.Sprintf("barrier-%d", l.n)
	l.s.Exec(`SELECT pg_notify($1, $2)`, l.channel, marker)
	var out []change
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			l.t.Fatalf("waiting for notifications: %v (got %v)", err, out)
		}
		if n.Payload == marker {
			return out
		}
		var c change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			l.t.Errorf("notification payload %q is not {\"id\",\"op\"} JSON: %v", n.Payload, err)
			continue
		}
		var keys map[string]any
		_ = json.Unmarshal([]byte(n.Payload), &keys)
		if len(keys) != 2 {
			l.t.Errorf("notification payload %q has keys other than id and op", n.Payload)
		}
		out = append(out, c)
	}
}

// TestChangeNotifications (docs/data-model.md): each real change to users_sync sends
// exactly one notification {"id","op"} on <schema>_users_sync; a re-sync
// that changes nothing sends none.
func TestChangeNotifications(t *testing.T) {
	t.Parallel()
	for _, prov := range providerNames() {
		for _, mode := range []string{"soft", "hard"} {
			t.Run(prov+"/"+mode, func(t *testing.T) {
				t.Parallel()
				s := NewSystem(t, prov, map[string]string{"USERSYNC_DELETE_MODE": mode})
				l := s.listen(t, s.Schema+"_users_sync")
				sv := s.Serve(nil)
				a, b := s.Fake.CreateUser(), s.Fake.CreateUser()
				completed := 0
				step := func(what string, want []change, sends ...func()) {
					t.Helper()
					for _, send := range sends {
						send()
						completed++
						// Wait for this job to commit before the next delivery,
						// so deliveries don't coalesce.
						Eventually(t, 15*time.Second, what+": sync finished", func() string {
							if n := s.JobCounts("sync_user")["completed"]; n < completed {
								return fmt.Sprintf("%d sync jobs completed, want %d", n, completed)
							}
							return s.Idle()
						})
						completed = s.JobCounts("sync_user")["completed"]
					}
					if got := l.Drain(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
						t.Errorf("%s: notifications %v, want %v", what, got, want)
					}
				}
				send := func(kind provider.EventKind, id string) func() {
					return func() {
						if code := s.Send(sv.Addr, kind, id); code != 200 {
							t.Fatalf("webhook answered %d", code)
						}
					}
				}
				step("sign-up", []change{{a, "insert"}}, send(provider.EventUserChanged, a))
				step("same webhook again (no change)", nil, send(provider.EventUserChanged, a), send(provider.EventUserChanged, a))
				s.Fake.UpdateUser(a)
				step("profile change", []change{{a, "update"}}, send(provider.EventUserChanged, a))
				step("re-sync of the unchanged profile", nil, send(provider.EventUserChanged, a))
				step("second user", []change{{b, "insert"}}, send(provider.EventUserChanged, b))
				s.Fake.DeleteUser(a)
				step("deletion", []change{{a, "delete"}}, send(provider.EventUserDeleted, a))
				step("deletion again", nil, send(provider.EventUserDeleted, a), send(provider.EventUserChanged, a))
				s.WaitConverged(5 * time.Second)
			})
		}
	}
}
