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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// orgSentinels are the classified errors that transient failures of the
// organization calls must not wrap.
var orgSentinels = append([]error{provider.ErrOrganizationNotFound}, sentinels...)

// RunOrganizations is the contract of [provider.Organizations] that every
// provider client and its fake must pass together, through
// [fakekit.OrganizationsFake]: fetched and listed objects equal the fake's
// snapshots (with the columns of docs/data-model.md derived independently,
// see [DeriveOrganization] and [DeriveMembership]), listings are complete and
// stable under changes between pages, deletions are seen, webhooks round-trip
// and faults are classified. newFake must return a fresh fake with random
// credentials and webhook secret; RunOrganizations closes every fake it
// creates. Subtests run in parallel, each on its own fake.
func RunOrganizations(t *testing.T, newFake func(t *testing.T) fakekit.OrganizationsFake) {
	t.Helper()
	fresh := func(t *testing.T) (fakekit.OrganizationsFake, provider.Organizations, string) {
		t.Helper()
		f := newFake(t)
		t.Cleanup(f.Close)
		p := f.Provider()
		o, ok := p.(provider.Organizations)
		if !ok {
			t.Fatalf("%T (Provider) does not implement provider.Organizations", p)
		}
		if f.Organizations() == nil {
			t.Fatalf("Organizations() = nil")
		}
		return f, o, p.Name()
	}

	t.Run("FetchOrganization", func(t *testing.T) {
		t.Parallel()
		f, o, name := fresh(t)
		users := f.Seed(10)
		ids := f.SeedOrganizations(5, 3)
		ids = append(ids, f.CreateOrganization(users[0]), f.CreateOrganization(""))
		if !f.UpdateOrganization(ids[2]) {
			t.Fatalf("UpdateOrganization(%s) = false", ids[2])
		}
		snap := f.OrganizationsSnapshot()
		if len(snap) != len(ids) {
			t.Errorf("OrganizationsSnapshot has %d organizations, %d were created", len(snap), len(ids))
		}
		for _, id := range ids {
			org, err := o.FetchOrganization(context.Background(), id)
			if err != nil {
				t.Fatalf("FetchOrganization(%s): %v", id, err)
			}
			if org.ID != id {
				t.Errorf("FetchOrganization(%s).ID = %q", id, org.ID)
			}
			checkOrganization(t, name, org, snap[id])
		}
		// Organizations() reads the same organizations.
		if org, err := f.Organizations().FetchOrganization(context.Background(), ids[0]); err != nil {
			t.Errorf("Organizations().FetchOrganization(%s): %v", ids[0], err)
		} else {
			checkOrganization(t, name, org, snap[ids[0]])
		}
	})

	t.Run("FetchOrganizationGone", func(t *testing.T) {
		t.Parallel()
		f, o, _ := fresh(t)
		users := f.Seed(4)
		keep := f.CreateOrganization(users[0])
		id := f.CreateOrganization(users[0])
		for _, u := range users[1:] {
			if !f.AddMember(id, u, "") {
				t.Fatalf("AddMember(%s, %s) = false", id, u)
			}
		}
		if !f.DeleteOrganization(id) {
			t.Fatalf("DeleteOrganization(%s) = false", id)
		}
		if f.DeleteOrganization(id) {
			t.Errorf("second DeleteOrganization(%s) = true", id)
		}
		if f.UpdateOrganization(id) {
			t.Errorf("UpdateOrganization of a deleted organization = true")
		}
		if f.AddMember(id, users[2], "") {
			t.Errorf("AddMember to a deleted organization = true")
		}
		if _, ok := f.OrganizationsSnapshot()[id]; ok {
			t.Errorf("deleted organization still in OrganizationsSnapshot")
		}
		for k := range f.MembershipsSnapshot() {
			if strings.HasPrefix(k, id+":") {
				t.Errorf("membership %s of the deleted organization still in MembershipsSnapshot", k)
			}
		}
		_, err := o.FetchOrganization(context.Background(), id)
		if !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Fatalf("FetchOrganization(deleted) error = %v, want ErrOrganizationNotFound", err)
		}
		if errors.Is(err, provider.ErrUserNotFound) {
			t.Errorf("FetchOrganization(deleted) error also wraps ErrUserNotFound")
		}
		// An organization that never existed, of a plausible shape.
		never := keep[:len(keep)-4] + "0000"
		if never == keep {
			never = keep[:len(keep)-4] + "0001"
		}
		_, err = o.FetchOrganization(context.Background(), never)
		if !errors.Is(err, provider.ErrOrganizationNotFound) {
			t.Errorf("FetchOrganization(never existed) error = %v, want ErrOrganizationNotFound", err)
		}
		// The memberships of a deleted organization: not found, or an empty
		// last page.
		page, err := o.ListMemberships(context.Background(), id, "")
		switch {
		case errors.Is(err, provider.ErrOrganizationNotFound):
		case err != nil:
			t.Errorf("ListMemberships(deleted) error = %v, want ErrOrganizationNotFound or an empty last page", err)
		case len(page.Memberships) != 0 || page.Next != "":
			t.Errorf("ListMemberships(deleted) = %d memberships, Next %q; want none", len(page.Memberships), page.Next)
		}
		if _, err := o.FetchOrganization(context.Background(), keep); err != nil {
			t.Errorf("FetchOrganization(%s) of a live organization: %v", keep, err)
		}
	})

	t.Run("ListOrganizationsAll", func(t *testing.T) {
		t.Parallel()
		f, o, name := fresh(t)
		f.Seed(20)
		const n = 1234 // more than one page of every paginated provider
		f.SeedOrganizations(n, 2)
		snap := f.OrganizationsSnapshot()
		if len(snap) != n {
			t.Fatalf("OrganizationsSnapshot has %d organizations after SeedOrganizations(%d)", len(snap), n)
		}
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			page, err := o.ListOrganizations(context.Background(), cursor)
			if err != nil {
				t.Fatalf("ListOrganizations(%q) after %d pages: %v", cursor, pages, err)
			}
			pages++
			for _, org := range page.Organizations {
				if seen[org.ID] {
					t.Fatalf("organization %s listed twice", org.ID)
				}
				seen[org.ID] = true
				checkOrganization(t, name, org, snap[org.ID])
			}
			if page.Next == "" {
				break
			}
			if page.Next == cursor {
				t.Fatalf("Next cursor %q did not advance", cursor)
			}
			cursor = page.Next
			if pages > n {
				t.Fatalf("listing does not end")
			}
		}
		t.Logf("%d organizations listed in %d page(s)", len(seen), pages)
		for id := range snap {
			if !seen[id] {
				t.Errorf("organization %s never listed", id)
			}
		}
	})

	t.Run("ListOrganizationsWhileChanging", func(t *testing.T) {
		t.Parallel()
		f, o, _ := fresh(t)
		f.Seed(5)
		ids := f.SeedOrganizations(1234, 1)
		rng := rand.New(rand.NewPCG(3, 4))
		alive := map[string]bool{}
		for _, id := range ids {
			alive[id] = true
		}
		seen := map[string]bool{} // in the current pass
		ever := map[string]bool{} // in any pass
		var listed []string       // in the current pass, in order
		cursor, pages, gaps, restarts, deleted := "", 0, 0, 0, 0
		for {
			page, err := o.ListOrganizations(context.Background(), cursor)
			if errors.Is(err, provider.ErrCursorNotFound) && cursor != "" {
				// The caller starts over (docs/guarantees.md §5).
				restarts++
				if restarts > 5 {
					t.Fatalf("listing restarted %d times", restarts)
				}
				cursor, seen, listed = "", map[string]bool{}, nil
				continue
			}
			if err != nil {
				t.Fatalf("ListOrganizations(%q) after %d pages: %v", cursor, pages, err)
			}
			pages++
			for _, org := range page.Organizations {
				if seen[org.ID] {
					t.Fatalf("organization %s listed twice in one pass", org.ID)
				}
				seen[org.ID], ever[org.ID] = true, true
				listed = append(listed, org.ID)
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
			if pages > 100000 {
				t.Fatalf("listing does not end")
			}
			// Between the first pages: delete an organization already
			// listed, the last one listed (which a cursor may name) and
			// one not listed yet, and create new ones.
			gaps++
			if gaps > 4 {
				continue
			}
			var victims []string
			if len(listed) > 0 {
				victims = append(victims, listed[rng.IntN(len(listed))], listed[len(listed)-1])
			}
			victims = append(victims, ids[rng.IntN(len(ids))])
			for _, id := range victims {
				if alive[id] && f.DeleteOrganization(id) {
					alive[id] = false
					deleted++
				}
			}
			f.CreateOrganization("")
		}
		missed := 0
		for _, id := range ids {
			if alive[id] && !seen[id] {
				missed++
				if missed <= 5 {
					t.Errorf("organization %s existed throughout but was not listed in the last pass", id)
				}
			}
		}
		if missed > 0 {
			t.Errorf("%d organizations that existed throughout were missed (%d pages, %d restarts, %d deleted)", missed, pages, restarts, deleted)
		}
		t.Logf("%d pages, %d restarts, %d deleted between pages", pages, restarts, deleted)
	})

	t.Run("ListMemberships", func(t *testing.T) {
		t.Parallel()
		f, o, name := fresh(t)
		users := f.Seed(700)
		small := f.SeedOrganizations(6, 9)
		creator := users[0]
		big := f.CreateOrganization(creator)
		// More members than one page of every paginated provider.
		for _, u := range users[1:650] {
			if !f.AddMember(big, u, "") {
				t.Fatalf("AddMember(%s, %s) = false", big, u)
			}
		}
		roled := f.CreateOrganization(users[1])
		defRole, otherRole := roles(name)
		if !f.AddMember(roled, users[2], "") {
			t.Fatalf("AddMember(%s, %s) = false", roled, users[2])
		}
		if !f.AddMember(roled, users[3], otherRole) {
			t.Fatalf("AddMember(%s, %s, %q) = false", roled, users[3], otherRole)
		}
		if f.AddMember(roled, users[3], "") {
			t.Errorf("AddMember of an existing membership = true")
		}
		if !f.UpdateMember(roled, users[2], otherRole) {
			t.Errorf("UpdateMember(%s, %s) = false", roled, users[2])
		}
		if f.UpdateMember(roled, users[4], otherRole) {
			t.Errorf("UpdateMember of no membership = true")
		}
		empty := f.CreateOrganization("")

		snap := f.MembershipsSnapshot()
		for _, org := range append(small, big, roled, empty) {
			got := listMemberships(t, o, name, org, snap)
			want := keysOf(snap, org)
			if !reflect.DeepEqual(sortedKeys(got), want) {
				t.Errorf("organization %s: listed memberships %v, MembershipsSnapshot has %v", org, short(sortedKeys(got)), short(want))
			}
		}
		for _, key := range []string{big + ":" + creator, roled + ":" + users[1]} {
			if _, ok := snap[key]; !ok {
				t.Errorf("the creator's membership %s is missing", key)
			}
		}
		if defRole != "" {
			// The creator is an admin, a member added with role "" has the
			// default role, and updated roles stick.
			checkRole(t, name, snap, roled+":"+users[1], otherRole)
			checkRole(t, name, snap, big+":"+users[5], defRole)
			checkRole(t, name, snap, roled+":"+users[3], otherRole)
			checkRole(t, name, snap, roled+":"+users[2], otherRole)
		}
		if n := len(keysOf(snap, empty)); n != 0 {
			t.Errorf("organization created without a creator has %d memberships", n)
		}
	})

	t.Run("MembershipsGone", func(t *testing.T) {
		t.Parallel()
		f, o, name := fresh(t)
		users := f.Seed(6)
		org := f.CreateOrganization(users[0])
		other := f.CreateOrganization(users[1])
		for _, u := range users[1:] {
			if !f.AddMember(org, u, "") {
				t.Fatalf("AddMember(%s, %s) = false", org, u)
			}
		}
		if !f.AddMember(other, users[3], "") {
			t.Fatalf("AddMember(%s, %s) = false", other, users[3])
		}
		if !f.RemoveMember(org, users[2]) {
			t.Fatalf("RemoveMember(%s, %s) = false", org, users[2])
		}
		if f.RemoveMember(org, users[2]) {
			t.Errorf("second RemoveMember = true")
		}
		if f.UpdateMember(org, users[2], "") {
			t.Errorf("UpdateMember of a removed membership = true")
		}
		if !f.DeleteUser(users[3]) {
			t.Fatalf("DeleteUser(%s) = false", users[3])
		}
		if f.AddMember(org, users[3], "") {
			t.Errorf("AddMember of a deleted user = true")
		}
		snap := f.MembershipsSnapshot()
		for _, key := range []string{org + ":" + users[2], org + ":" + users[3], other + ":" + users[3]} {
			if _, ok := snap[key]; ok {
				t.Errorf("membership %s still in MembershipsSnapshot", key)
			}
		}
		for _, id := range []string{org, other} {
			got := listMemberships(t, o, name, id, snap)
			if want := keysOf(snap, id); !reflect.DeepEqual(sortedKeys(got), want) {
				t.Errorf("organization %s: listed %v, MembershipsSnapshot has %v", id, sortedKeys(got), want)
			}
			for k := range got {
				if strings.HasSuffix(k, ":"+users[2]) && id == org || strings.HasSuffix(k, ":"+users[3]) {
					t.Errorf("ended membership %s is listed", k)
				}
			}
		}
		if want := 4; len(keysOf(snap, org)) != want {
			t.Errorf("organization %s has %d memberships, want %d (creator and 3 of 5 added)", org, len(keysOf(snap, org)), want)
		}
	})

	t.Run("UpdateOrganizationRefreshesMemberships", func(t *testing.T) {
		t.Parallel()
		f, o, name := fresh(t)
		users := f.Seed(3)
		org := f.CreateOrganization(users[0])
		f.AddMember(org, users[1], "")
		before := f.OrganizationsSnapshot()[org]
		if !f.UpdateOrganization(org) {
			t.Fatalf("UpdateOrganization(%s) = false", org)
		}
		after := f.OrganizationsSnapshot()[org]
		if jsonEqual(before, after) {
			t.Fatalf("UpdateOrganization changed nothing in the object")
		}
		fetched, err := o.FetchOrganization(context.Background(), org)
		if err != nil {
			t.Fatalf("FetchOrganization: %v", err)
		}
		checkOrganization(t, name, fetched, after)
		if b, a := derefTime(mustDeriveOrg(t, name, before).UpdatedAt), derefTime(mustDeriveOrg(t, name, after).UpdatedAt); name != "stackauth" && !a.After(b) {
			t.Errorf("updated_at did not advance: %v then %v", b, a)
		}
		// Where a membership embeds its organization, it changes with it.
		snap := f.MembershipsSnapshot()
		for _, u := range users[:2] {
			raw := snap[org+":"+u]
			if raw == nil {
				t.Fatalf("membership %s:%s missing", org, u)
			}
			if embedded, ok := embeddedOrgName(t, name, raw); ok {
				if want := mustDeriveOrg(t, name, after).Name; !reflect.DeepEqual(embedded, want) {
					t.Errorf("membership %s:%s embeds organization name %s, the organization's is %s", org, u, str(embedded), str(want))
				}
			}
		}
		listMemberships(t, o, name, org, snap)
	})

	t.Run("Webhooks", func(t *testing.T) {
		t.Parallel()
		f, _, _ := fresh(t)
		p := f.Provider()
		users := f.Seed(3)
		org := f.CreateOrganization(users[0])
		parse := func(what string, body []byte, h http.Header) provider.Event {
			t.Helper()
			ev, err := p.ParseWebhook(body, h)
			if err != nil {
				t.Fatalf("ParseWebhook(%s): %v", what, err)
			}
			if ev.Type == "" {
				t.Errorf("ParseWebhook(%s): empty Type", what)
			}
			return ev
		}
		body, h := f.OrganizationWebhook(provider.EventOrganizationChanged, org)
		if ev := parse("organization created", body, h); ev.Kind != provider.EventOrganizationChanged || ev.OrganizationID != org || ev.UserID != "" {
			t.Errorf("organization created: %+v, want EventOrganizationChanged for %s", ev, org)
		}
		f.UpdateOrganization(org)
		body, h = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
		if ev := parse("organization updated", body, h); ev.Kind != provider.EventOrganizationChanged || ev.OrganizationID != org {
			t.Errorf("organization updated: %+v, want EventOrganizationChanged for %s", ev, org)
		}
		if !f.AddMember(org, users[1], "") {
			t.Fatalf("AddMember = false")
		}
		for _, step := range []string{"created", "updated", "deleted"} {
			switch step {
			case "updated":
				_, other := roles(p.Name())
				f.UpdateMember(org, users[1], other)
			case "deleted":
				if !f.RemoveMember(org, users[1]) {
					t.Fatalf("RemoveMember = false")
				}
			}
			body, h := f.MembershipWebhook(org, users[1], step == "deleted")
			ev := parse("membership "+step, body, h)
			if ev.Kind != provider.EventMembershipChanged || ev.OrganizationID != org || ev.UserID != users[1] {
				t.Errorf("membership %s: %+v, want EventMembershipChanged for %s:%s", step, ev, org, users[1])
			}
			if !ev.Kind.IsOrganization() {
				t.Errorf("membership %s: Kind.IsOrganization() = false", step)
			}
		}
		// The creator's membership (maybe never announced) parses too.
		body, h = f.MembershipWebhook(org, users[0], false)
		if ev := parse("creator membership", body, h); ev.Kind != provider.EventMembershipChanged || ev.UserID != users[0] || ev.OrganizationID != org {
			t.Errorf("creator membership: %+v", ev)
		}
		// Tampering with a signed organization event is a bad signature.
		body, h = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
		if _, err := p.ParseWebhook(append(bytes.Clone(body), ' '), h); !errors.Is(err, provider.ErrBadSignature) {
			t.Errorf("tampered organization event: error = %v, want ErrBadSignature", err)
		}

		if !f.DeleteOrganization(org) {
			t.Fatalf("DeleteOrganization = false")
		}
		body, h = f.OrganizationWebhook(provider.EventOrganizationDeleted, org)
		ev := parse("organization deleted", body, h)
		if ev.Kind != provider.EventOrganizationDeleted || ev.OrganizationID != org || ev.UserID != "" {
			t.Errorf("organization deleted: %+v, want EventOrganizationDeleted for %s", ev, org)
		}
	})

	t.Run("WebhookBadIDs", func(t *testing.T) {
		t.Parallel()
		f, _, _ := fresh(t)
		p := f.Provider()
		users := f.Seed(2)
		org := f.CreateOrganization(users[0])
		f.AddMember(org, users[1], "")
		orgBody, _ := f.OrganizationWebhook(provider.EventOrganizationChanged, org)
		memBody, _ := f.MembershipWebhook(org, users[1], false)
		f.DeleteOrganization(org)
		delBody, _ := f.OrganizationWebhook(provider.EventOrganizationDeleted, org)
		long := strings.Repeat("a", provider.MaxUserIDLen+1)
		cases := map[string][]byte{
			"org event, empty id":           replaceID(orgBody, org, ""),
			"org event, NUL in id":          replaceID(orgBody, org, `org_a\u0000b`),
			"org event, long id":            replaceID(orgBody, org, long),
			"deleted event, empty id":       replaceID(delBody, org, ""),
			"deleted event, newline in id":  replaceID(delBody, org, `org_a\nb`),
			"membership, empty org id":      replaceID(memBody, org, ""),
			"membership, control in org id": replaceID(memBody, org, `org_a\u0085b`),
			"membership, empty user id":     replaceID(memBody, users[1], ""),
			"membership, NUL in user id":    replaceID(memBody, users[1], `user_a\u0000b`),
			"membership, long user id":      replaceID(memBody, users[1], long),
			"org event, truncated":          orgBody[:len(orgBody)/2],
		}
		for name, body := range cases {
			_, err := p.ParseWebhook(body, f.SignWebhook(body, time.Now()))
			if !errors.Is(err, provider.ErrBadPayload) {
				t.Errorf("%s: error = %v, want ErrBadPayload", name, err)
			}
			if errors.Is(err, provider.ErrBadSignature) {
				t.Errorf("%s: error also wraps ErrBadSignature", name)
			}
		}
	})

	t.Run("Faults", func(t *testing.T) {
		t.Parallel()
		f, o, _ := fresh(t)
		users := f.Seed(2)
		org := f.CreateOrganization(users[0])
		calls := map[string]func() error{
			"FetchOrganization": func() error { _, err := o.FetchOrganization(context.Background(), org); return err },
			"ListOrganizations": func() error { _, err := o.ListOrganizations(context.Background(), ""); return err },
			"ListMemberships":   func() error { _, err := o.ListMemberships(context.Background(), org, ""); return err },
		}
		for what, call := range calls {
			for _, status := range []int{500, 502, 503} {
				f.FailNext(1, status, 0)
				err := call()
				var se *provider.StatusError
				if !errors.As(err, &se) || se.StatusCode != status {
					t.Errorf("%s during %d: error = %v, want *provider.StatusError with that status", what, status, err)
				}
				orgNotSentinel(t, err)
			}
			f.FailNext(1, http.StatusTooManyRequests, 7*time.Second)
			err := call()
			var rl *provider.RateLimitedError
			if !errors.As(err, &rl) {
				t.Errorf("%s during 429: error = %v, want *provider.RateLimitedError", what, err)
			} else if rl.RetryAfter != 7*time.Second {
				t.Errorf("%s: RetryAfter = %s, want 7s", what, rl.RetryAfter)
			}
			orgNotSentinel(t, err)
			if err := call(); err != nil {
				t.Errorf("%s after the fault: %v", what, err)
			}
		}
	})

	t.Run("BadCredentials", func(t *testing.T) {
		t.Parallel()
		f, _, _ := fresh(t)
		users := f.Seed(2)
		org := f.CreateOrganization(users[0])
		bp := f.ProviderWithBadCredentials()
		bo, ok := bp.(provider.Organizations)
		if !ok {
			t.Fatalf("%T (ProviderWithBadCredentials) does not implement provider.Organizations", bp)
		}
		for what, err := range map[string]error{
			"FetchOrganization": func() error { _, err := bo.FetchOrganization(context.Background(), org); return err }(),
			"ListOrganizations": func() error { _, err := bo.ListOrganizations(context.Background(), ""); return err }(),
			"ListMemberships":   func() error { _, err := bo.ListMemberships(context.Background(), org, ""); return err }(),
		} {
			if !errors.Is(err, provider.ErrBadCredentials) {
				t.Errorf("%s with bad credentials: error = %v, want ErrBadCredentials", what, err)
			}
			if errors.Is(err, provider.ErrOrganizationNotFound) {
				t.Errorf("%s with bad credentials: error also wraps ErrOrganizationNotFound", what)
			}
			for k, v := range f.Env() {
				if len(v) >= 8 && !strings.HasSuffix(k, "_URL") && err != nil && strings.Contains(err.Error(), v) {
					t.Errorf("%s: error %q contains the value of %s", what, err, k)
				}
			}
		}
	})
}

// roles returns the provider's default member role key and another one (its
// admin role), or "" for a provider without roles.
func roles(providerName string) (def, other string) {
	switch providerName {
	case "clerk":
		return "org:member", "org:admin"
	case "workos":
		return "member", "admin"
	}
	return "", ""
}

func checkRole(t *testing.T, providerName string, snap map[string]json.RawMessage, key, want string) {
	t.Helper()
	raw, ok := snap[key]
	if !ok {
		t.Errorf("membership %s missing", key)
		return
	}
	m, err := DeriveMembership(providerName, raw)
	if err != nil {
		t.Errorf("membership %s: %v", key, err)
		return
	}
	if m != nil && (m.Role == nil || *m.Role != want) {
		t.Errorf("membership %s: role %s, want %q", key, str(m.Role), want)
	}
}

// listMemberships lists all of one organization's memberships, checks each
// against snap and returns them by key.
func listMemberships(t *testing.T, o provider.Organizations, providerName, org string, snap map[string]json.RawMessage) map[string]provider.Membership {
	t.Helper()
	got := map[string]provider.Membership{}
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := o.ListMemberships(context.Background(), org, cursor)
		if err != nil {
			t.Fatalf("ListMemberships(%s, %q) after %d pages: %v", org, cursor, pages, err)
		}
		for _, m := range page.Memberships {
			key := m.OrganizationID + ":" + m.UserID
			if m.OrganizationID != org {
				t.Errorf("ListMemberships(%s) returned a membership of %q", org, m.OrganizationID)
			}
			if _, dup := got[key]; dup {
				t.Fatalf("membership %s listed twice", key)
			}
			got[key] = m
			checkMembership(t, providerName, m, snap[key])
		}
		if page.Next == "" {
			return got
		}
		if page.Next == cursor {
			t.Fatalf("ListMemberships: Next cursor %q did not advance", cursor)
		}
		if pages > 100000 {
			t.Fatalf("ListMemberships does not end")
		}
		cursor = page.Next
	}
}

func keysOf(snap map[string]json.RawMessage, org string) []string {
	keys := []string{}
	for k := range snap {
		if strings.HasPrefix(k, org+":") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func short(keys []string) string {
	if len(keys) > 6 {
		return fmt.Sprintf("%v ... (%d)", keys[:6], len(keys))
	}
	return fmt.Sprint(keys)
}

func orgNotSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range orgSentinels {
		if errors.Is(err, s) {
			t.Errorf("error %v wraps %v; a transient fault must not", err, s)
		}
	}
}

// replaceID replaces every JSON string equal to id in body by the JSON string
// with content repl (already escaped).
func replaceID(body []byte, id, repl string) []byte {
	return bytes.ReplaceAll(body, []byte(`"`+id+`"`), []byte(`"`+repl+`"`))
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// checkOrganization compares org with what docs/data-model.md derives from
// raw, the fake's OrganizationsSnapshot entry.
func checkOrganization(t *testing.T, providerName string, org provider.Organization, raw json.RawMessage) {
	t.Helper()
	if raw == nil {
		t.Fatalf("organization %s is not in the fake's OrganizationsSnapshot", org.ID)
	}
	if !jsonEqual(org.Raw, raw) {
		t.Fatalf("organization %s: Raw differs from OrganizationsSnapshot\n got: %s\nwant: %s", org.ID, org.Raw, raw)
	}
	want := mustDeriveOrg(t, providerName, raw)
	if want == nil {
		return
	}
	if org.ID != want.ID {
		t.Errorf("ID = %q, want %q", org.ID, want.ID)
	}
	if !reflect.DeepEqual(org.Name, want.Name) {
		t.Errorf("organization %s: Name = %s, want %s", org.ID, str(org.Name), str(want.Name))
	}
	if !timeEqual(org.CreatedAt, want.CreatedAt) {
		t.Errorf("organization %s: CreatedAt = %v, want %v", org.ID, org.CreatedAt, want.CreatedAt)
	}
	if !timeEqual(org.UpdatedAt, want.UpdatedAt) {
		t.Errorf("organization %s: UpdatedAt = %v, want %v", org.ID, org.UpdatedAt, want.UpdatedAt)
	}
}

func mustDeriveOrg(t *testing.T, providerName string, raw json.RawMessage) *provider.Organization {
	t.Helper()
	want, err := DeriveOrganization(providerName, raw)
	if err != nil {
		t.Fatalf("derive organization: %v", err)
	}
	return want
}

// checkMembership compares m with what docs/data-model.md derives from raw,
// the fake's MembershipsSnapshot entry.
func checkMembership(t *testing.T, providerName string, m provider.Membership, raw json.RawMessage) {
	t.Helper()
	key := m.OrganizationID + ":" + m.UserID
	if raw == nil {
		t.Fatalf("membership %s is not in the fake's MembershipsSnapshot", key)
	}
	if !jsonEqual(m.Raw, raw) {
		t.Fatalf("membership %s: Raw differs from MembershipsSnapshot\n got: %s\nwant: %s", key, m.Raw, raw)
	}
	want, err := DeriveMembership(providerName, raw)
	if err != nil {
		t.Fatalf("membership %s: %v", key, err)
	}
	if want == nil {
		return
	}
	if m.OrganizationID != want.OrganizationID || m.UserID != want.UserID {
		t.Errorf("membership %s: ids differ from the object's %s:%s", key, want.OrganizationID, want.UserID)
	}
	if !reflect.DeepEqual(m.Role, want.Role) {
		t.Errorf("membership %s: Role = %s, want %s", key, str(m.Role), str(want.Role))
	}
	if providerName == "stackauth" {
		return // no times of its own
	}
	if !timeEqual(m.CreatedAt, want.CreatedAt) {
		t.Errorf("membership %s: CreatedAt = %v, want %v", key, m.CreatedAt, want.CreatedAt)
	}
	if !timeEqual(m.UpdatedAt, want.UpdatedAt) {
		t.Errorf("membership %s: UpdatedAt = %v, want %v", key, m.UpdatedAt, want.UpdatedAt)
	}
}

// rawFields decodes a raw object with numbers kept exact.
func rawFields(raw json.RawMessage) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func strField(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = obj[k]
	}
	s, _ := v.(string)
	return s
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// clerkTime reads one of Clerk's Unix times (ms; a positive value below 1e11
// is seconds, as some of Clerk's own examples have).
func clerkTime(m map[string]any, k string) *time.Time {
	n, ok := m[k].(json.Number)
	if !ok {
		return nil
	}
	i, err := n.Int64()
	if err != nil || i <= 0 {
		return nil
	}
	if i < 1e11 {
		tm := time.Unix(i, 0).UTC()
		return &tm
	}
	tm := time.UnixMilli(i).UTC()
	return &tm
}

func isoTime(m map[string]any, k string) *time.Time {
	s, _ := m[k].(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	return &tm
}

// DeriveOrganization computes the organizations_sync columns of
// docs/data-model.md from a provider's raw organization object,
// independently of the provider packages. It returns nil, nil for a provider
// it does not know.
func DeriveOrganization(providerName string, raw json.RawMessage) (*provider.Organization, error) {
	m, err := rawFields(raw)
	if err != nil {
		return nil, fmt.Errorf("decode raw organization: %w", err)
	}
	o := &provider.Organization{ID: strField(m, "id"), Raw: raw}
	switch providerName {
	case "stackauth":
		o.Name = nonEmpty(strField(m, "display_name"))
		if n, ok := m["created_at_millis"].(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				tm := time.UnixMilli(i).UTC()
				o.CreatedAt = &tm
			}
		}
	case "clerk":
		o.Name = nonEmpty(strField(m, "name"))
		o.CreatedAt = clerkTime(m, "created_at")
		o.UpdatedAt = clerkTime(m, "updated_at")
	case "workos":
		o.Name = nonEmpty(strField(m, "name"))
		o.CreatedAt = isoTime(m, "created_at")
		o.UpdatedAt = isoTime(m, "updated_at")
	default:
		return nil, nil
	}
	return o, nil
}

// DeriveMembership computes the memberships_sync columns of
// docs/data-model.md from a provider's raw membership object, independently
// of the provider packages. It returns nil, nil for a provider it does not
// know.
func DeriveMembership(providerName string, raw json.RawMessage) (*provider.Membership, error) {
	m, err := rawFields(raw)
	if err != nil {
		return nil, fmt.Errorf("decode raw membership: %w", err)
	}
	out := &provider.Membership{Raw: raw}
	switch providerName {
	case "stackauth":
		out.OrganizationID, out.UserID = strField(m, "team_id"), strField(m, "user_id")
	case "clerk":
		out.OrganizationID = strField(m, "organization", "id")
		out.UserID = strField(m, "public_user_data", "user_id")
		out.Role = nonEmpty(strField(m, "role"))
		out.CreatedAt = clerkTime(m, "created_at")
		out.UpdatedAt = clerkTime(m, "updated_at")
	case "workos":
		out.OrganizationID, out.UserID = strField(m, "organization_id"), strField(m, "user_id")
		out.Role = nonEmpty(strField(m, "role", "slug"))
		out.CreatedAt = isoTime(m, "created_at")
		out.UpdatedAt = isoTime(m, "updated_at")
	default:
		return nil, nil
	}
	if out.OrganizationID == "" || out.UserID == "" {
		return nil, fmt.Errorf("membership object names no organization or user: %s", raw)
	}
	return out, nil
}

// embeddedOrgName returns the organization name a membership object embeds
// (Clerk's organization.name, WorkOS's organization_name); false when the
// provider's memberships embed none.
func embeddedOrgName(t *testing.T, providerName string, raw json.RawMessage) (*string, bool) {
	t.Helper()
	m, err := rawFields(raw)
	if err != nil {
		t.Fatalf("decode membership: %v", err)
	}
	switch providerName {
	case "clerk":
		return nonEmpty(strField(m, "organization", "name")), true
	case "workos":
		if _, ok := m["organization_name"]; ok {
			return nonEmpty(strField(m, "organization_name")), true
		}
	}
	return nil, false
}
