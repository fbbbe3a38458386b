package clerk

import (
	"fmt"
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/usersync/usersync/provider"
)

// ParseWebhook verifies a Svix-signed Clerk delivery (svix-id,
// svix-timestamp, svix-signature; 5 minutes' tolerance) and parses its
// envelope {data, object, type, timestamp, instance_id}. user.created and
// user.updated are EventUserChanged, user.deleted (data {object, id,
// deleted}) is EventUserDeleted; organization.created and
// organization.updated (data: the Organization) are
// EventOrganizationChanged, organization.deleted (data {object, id, slug,
// deleted}) is EventOrganizationDeleted, and organizationMembership.created,
// .updated and .deleted (data: the OrganizationMembership, also on deletion)
// are EventMembershipChanged naming data.organization.id and
// data.public_user_data.user_id. Other types are EventIgnored.
func (c *Client) ParseWebhook(body []byte, header http.Header) (provider.Event, error) {
	if c.webhook == nil {
		return provider.Event{}, fmt.Errorf("clerk: webhook: %w: no webhook secret configured", provider.ErrBadSignature)
	}
	if err := c.webhook.Verify(body, header); err != nil {
		return provider.Event{}, fmt.Errorf("clerk: webhook: %w: %v", provider.ErrBadSignature, err)
	}
	ev, err := parseEvent(body)
	if err != nil {
		return provider.Event{}, fmt.Errorf("clerk: webhook: %w", err)
	}
	return ev, nil
}

// orgEventKinds are the organization and membership event types.
var orgEventKinds = map[string]provider.EventKind{
	"organization.created":           provider.EventOrganizationChanged,
	"organization.updated":           provider.EventOrganizationChanged,
	"organization.deleted":           provider.EventOrganizationDeleted,
	"organizationMembership.created": provider.EventMembershipChanged,
	"organizationMembership.updated": provider.EventMembershipChanged,
	"organizationMembership.deleted": provider.EventMembershipChanged,
}

// parseEvent parses a verified delivery's body: user events as
// provider.ParseUserEvent does, then the organization and membership events
// among those it ignores.
func parseEvent(body []byte) (provider.Event, error) {
	ev, err := provider.ParseUserEvent(body, "type", ValidateUserID)
	if err != nil || ev.Kind != provider.EventIgnored {
		return ev, err
	}
	if kind, ok := orgEventKinds[ev.Type]; ok {
		return parseOrgEvent(body, ev.Type, kind)
	}
	return ev, nil
}

// parseOrgEvent parses an organization or membership event whose body
// provider.ParseUserEvent has found to be a JSON object of that type,
// reading only the ids (without decoding the objects).
func parseOrgEvent(body []byte, typ string, kind provider.EventKind) (provider.Event, error) {
	env := gjson.ParseBytes(body)
	ev := provider.Event{Type: typ, Kind: kind}
	data := env.Get("data")
	if !data.IsObject() {
		return provider.Event{}, fmt.Errorf("%s: %w: \"data\" is missing or not a JSON object", ev.Type, provider.ErrBadPayload)
	}
	str := func(path, what string) (string, error) {
		v := data.Get(path)
		switch {
		case !v.Exists():
			return "", fmt.Errorf("%s: %w: missing %s (data.%s)", ev.Type, provider.ErrBadPayload, what, path)
		case v.Type != gjson.String:
			return "", fmt.Errorf("%s: %w: %s (data.%s) is not a JSON string", ev.Type, provider.ErrBadPayload, what, path)
		}
		return v.String(), nil
	}
	orgPath := "id"
	if kind == provider.EventMembershipChanged {
		orgPath = "organization.id"
		uid, err := str("public_user_data.user_id", "user id")
		if err != nil {
			return provider.Event{}, err
		}
		if err := ValidateUserID(uid); err != nil {
			return provider.Event{}, fmt.Errorf("%s: %w", ev.Type, err)
		}
		ev.UserID = uid
	}
	oid, err := str(orgPath, "organization id")
	if err != nil {
		return provider.Event{}, err
	}
	if err := ValidateOrganizationID(oid); err != nil {
		return provider.Event{}, fmt.Errorf("%s: %w", ev.Type, err)
	}
	ev.OrganizationID = oid
	return ev, nil
}
