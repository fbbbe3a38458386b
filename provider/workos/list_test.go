package workos_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

func TestListCursorOfDeletedUser(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		f := workosfake.New(workosfake.Options{PageSize: 10, LenientCursor: lenient})
		ids := f.Seed(30)
		p := f.Provider()
		page, err := p.ListUsers(context.Background(), "")
		if err != nil || page.Next != ids[9] {
			t.Fatalf("first page: next %q, %v", page.Next, err)
		}
		f.DeleteUser(ids[9])
		page, err = p.ListUsers(context.Background(), page.Next)
		if lenient {
			if err != nil || len(page.Users) != 10 || page.Users[0].ID != ids[10] {
				t.Errorf("lenient: %v, %d users", err, len(page.Users))
			}
		} else if !errors.Is(err, provider.ErrCursorNotFound) {
			t.Errorf("strict: %v, want ErrCursorNotFound", err)
		}
		f.Close()
	}
}

func TestListEmptyPageAfterCursor(t *testing.T) {
	f := workosfake.New(workosfake.Options{PageSize: 10, LenientCursor: true})
	defer f.Close()
	ids := f.Seed(20)
	p := f.Provider()
	page, err := p.ListUsers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[10:] {
		f.DeleteUser(id)
	}
	// The cursor's user exists: an empty page is the end of the list.
	page, err = p.ListUsers(context.Background(), page.Next)
	if err != nil || len(page.Users) != 0 || page.Next != "" {
		t.Fatalf("after the tail was deleted: %+v, %v", page, err)
	}
	// The cursor's user is gone too: it may not have resolved.
	f.DeleteUser(ids[9])
	if _, err := p.ListUsers(context.Background(), ids[9]); !errors.Is(err, provider.ErrCursorNotFound) {
		t.Fatalf("empty page after a deleted cursor user: %v, want ErrCursorNotFound", err)
	}
}

// TestFakeListProtocol checks the fake's list protocol (before/after cursors,
// limit, order) directly.
func TestFakeListProtocol(t *testing.T) {
	f := workosfake.New(workosfake.Options{})
	defer f.Close()
	ids := f.Seed(25)
	key := f.Env()["WORKOS_API_KEY"]
	get := func(query string) (int, map[string]json.RawMessage, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/user_management/users"+query, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := f.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m, resp.Header
	}
	type list struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
		ListMetadata struct{ Before, After *string } `json:"list_metadata"`
	}
	decode := func(m map[string]json.RawMessage) list {
		b, _ := json.Marshal(m)
		var l list
		_ = json.Unmarshal(b, &l)
		return l
	}
	status, m, h := get("")
	l := decode(m)
	if status != 200 || l.Object != "list" || len(l.Data) != 10 || l.Data[0].ID != ids[24] || h.Get("X-Request-Id") == "" {
		t.Errorf("default (limit 10, desc): %d %+v", status, l)
	}
	status, m, _ = get("?order=asc&limit=20&after=" + ids[4])
	l = decode(m)
	if status != 200 || len(l.Data) != 20 || l.Data[0].ID != ids[5] || l.ListMetadata.After != nil || *l.ListMetadata.Before != ids[5] {
		t.Errorf("asc after: %d %+v", status, l)
	}
	status, m, _ = get("?order=asc&limit=3&before=" + ids[4])
	l = decode(m)
	if status != 200 || len(l.Data) != 3 || l.Data[0].ID != ids[1] || *l.ListMetadata.After != ids[3] || *l.ListMetadata.Before != ids[1] {
		t.Errorf("asc before: %d %+v", status, l)
	}
	for _, q := range []string{"?limit=101", "?limit=0", "?limit=x", "?order=sideways"} {
		if status, m, _ := get(q); status != 422 || m["message"] == nil {
			t.Errorf("%s: %d %v", q, status, m)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/user_management/users/"+ids[0]+"x", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Message, Code string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 404 || e.Code != "entity_not_found" || e.Message == "" {
		t.Errorf("unknown user: %d %+v", resp.StatusCode, e)
	}
}
