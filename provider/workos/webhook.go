package workos

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/usersync/usersync/provider"
)

// SignatureHeader is the header that carries a delivery's signature.
const SignatureHeader = "WorkOS-Signature"

// Tolerance is how far a delivery's timestamp may be from now, either way.
const Tolerance = 180 * time.Second

// ComputeSignature returns the WorkOS-Signature header value for body sent at
// time at: "t=<unix ms>, v1=<hex HMAC-SHA256(secret, t + "." + body)>", the
// secret's bytes used as they are (not decoded).
func ComputeSignature(secret string, at time.Time, body []byte) string {
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	return "t=" + ts + ", v1=" + hex.EncodeToString(mac([]byte(secret), ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a WorkOS-Signature header value against body and
// secret at time now; the error wraps [provider.ErrBadSignature].
func VerifySignature(secret []byte, header string, body []byte, now time.Time) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no webhook secret configured", provider.ErrBadSignature)
	}
	if header == "" {
		return fmt.Errorf("%w: missing %s header", provider.ErrBadSignature, SignatureHeader)
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "t":
			ts = strings.TrimSpace(v)
		case "v1":
			if sig, err := hex.DecodeString(strings.TrimSpace(v)); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: %s header lacks t or a valid v1", provider.ErrBadSignature, SignatureHeader)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp is not an integer", provider.ErrBadSignature)
	}
	// Compare in milliseconds, guarding against overflow from absurd values.
	const maxMs = int64(1) << 50
	if ms <= 0 || ms > maxMs {
		return fmt.Errorf("%w: timestamp out of range", provider.ErrBadSignature)
	}
	if d := now.Sub(time.UnixMilli(ms)); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%w: timestamp %s away from now, outside %s", provider.ErrBadSignature, d.Round(time.Second), Tolerance)
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching signature", provider.ErrBadSignature)
}

// ParseWebhook verifies a WorkOS delivery (WorkOS-Signature, 180 s
// tolerance) and parses its envelope {id, event, data, created_at, object}.
// user.created and user.updated are EventUserChanged, user.deleted (which
// carries the full user) is EventUserDeleted. organization.created and
// .updated are EventOrganizationChanged, and so are organization_domain.*
// (a domain is part of its organization's object); organization.deleted is
// EventOrganizationDeleted; organization_membership.created, .updated and
// .deleted are EventMembershipChanged. Other events are EventIgnored.
func (c *Client) ParseWebhook(body []byte, header http.Header) (provider.Event, error) {
	if err := VerifySignature(c.webhookSecret, header.Get(SignatureHeader), body, c.now()); err != nil {
		return provider.Event{}, fmt.Errorf("workos: webhook: %w", err)
	}
	ev, err := parseEvent(body)
	if err != nil {
		return provider.Event{}, fmt.Errorf("workos: webhook: %w", err)
	}
	return ev, nil
}

// parseEvent parses a verified delivery's body.
func parseEvent(body []byte) (provider.Event, error) {
	ev, err := provider.ParseUserEvent(body, "event", ValidateUserID)
	if err != nil || ev.Kind != provider.EventIgnored {
		return ev, err
	}
	// ParseUserEvent has checked that body is a JSON object with a
	// non-empty string "event".
	var orgPath, userPath string
	switch ev.Type {
	case "organization.created", "organization.updated":
		ev.Kind, orgPath = provider.EventOrganizationChanged, "id"
	case "organization.deleted":
		ev.Kind, orgPath = provider.EventOrganizationDeleted, "id"
	case "organization_domain.created", "organization_domain.updated", "organization_domain.deleted",
		"organization_domain.verified":
		ev.Kind, orgPath = provider.EventOrganizationChanged, "organization_id"
	case "organization_domain.verification_failed":
		// data is {reason, organization_domain: {...}}.
		ev.Kind, orgPath = provider.EventOrganizationChanged, "organization_domain.organization_id"
	case "organization_membership.created", "organization_membership.updated", "organization_membership.deleted":
		ev.Kind, orgPath, userPath = provider.EventMembershipChanged, "organization_id", "user_id"
	default:
		return ev, nil
	}
	data := gjson.GetBytes(body, "data")
	if !data.IsObject() {
		return provider.Event{}, fmt.Errorf("%s: %w: \"data\" is missing or not a JSON object", ev.Type, provider.ErrBadPayload)
	}
	id, err := stringAt(data, orgPath)
	if err != nil {
		return provider.Event{}, fmt.Errorf("%s: %w", ev.Type, err)
	}
	if err := ValidateOrganizationID(id); err != nil {
		return provider.Event{}, fmt.Errorf("%s: data.%s: %w", ev.Type, orgPath, err)
	}
	ev.OrganizationID = id
	if userPath != "" {
		id, err := stringAt(data, userPath)
		if err != nil {
			return provider.Event{}, fmt.Errorf("%s: %w", ev.Type, err)
		}
		if err := ValidateUserID(id); err != nil {
			return provider.Event{}, fmt.Errorf("%s: data.%s: %w", ev.Type, userPath, err)
		}
		ev.UserID = id
	}
	return ev, nil
}

// stringAt returns the string at path (gjson dot syntax, plain keys) in data;
// the error wraps provider.ErrBadPayload.
func stringAt(data gjson.Result, path string) (string, error) {
	v := data.Get(path)
	switch {
	case !v.Exists():
		return "", fmt.Errorf("%w: missing data.%s", provider.ErrBadPayload, path)
	case v.Type != gjson.String:
		return "", fmt.Errorf("%w: data.%s is not a JSON string", provider.ErrBadPayload, path)
	}
	return v.String(), nil
}

var _ provider.SignatureChecker = (*Client)(nil)

// HasSignatureHeaders reports whether h has the WorkOS-Signature header that
// every WorkOS delivery carries; the receiver refuses a request without it
// before reading its body.
func (c *Client) HasSignatureHeaders(h http.Header) bool { return h.Get(SignatureHeader) != "" }
