package clerk

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/usersync/usersync/provider"
)

// ParseWebhook verifies a Svix-signed Clerk delivery (svix-id,
// svix-timestamp, svix-signature; 5 minutes' tolerance) and parses its
// envelope {data, object, type, timestamp, instance_id}. user.created and
// user.updated are EventUserChanged, user.deleted (data {object, id,
// deleted}) is EventUserDeleted; other types are EventIgnored.
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

// parseEvent parses a verified delivery's body.
func parseEvent(body []byte) (provider.Event, error) {
	var env struct {
		Type json.RawMessage `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return provider.Event{}, fmt.Errorf("%w: body is not a JSON object: %v", provider.ErrBadPayload, err)
	}
	var typ string
	if len(env.Type) == 0 || env.Type[0] != '"' || json.Unmarshal(env.Type, &typ) != nil || typ == "" {
		return provider.Event{}, fmt.Errorf("%w: event has no type string", provider.ErrBadPayload)
	}
	ev := provider.Event{Type: typ}
	switch typ {
	case "user.created", "user.updated":
		ev.Kind = provider.EventUserChanged
	case "user.deleted":
		ev.Kind = provider.EventUserDeleted
	default:
		ev.Kind = provider.EventIgnored
		return ev, nil
	}
	id, err := userIDFromData(env.Data)
	if err != nil {
		return provider.Event{}, fmt.Errorf("%s: %w", typ, err)
	}
	ev.UserID = id
	return ev, nil
}

// userIDFromData returns data.id, which must be a JSON string holding a
// valid Clerk user id.
func userIDFromData(data json.RawMessage) (string, error) {
	if len(data) == 0 || data[0] != '{' {
		return "", fmt.Errorf("%w: data is not an object", provider.ErrBadPayload)
	}
	var d struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf("%w: data: %v", provider.ErrBadPayload, err)
	}
	if len(d.ID) == 0 || d.ID[0] != '"' {
		return "", fmt.Errorf("%w: data.id is missing or not a string", provider.ErrBadPayload)
	}
	var id string
	if err := json.Unmarshal(d.ID, &id); err != nil {
		return "", fmt.Errorf("%w: data.id: %v", provider.ErrBadPayload, err)
	}
	if err := ValidateUserID(id); err != nil {
		return "", err
	}
	return id, nil
}
