package provider

import (
	"encoding/json"
	"fmt"

	"github.com/tidwall/gjson"
)

// ParseUserEvent parses a verified webhook body of the shape every supported
// provider uses: a JSON object whose typeKey ("type", or WorkOS's "event")
// names the event, and whose "data" object carries the user's "id" for
// user.created, user.updated and user.deleted. Other event types come back
// as [EventIgnored]. validID checks the provider's id format on top of
// [ValidateUserID]; it must return errors wrapping [ErrBadPayload].
//
// The body is validated once and only the two values are read (keys matched
// exactly), without decoding the user object: this is the webhook
// receiver's hot path. Errors wrap [ErrBadPayload].
func ParseUserEvent(body []byte, typeKey string, validID func(string) error) (Event, error) {
	if !json.Valid(body) {
		return Event{}, fmt.Errorf("%w: body is not valid JSON", ErrBadPayload)
	}
	env := gjson.ParseBytes(body)
	if !env.IsObject() {
		return Event{}, fmt.Errorf("%w: body is not a JSON object", ErrBadPayload)
	}
	rawType := env.Get(gjson.Escape(typeKey))
	switch {
	case !rawType.Exists():
		return Event{}, fmt.Errorf("%w: missing %q", ErrBadPayload, typeKey)
	case rawType.Type != gjson.String:
		return Event{}, fmt.Errorf("%w: %q is not a string", ErrBadPayload, typeKey)
	case rawType.String() == "":
		return Event{}, fmt.Errorf("%w: %q is empty", ErrBadPayload, typeKey)
	}
	ev := Event{Type: rawType.String()}
	switch ev.Type {
	case "user.created", "user.updated":
		ev.Kind = EventUserChanged
	case "user.deleted":
		ev.Kind = EventUserDeleted
	default:
		ev.Kind = EventIgnored
		return ev, nil
	}
	data := env.Get("data")
	switch {
	case !data.Exists():
		return Event{}, fmt.Errorf("%s: %w: missing \"data\"", ev.Type, ErrBadPayload)
	case !data.IsObject():
		return Event{}, fmt.Errorf("%s: %w: \"data\" is not a JSON object", ev.Type, ErrBadPayload)
	}
	id := data.Get("id")
	switch {
	case !id.Exists():
		return Event{}, fmt.Errorf("%s: %w: missing user id (data.id)", ev.Type, ErrBadPayload)
	case id.Type != gjson.String:
		return Event{}, fmt.Errorf("%s: %w: user id (data.id) is not a JSON string", ev.Type, ErrBadPayload)
	}
	ev.UserID = id.String()
	if err := ValidateUserID(ev.UserID); err != nil {
		return Event{}, fmt.Errorf("%s: %w", ev.Type, err)
	}
	if validID != nil {
		if err := validID(ev.UserID); err != nil {
			return Event{}, fmt.Errorf("%s: %w", ev.Type, err)
		}
	}
	return ev, nil
}
