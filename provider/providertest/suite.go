// Package providertest holds the contract suite every provider client and its
// fake must pass together ([Run]). The fakes' shared machinery (the Fake
// interface and fault injection) is in package fakekit, which the demo uses
// too; this package imports testing and is for tests only.
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// sentinels are the classified errors that transient failures must not wrap.
var sentinels = []error{
	provider.ErrUserNotFound,
	provider.ErrBadCredentials,
	provider.ErrCursorNotFound,
	provider.ErrBadSignature,
	provider.ErrBadPayload,
}

// Run is the contract every provider client and its fake must pass together.
// newFake must return a fresh fake with random credentials and webhook secret
// (two fakes must not share a secret: the forged-signature test signs with a
// second fake); Run closes every fake it creates. Subtests run in parallel,
// each on its own fake.
//
// The expected column values are derived from the fake's Snapshot by an
// independent implementation of docs/data-model.md for the providers it knows
// ("stackauth", "clerk", "workos"); for any other provider only the id and
// the raw object are checked.
func Run(t *testing.T, newFake func(t *testing.T) fakekit.Fake) {
	t.Helper()
	fresh := func(t *testing.T) fakekit.Fake {
		t.Helper()
		f := newFake(t)
		t.Cleanup(f.Close)
		return f
	}

	runHiddenUsers(t, fresh)

	t.Run("FetchUser", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(20)
		ids = append(ids, f.CreateUser())
		if !f.UpdateUser(ids[3]) {
			t.Fatalf("UpdateUser(%s) = false", ids[3])
		}
		p := f.Provider()
		snap := f.Snapshot()
		for _, id := range ids {
			u, err := p.FetchUser(context.Background(), id)
			if err != nil {
				t.Fatalf("FetchUser(%s): %v", id, err)
			}
			checkUser(t, p.Name(), u, snap[id])
		}
	})

	t.Run("FetchUserConcurrent", func(t *testing.T) {
		// Many concurrent lookups (which a client may coalesce into batched
		// requests) give each caller what a lone lookup gives: its user, or
		// ErrUserNotFound for a deleted one, also when an id is asked twice.
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(150)
		gone := map[string]bool{}
		for i := 7; i < len(ids); i += 23 {
			if !f.DeleteUser(ids[i]) {
				t.Fatalf("DeleteUser(%s) = false", ids[i])
			}
			gone[ids[i]] = true
		}
		f.UpdateUser(ids[3])
		snap := f.Snapshot()
		p := f.Provider()
		f.SetLatency(5 * time.Millisecond) // lookups overlap
		ask := append(append([]string(nil), ids...), ids[:20]...)
		users := make([]provider.User, len(ask))
		errs := make([]error, len(ask))
		var wg sync.WaitGroup
		for i, id := range ask {
			wg.Go(func() { users[i], errs[i] = p.FetchUser(context.Background(), id) })
		}
		wg.Wait()
		f.ClearFaults()
		for i, id := range ask {
			if gone[id] {
				if !errors.Is(errs[i], provider.ErrUserNotFound) {
					t.Errorf("FetchUser(deleted %s) error = %v, want ErrUserNotFound", id, errs[i])
				}
				continue
			}
			if errs[i] != nil {
				t.Fatalf("FetchUser(%s): %v", id, errs[i])
			}
			if users[i].ID != id {
				t.Fatalf("FetchUser(%s) returned user %s", id, users[i].ID)
			}
			checkUser(t, p.Name(), users[i], snap[id])
		}
	})

	t.Run("FetchUserGone", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(3)
		if !f.DeleteUser(ids[1]) {
			t.Fatalf("DeleteUser(%s) = false", ids[1])
		}
		if f.DeleteUser(ids[1]) {
			t.Errorf("second DeleteUser(%s) = true", ids[1])
		}
		if f.UpdateUser(ids[1]) {
			t.Errorf("UpdateUser of a deleted user = true")
		}
		if _, ok := f.Snapshot()[ids[1]]; ok {
			t.Errorf("deleted user still in Snapshot")
		}
		_, err := f.Provider().FetchUser(context.Background(), ids[1])
		if !errors.Is(err, provider.ErrUserNotFound) {
			t.Fatalf("FetchUser(deleted) error = %v, want ErrUserNotFound", err)
		}
	})

	t.Run("ListAll", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		f.Seed(2345)
		p := f.Provider()
		snap := f.Snapshot()
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			page, err := p.ListUsers(context.Background(), cursor)
			if err != nil {
				t.Fatalf("ListUsers(%q) after %d pages: %v", cursor, pages, err)
			}
			pages++
			for _, u := range page.Users {
				if seen[u.ID] {
					t.Fatalf("user %s listed twice", u.ID)
				}
				seen[u.ID] = true
				raw, ok := snap[u.ID]
				if !ok {
					t.Fatalf("listed user %s is not in Snapshot", u.ID)
				}
				checkUser(t, p.Name(), u, raw)
			}
			if page.Next == "" {
				break
			}
			if page.Next == cursor {
				t.Fatalf("Next cursor %q did not advance", cursor)
			}
			cursor = page.Next
			if pages > 2345 {
				t.Fatalf("listing does not end")
			}
		}
		if pages < 2 {
			t.Errorf("2345 users listed in %d page(s); the suite wants several pages", pages)
		}
		for id := range snap {
			if !seen[id] {
				t.Errorf("user %s never listed", id)
			}
		}
		if len(seen) != len(snap) {
			t.Errorf("listed %d users, Snapshot has %d", len(seen), len(snap))
		}
	})

	t.Run("ListWhileChanging", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(2345)
		p := f.Provider()
		rng := rand.New(rand.NewPCG(1, 2))
		alive := map[string]bool{}
		for _, id := range ids {
			alive[id] = true
		}
		deleted := map[string]bool{}
		seen := map[string]bool{}
		cursor, last, pages, restarts := "", "", 0, 0
		for {
			page, err := p.ListUsers(context.Background(), cursor)
			if errors.Is(err, provider.ErrCursorNotFound) {
				// docs/guarantees.md §5: carry on from the last user seen, or start over.
				if next := p.ResumeCursor(last); last != "" && next != cursor {
					cursor = next
				} else {
					cursor = ""
					restarts++
				}
				if restarts > 5 {
					t.Fatalf("listing restarted %d times", restarts)
				}
				continue
			}
			if err != nil {
				t.Fatalf("ListUsers(%q) after %d pages: %v", cursor, pages, err)
			}
			pages++
			for _, u := range page.Users {
				seen[u.ID] = true
				last = u.ID
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
			if pages > 10000 {
				t.Fatalf("listing does not end")
			}
			// Between pages: delete users on both sides of the cursor (now
			// and then the last one listed, whom a cursor may name), and
			// create new ones.
			for i := 0; i < 10; i++ {
				id := ids[rng.IntN(len(ids))]
				if (pages == 2 || pages == 5) && i == 0 && last != "" && alive[last] {
					id = last
				}
				if alive[id] && f.DeleteUser(id) {
					alive[id] = false
					deleted[id] = true
				}
			}
			for i := 0; i < 5 && pages <= 20; i++ {
				f.CreateUser()
			}
		}
		missed := 0
		for _, id := range ids {
			if alive[id] && !seen[id] {
				missed++
				if missed <= 5 {
					t.Errorf("user %s existed throughout but was never listed", id)
				}
			}
		}
		if missed > 0 {
			t.Errorf("%d users that existed throughout were missed (%d pages, %d restarts, %d deleted)", missed, pages, restarts, len(deleted))
		}
	})

	t.Run("ResumeCursor", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		f.Seed(2345)
		p := f.Provider()
		order := listAll(t, p)
		if len(order) != 2345 {
			t.Fatalf("listed %d users, want 2345", len(order))
		}
		at := len(order) / 2
		resumed := map[string]bool{}
		cursor := p.ResumeCursor(order[at])
		if cursor == "" {
			t.Fatalf("ResumeCursor(%s) = \"\"", order[at])
		}
		for pages := 0; ; pages++ {
			page, err := p.ListUsers(context.Background(), cursor)
			if err != nil {
				t.Fatalf("ListUsers(ResumeCursor): %v", err)
			}
			for _, u := range page.Users {
				resumed[u.ID] = true
			}
			if page.Next == "" || pages > 2345 {
				break
			}
			cursor = page.Next
		}
		for _, id := range order[at+1:] {
			if !resumed[id] {
				t.Fatalf("user %s, listed after %s, is missing from the resumed listing", id, order[at])
			}
		}
		if resumed[order[0]] {
			t.Errorf("resuming from user %d listed the first user again: ResumeCursor restarted", at)
		}
	})

	t.Run("BadCredentials", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(2)
		p := f.ProviderWithBadCredentials()
		if _, err := p.FetchUser(context.Background(), ids[0]); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("FetchUser with bad credentials: error = %v, want ErrBadCredentials", err)
		}
		if _, err := p.ListUsers(context.Background(), ""); !errors.Is(err, provider.ErrBadCredentials) {
			t.Errorf("ListUsers with bad credentials: error = %v, want ErrBadCredentials", err)
		}
		for k, v := range f.Env() {
			if v == "" || len(v) < 8 || strings.HasSuffix(k, "_URL") {
				continue
			}
			for _, err := range []error{
				func() error { _, err := p.FetchUser(context.Background(), ids[0]); return err }(),
				func() error { _, err := f.Provider().FetchUser(context.Background(), ids[0]+"x"); return err }(),
			} {
				if err != nil && strings.Contains(err.Error(), v) {
					t.Errorf("error %q contains the value of %s", err, k)
				}
			}
		}
	})

	t.Run("RateLimited", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(2)
		p := f.Provider()
		check := func(what string, err error) {
			t.Helper()
			var rl *provider.RateLimitedError
			if !errors.As(err, &rl) {
				t.Fatalf("%s during 429: error = %v, want *provider.RateLimitedError", what, err)
			}
			if rl.RetryAfter != 7*time.Second {
				t.Errorf("%s: RetryAfter = %s, want 7s", what, rl.RetryAfter)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					t.Errorf("%s: 429 error wraps %v", what, s)
				}
			}
		}
		f.FailNext(1, http.StatusTooManyRequests, 7*time.Second)
		_, err := p.FetchUser(context.Background(), ids[0])
		check("FetchUser", err)
		f.FailNext(1, http.StatusTooManyRequests, 7*time.Second)
		_, err = p.ListUsers(context.Background(), "")
		check("ListUsers", err)
		if _, err := p.FetchUser(context.Background(), ids[0]); err != nil {
			t.Errorf("FetchUser after the fault: %v", err)
		}
	})

	t.Run("RateLimit", func(t *testing.T) {
		// The fake's own token bucket: a burst of 2 at one request per 10 s
		// lets exactly two requests in a row through; the third is
		// answered 429 with a Retry-After, which the client reports.
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(1)
		p := f.Provider()
		f.SetRateLimit(0.1, 2)
		for i := range 2 {
			if _, err := p.FetchUser(context.Background(), ids[0]); err != nil {
				t.Fatalf("request %d within the burst: %v", i+1, err)
			}
		}
		_, err := p.FetchUser(context.Background(), ids[0])
		var rl *provider.RateLimitedError
		if !errors.As(err, &rl) {
			t.Fatalf("request beyond the limit: error = %v, want *provider.RateLimitedError", err)
		}
		if rl.RetryAfter < time.Second {
			t.Errorf("RetryAfter = %s, want at least 1s", rl.RetryAfter)
		}
		if n := f.RateLimited(); n != 1 {
			t.Errorf("RateLimited() = %d, want 1", n)
		}
		f.ClearFaults()
		if _, err := p.FetchUser(context.Background(), ids[0]); !errors.As(err, &rl) {
			t.Errorf("after ClearFaults: error = %v, want the rate limit still in place", err)
		}
		f.SetRateLimit(0, 0)
		if _, err := p.FetchUser(context.Background(), ids[0]); err != nil {
			t.Errorf("after the limit is removed: %v", err)
		}
	})

	t.Run("ServerErrors", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(2)
		p := f.Provider()
		for _, status := range []int{500, 502, 503} {
			f.FailNext(1, status, 0)
			_, err := p.FetchUser(context.Background(), ids[0])
			var se *provider.StatusError
			if !errors.As(err, &se) || se.StatusCode != status {
				t.Errorf("FetchUser during %d: error = %v, want *provider.StatusError with that status", status, err)
			}
			notSentinel(t, err)
			f.FailNext(1, status, 0)
			_, err = p.ListUsers(context.Background(), "")
			if !errors.As(err, &se) || se.StatusCode != status {
				t.Errorf("ListUsers during %d: error = %v, want *provider.StatusError with that status", status, err)
			}
			notSentinel(t, err)
		}
	})

	t.Run("ConnectionReset", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(2)
		p := f.Provider()
		// n < 0: Go's transport retries an idempotent request once on a
		// reused connection that closes without answering, so a single
		// dropped request may not surface as an error.
		f.FailNext(-1, 0, 0)
		_, err := p.FetchUser(context.Background(), ids[0])
		if err == nil {
			t.Fatalf("FetchUser with the connection dropped: no error")
		}
		notSentinel(t, err)
		_, err = p.ListUsers(context.Background(), "")
		if err == nil {
			t.Fatalf("ListUsers with the connection dropped: no error")
		}
		notSentinel(t, err)
		f.ClearFaults()
		if _, err := p.FetchUser(context.Background(), ids[0]); err != nil {
			t.Errorf("FetchUser after ClearFaults: %v", err)
		}
	})

	t.Run("Latency", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(1)
		p := f.Provider()
		f.SetLatency(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.FetchUser(ctx, ids[0])
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("FetchUser past its deadline: error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("FetchUser returned %s after its 100ms deadline", d)
		}
		notSentinel(t, err)
		f.SetLatency(50 * time.Millisecond)
		start = time.Now()
		if _, err := p.FetchUser(context.Background(), ids[0]); err != nil {
			t.Fatalf("FetchUser with latency: %v", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("FetchUser took %s with 50ms latency", d)
		}
	})

	t.Run("Requests", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		ids := f.Seed(1)
		p := f.Provider()
		before := f.Requests()
		if _, err := p.FetchUser(context.Background(), ids[0]); err != nil {
			t.Fatal(err)
		}
		mid := f.Requests()
		if mid <= before {
			t.Errorf("Requests() = %d after a fetch, was %d", mid, before)
		}
		f.FailNext(1, 500, 0)
		_, _ = p.FetchUser(context.Background(), ids[0])
		if after := f.Requests(); after <= mid {
			t.Errorf("Requests() = %d after a failed fetch, was %d", after, mid)
		}
	})

	t.Run("WebhookChanged", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		p := f.Provider()
		id := f.CreateUser()
		for _, step := range []string{"created", "updated"} {
			if step == "updated" {
				f.UpdateUser(id)
			}
			body, h := f.Webhook(provider.EventUserChanged, id)
			ev, err := p.ParseWebhook(body, h)
			if err != nil {
				t.Fatalf("ParseWebhook(%s): %v", step, err)
			}
			if ev.Kind != provider.EventUserChanged || ev.UserID != id || ev.Type == "" {
				t.Errorf("ParseWebhook(%s) = %+v, want EventUserChanged for %s", step, ev, id)
			}
		}
	})

	t.Run("WebhookDeleted", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		p := f.Provider()
		id := f.CreateUser()
		f.DeleteUser(id)
		body, h := f.Webhook(provider.EventUserDeleted, id)
		ev, err := p.ParseWebhook(body, h)
		if err != nil {
			t.Fatalf("ParseWebhook: %v", err)
		}
		if ev.Kind != provider.EventUserDeleted || ev.UserID != id {
			t.Errorf("ParseWebhook = %+v, want EventUserDeleted for %s", ev, id)
		}
	})

	t.Run("WebhookIgnored", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		body, h := f.IgnoredWebhook()
		ev, err := f.Provider().ParseWebhook(body, h)
		if err != nil {
			t.Fatalf("ParseWebhook: %v", err)
		}
		if ev.Kind != provider.EventIgnored || ev.UserID != "" {
			t.Errorf("ParseWebhook = %+v, want EventIgnored", ev)
		}
	})

	t.Run("WebhookBadSignature", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		other := fresh(t)
		p := f.Provider()
		id := f.CreateUser()
		body, h := f.Webhook(provider.EventUserChanged, id)
		if _, err := p.ParseWebhook(body, h); err != nil {
			t.Fatalf("valid delivery: %v", err)
		}

		cases := map[string]func() ([]byte, http.Header){
			"forged": func() ([]byte, http.Header) {
				return body, other.SignWebhook(body, time.Now())
			},
			"stale": func() ([]byte, http.Header) {
				return body, f.SignWebhook(body, time.Now().Add(-10*time.Minute))
			},
			"future": func() ([]byte, http.Header) {
				return body, f.SignWebhook(body, time.Now().Add(10*time.Minute))
			},
			"missing headers": func() ([]byte, http.Header) {
				return body, http.Header{}
			},
			"nil header": func() ([]byte, http.Header) {
				return body, nil
			},
			"tampered body": func() ([]byte, http.Header) {
				b := bytes.Replace(body, []byte(id), []byte(id[:len(id)-1]+flip(id[len(id)-1])), 1)
				return b, h
			},
			"appended byte": func() ([]byte, http.Header) {
				return append(bytes.Clone(body), ' '), h
			},
			"empty body": func() ([]byte, http.Header) {
				return nil, h
			},
		}
		for name, mk := range cases {
			b, hh := mk()
			_, err := p.ParseWebhook(b, hh)
			if !errors.Is(err, provider.ErrBadSignature) {
				t.Errorf("%s: error = %v, want ErrBadSignature", name, err)
			}
			if errors.Is(err, provider.ErrBadPayload) {
				t.Errorf("%s: error also wraps ErrBadPayload", name)
			}
		}
	})

	t.Run("WebhookBadPayload", func(t *testing.T) {
		t.Parallel()
		f := fresh(t)
		p := f.Provider()
		user := func(data string) string {
			return `{"object":"event","id":"event_01HZZZZZZZZZZZZZZZZZZZZZZZ","type":"user.updated","event":"user.updated",` +
				`"timestamp":1654012591835,"created_at":"2026-01-15T12:00:00.000Z","instance_id":"ins_123","data":` + data + `}`
		}
		cases := map[string]string{
			"garbage":         "not json at all",
			"truncated":       `{"type":"user.updated","data":{"id":"`,
			"array":           `[1,2,3]`,
			"missing data":    `{"object":"event","type":"user.updated","event":"user.updated"}`,
			"missing id":      user(`{"object":"user"}`),
			"null id":         user(`{"object":"user","id":null}`),
			"empty id":        user(`{"object":"user","id":""}`),
			"numeric id":      user(`{"object":"user","id":12345}`),
			"object id":       user(`{"object":"user","id":{"a":1}}`),
			"NUL in id":       user(`{"object":"user","id":"user_a\u0000b"}`),
			"newline in id":   user(`{"object":"user","id":"user_a\nb"}`),
			"C1 control":      user(`{"object":"user","id":"user_a\u0085b"}`),
			"long id":         user(`{"object":"user","id":"` + strings.Repeat("a", provider.MaxUserIDLen+1) + `"}`),
			"deleted no id":   strings.Replace(user(`{"object":"user","deleted":true}`), "user.updated", "user.deleted", 2),
			"data not object": user(`"user_123"`),
		}
		for name, body := range cases {
			_, err := p.ParseWebhook([]byte(body), f.SignWebhook([]byte(body), time.Now()))
			if !errors.Is(err, provider.ErrBadPayload) {
				t.Errorf("%s: error = %v, want ErrBadPayload", name, err)
			}
			if errors.Is(err, provider.ErrBadSignature) {
				t.Errorf("%s: error also wraps ErrBadSignature", name)
			}
		}
	})
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func notSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			t.Errorf("error %v wraps %v; a transient fault must not", err, s)
		}
	}
}

// listAll lists every user from the start and returns their ids in order.
func listAll(t *testing.T, p provider.Provider) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := p.ListUsers(context.Background(), cursor)
		if err != nil {
			t.Fatalf("ListUsers(%q): %v", cursor, err)
		}
		for _, u := range page.Users {
			ids = append(ids, u.ID)
		}
		if page.Next == "" {
			return ids
		}
		if pages > 100000 {
			t.Fatalf("listing does not end")
		}
		cursor = page.Next
	}
}

// checkUser compares u with what docs/data-model.md derives from raw, the fake's
// Snapshot entry for the user.
func checkUser(t *testing.T, providerName string, u provider.User, raw json.RawMessage) {
	t.Helper()
	if raw == nil {
		t.Fatalf("user %s is not in the fake's Snapshot", u.ID)
	}
	if !jsonEqual(u.Raw, raw) {
		t.Fatalf("user %s: Raw differs from Snapshot\n got: %s\nwant: %s", u.ID, u.Raw, raw)
	}
	want, err := Derive(providerName, raw)
	if err != nil {
		t.Fatalf("user %s: %v", u.ID, err)
	}
	if want == nil {
		return
	}
	if u.ID != want.ID {
		t.Errorf("ID = %q, want %q", u.ID, want.ID)
	}
	if !reflect.DeepEqual(u.Name, want.Name) {
		t.Errorf("user %s: Name = %s, want %s", u.ID, str(u.Name), str(want.Name))
	}
	if !reflect.DeepEqual(u.Email, want.Email) {
		t.Errorf("user %s: Email = %s, want %s", u.ID, str(u.Email), str(want.Email))
	}
	if !timeEqual(u.CreatedAt, want.CreatedAt) {
		t.Errorf("user %s: CreatedAt = %v, want %v", u.ID, u.CreatedAt, want.CreatedAt)
	}
	if !timeEqual(u.UpdatedAt, want.UpdatedAt) {
		t.Errorf("user %s: UpdatedAt = %v, want %v", u.ID, u.UpdatedAt, want.UpdatedAt)
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Derive computes the users_sync columns of docs/data-model.md from a provider's raw
// user object, independently of the provider packages, so the suite checks
// them against a second implementation. It returns nil, nil for a provider it
// does not know.
func Derive(providerName string, raw json.RawMessage) (*provider.User, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode raw user: %w", err)
	}
	s := func(k string) string { v, _ := m[k].(string); return v }
	ptr := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	ms := func(k string) *time.Time {
		n, ok := m[k].(json.Number)
		if !ok {
			return nil
		}
		i, err := n.Int64()
		if err != nil {
			return nil
		}
		tm := time.UnixMilli(i).UTC()
		return &tm
	}
	iso := func(k string) *time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s(k))
		if err != nil {
			return nil
		}
		return &tm
	}
	u := &provider.User{ID: s("id"), Raw: raw}
	switch providerName {
	case "stackauth":
		u.Name = ptr(s("display_name"))
		u.Email = ptr(s("primary_email"))
		u.CreatedAt = ms("signed_up_at_millis")
	case "clerk":
		u.Name = ptr(strings.TrimSpace(s("first_name") + " " + s("last_name")))
		if u.Name == nil {
			u.Name = ptr(s("username"))
		}
		primary := s("primary_email_address_id")
		if list, ok := m["email_addresses"].([]any); ok && primary != "" {
			for _, e := range list {
				if em, ok := e.(map[string]any); ok && em["id"] == primary {
					v, _ := em["email_address"].(string)
					u.Email = ptr(v)
				}
			}
		}
		// Clerk sends milliseconds; a positive value below 1e11 can only be
		// seconds (some of Clerk's own examples have them), read as such.
		clerkMs := func(k string) *time.Time {
			if n, ok := m[k].(json.Number); ok {
				if i, err := n.Int64(); err == nil && i > 0 && i < 1e11 {
					tm := time.Unix(i, 0).UTC()
					return &tm
				}
			}
			return ms(k)
		}
		u.CreatedAt = clerkMs("created_at")
		u.UpdatedAt = clerkMs("updated_at")
	case "workos":
		u.Name = ptr(strings.TrimSpace(s("first_name") + " " + s("last_name")))
		u.Email = ptr(s("email"))
		u.CreatedAt = iso("created_at")
		u.UpdatedAt = iso("updated_at")
	default:
		return nil, nil
	}
	return u, nil
}
