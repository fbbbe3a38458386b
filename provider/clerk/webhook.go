package clerk

import (
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
	return provider.ParseUserEvent(body, "type", ValidateUserID)
}
