package clerk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	yaml "go.yaml.in/yaml/v4"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/providertest/oascheck"
)

// Clerk's organization payloads come from its own webhook document (the
// examples of clerk-webhooks-*.yml, read from the reference folder beside
// the repository; they are not ours to commit). What they show, in our
// words: organization events carry the Organization with members_count,
// missing_member_with_elevated_permissions and pending_invitations_count;
// organization.deleted carries only {object, id, slug, deleted};
// membership events (deletion included) carry the whole membership, whose
// organization is embedded with the same counts and whose member is only
// public_user_data.user_id; envelope timestamps are seconds-sized while the
// objects' times are milliseconds.

const orgExampleID = "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
const memberExampleUserID = "user_2h8op3Isl1QR7tKu5FGNfaLKEoU"

var orgEventTypes = []string{
	"organization.created", "organization.updated", "organization.deleted",
	"organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted",
}

// webhookExamples returns the example body of each organization event type,
// as JSON, from Clerk's webhook document.
func webhookExamples(t *testing.T) map[string][]byte {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(oascheck.ReferenceDir(t), "openapi", "clerk-webhooks-*.yml"))
	if len(matches) == 0 {
		t.Skip("Clerk's webhook document (clerk-webhooks-*.yml) is not in the reference folder")
	}
	sort.Strings(matches)
	b, err := os.ReadFile(matches[len(matches)-1])
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Webhooks map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Example any `yaml:"example"`
					} `yaml:"content"`
				} `yaml:"requestBody"`
			} `yaml:"post"`
		} `yaml:"x-webhooks"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", filepath.Base(matches[len(matches)-1]), err)
	}
	out := map[string][]byte{}
	for _, typ := range orgEventTypes {
		ex := doc.Webhooks[typ].Post.RequestBody.Content["application/json"].Example
		if ex == nil {
			t.Fatalf("%s has no example for %s", filepath.Base(matches[len(matches)-1]), typ)
		}
		j, err := json.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		out[typ] = j
	}
	return out
}

func signedHeader(t *testing.T, secret string, body []byte) http.Header {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign("msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("svix-id", "msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S")
	h.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("svix-signature", sig)
	return h
}

// TestPublishedOrganizationWebhooks parses Clerk's own examples of the six
// organization and membership events.
func TestPublishedOrganizationWebhooks(t *testing.T) {
	examples := webhookExamples(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	c, err := clerk.New(clerk.Config{SecretKey: "sk_test_fixture", WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for typ, body := range examples {
		ev, err := c.ParseWebhook(body, signedHeader(t, secret, body))
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		want := provider.Event{Type: typ, Kind: provider.EventOrganizationChanged, OrganizationID: orgExampleID}
		switch {
		case typ == "organization.deleted":
			want.Kind = provider.EventOrganizationDeleted
		case strings.HasPrefix(typ, "organizationMembership."):
			want.Kind, want.UserID = provider.EventMembershipChanged, memberExampleUserID
		}
		if ev != want {
			t.Errorf("%s: got %+v, want %+v", typ, ev, want)
		}
	}
}

// TestPublishedOrganizationsRead serves the examples' organization and
// membership objects as the API would and reads them through the client:
// the columns derived from Clerk's own objects.
func TestPublishedOrganizationsRead(t *testing.T) {
	examples := webhookExamples(t)
	data := func(typ string) json.RawMessage {
		var env struct{ Data json.RawMessage }
		if err := json.Unmarshal(examples[typ], &env); err != nil {
			t.Fatal(err)
		}
		return env.Data
	}
	org, mem := data("organization.updated"), data("organizationMembership.updated")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/organizations/" + orgExampleID:
			_, _ = w.Write(org)
		case "/v1/organizations":
			_, _ = w.Write([]byte(`{"data":[` + string(org) + `],"total_count":1}`))
		case "/v1/organizations/" + orgExampleID + "/memberships":
			_, _ = w.Write([]byte(`{"data":[` + string(mem) + `],"total_count":1}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"message":"not found","long_message":"Resource not found","code":"resource_not_found"}]}`))
		}
	}))
	defer srv.Close()
	c, err := clerk.New(clerk.Config{SecretKey: "sk_test_fixture", APIURL: srv.URL + "/v1", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := c.FetchOrganization(ctx, orgExampleID)
	if err != nil {
		t.Fatalf("FetchOrganization: %v", err)
	}
	checkOrg := func(label string, o provider.Organization) {
		t.Helper()
		if o.ID != orgExampleID || o.Name == nil || *o.Name != "Acme Corp Updated" ||
			o.CreatedAt == nil || !o.CreatedAt.Equal(time.UnixMilli(1716883200000)) ||
			o.UpdatedAt == nil || !o.UpdatedAt.Equal(time.UnixMilli(1716883500000)) {
			t.Errorf("%s: %+v (name %v, created %v, updated %v)", label, o, o.Name, o.CreatedAt, o.UpdatedAt)
		}
		if string(o.Raw) != string(org) {
			t.Errorf("%s: Raw is not the object as received", label)
		}
	}
	checkOrg("FetchOrganization", got)
	page, err := c.ListOrganizations(ctx, "")
	if err != nil || len(page.Organizations) != 1 || page.Next != "" {
		t.Fatalf("ListOrganizations: %+v, %v", page, err)
	}
	checkOrg("ListOrganizations", page.Organizations[0])
	mp, err := c.ListMemberships(ctx, orgExampleID, "")
	if err != nil || len(mp.Memberships) != 1 || mp.Next != "" {
		t.Fatalf("ListMemberships: %+v, %v", mp, err)
	}
	m := mp.Memberships[0]
	if m.OrganizationID != orgExampleID || m.UserID != memberExampleUserID || m.Role == nil || *m.Role != "org:admin" ||
		m.CreatedAt == nil || !m.CreatedAt.Equal(time.UnixMilli(1716883200000)) ||
		m.UpdatedAt == nil || !m.UpdatedAt.Equal(time.UnixMilli(1716883500000)) || string(m.Raw) != string(mem) {
		t.Errorf("ListMemberships: %+v", m)
	}
}

// TestPublishedOrganizationsVersusSchema validates the examples' objects
// against the Backend API document's Organization and OrganizationMembership
// schemas (the fake's answers are validated by TestContractOpenAPI).
func TestPublishedOrganizationsVersusSchema(t *testing.T) {
	examples := webhookExamples(t)
	doc := clerkSpec(t)
	for typ, body := range examples {
		var env struct{ Data json.RawMessage }
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		schema := "Organization"
		switch {
		case typ == "organization.deleted":
			continue // a DeletedObject
		case strings.HasPrefix(typ, "organizationMembership."):
			schema = "OrganizationMembership"
		}
		if err := doc.ValidateSchema(schema, env.Data); err != nil {
			t.Errorf("%s: %s example does not validate: %v", typ, schema, firstLine(err))
		}
	}
}

// keyShape returns the keys of a JSON object and, for nested objects
// (other than metadata, whose keys are the app's), their shapes.
func keyShape(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not an object: %s", raw)
	}
	out := map[string]any{}
	for k, v := range m {
		if strings.HasSuffix(k, "_metadata") || len(v) == 0 || v[0] != '{' {
			out[k] = true
			continue
		}
		out[k] = keyShape(t, v)
	}
	return out
}

// TestFakeWebhooksMatchPublished compares the keys of the fake's
// organization and membership deliveries, at every level (envelope, object,
// embedded organization, public user data), with Clerk's own examples.
func TestFakeWebhooksMatchPublished(t *testing.T) {
	examples := webhookExamples(t)
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	users := f.Seed(3)
	org := f.CreateOrganization(users[0])
	f.AddMember(org, users[1], "")
	got := map[string][]byte{}
	got["organization.created"], _ = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
	got["organizationMembership.created"], _ = f.MembershipWebhook(org, users[1], false)
	f.UpdateOrganization(org)
	f.UpdateMember(org, users[1], "org:admin")
	got["organization.updated"], _ = f.OrganizationWebhook(provider.EventOrganizationChanged, org)
	got["organizationMembership.updated"], _ = f.MembershipWebhook(org, users[1], false)
	f.RemoveMember(org, users[1])
	got["organizationMembership.deleted"], _ = f.MembershipWebhook(org, users[1], true)
	f.DeleteOrganization(org)
	got["organization.deleted"], _ = f.OrganizationWebhook(provider.EventOrganizationDeleted, org)
	for _, typ := range orgEventTypes {
		var env struct{ Type string }
		if err := json.Unmarshal(got[typ], &env); err != nil || env.Type != typ {
			t.Errorf("fake's %s delivery has type %q (%v)", typ, env.Type, err)
		}
		if g, w := keyShape(t, got[typ]), keyShape(t, examples[typ]); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: the fake's keys differ from Clerk's example\n fake: %v\nClerk: %v", typ, g, w)
		}
	}
}
