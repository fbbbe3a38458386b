package clerk_test

import (
	"context"
	"errors"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
)

// TestListDeletesInsideMillisecondGroups deletes, between pages, users of
// the millisecond group the cursor stands in (the hard case for the
// created_at + offset scheme) and checks nobody else is skipped.
func TestListDeletesInsideMillisecondGroups(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{PageSize: 4})
	defer f.Close()
	ids := f.Seed(300) // groups of three users per millisecond
	p := f.Provider()
	alive := map[string]bool{}
	for _, id := range ids {
		alive[id] = true
	}
	seen := map[string]bool{}
	var listed []string
	cursor := ""
	before := f.Requests()
	pages := 0
	for {
		page, err := p.ListUsers(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range page.Users {
			if seen[u.ID] {
				t.Fatalf("user %s listed twice", u.ID)
			}
			seen[u.ID] = true
			listed = append(listed, u.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		// Delete the last listed user (it shares its millisecond with up to
		// two others).
		last := listed[len(listed)-1]
		if alive[last] && f.DeleteUser(last) {
			alive[last] = false
		}
	}
	for _, id := range ids {
		if alive[id] && !seen[id] {
			t.Errorf("user %s skipped", id)
		}
	}
	if got := f.Requests() - before; got != int64(pages) {
		t.Errorf("%d requests for %d pages; want one each (no /users/count)", got, pages)
	}
}

func TestResumeCursorGoneUser(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	ids := f.Seed(10)
	p := f.Provider()
	f.DeleteUser(ids[4])
	_, err := p.ListUsers(context.Background(), p.ResumeCursor(ids[4]))
	if !errors.Is(err, provider.ErrCursorNotFound) {
		t.Fatalf("resume from a deleted user: %v, want ErrCursorNotFound", err)
	}
	if c := p.ResumeCursor("not an id"); c != "" {
		t.Errorf("ResumeCursor(invalid) = %q, want \"\"", c)
	}
	if _, err := p.ListUsers(context.Background(), "garbage!"); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Errorf("garbage cursor: %v", err)
	}
}

func TestFetchMappingThroughFake(t *testing.T) {
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	id := f.CreateUser()
	p := f.Provider()
	emails := []any{
		map[string]any{"id": "idn_first", "object": "email_address", "email_address": "first@example.org"},
		map[string]any{"id": "idn_second", "object": "email_address", "email_address": "second@example.org"},
	}
	cases := []struct {
		fields           map[string]any
		wantName, wantEm string
	}{
		{map[string]any{"first_name": nil, "last_name": nil, "username": "only_user", "primary_email_address_id": nil}, "only_user", ""},
		{map[string]any{"first_name": nil, "last_name": nil, "username": nil}, "", ""},
		{map[string]any{"first_name": "Ada", "last_name": "", "email_addresses": emails, "primary_email_address_id": "idn_second"}, "Ada", "second@example.org"},
	}
	for i, tc := range cases {
		if !f.SetUserFields(id, tc.fields) {
			t.Fatalf("case %d: SetUserFields failed", i)
		}
		u, err := p.FetchUser(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got := deref(u.Name); got != tc.wantName {
			t.Errorf("case %d: name %q, want %q", i, got, tc.wantName)
		}
		if got := deref(u.Email); got != tc.wantEm {
			t.Errorf("case %d: email %q, want %q", i, got, tc.wantEm)
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
