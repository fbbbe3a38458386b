// Package stacksnap reads the inline snapshots of Stack Auth's own end-to-end
// tests (the responses and webhook messages its backend produced, printed by
// its test serializer) as JSON, for tests that check usersync against what
// Stack Auth itself writes.
//
// The serializer's output is close to JSON but is not JSON: keys are sorted,
// objects and arrays carry trailing commas, a response is printed as
// `NiceResponse { "status", "body", "headers": Headers { ... } }` with most
// headers hidden (`<some fields may have been hidden>`), UUIDs are replaced
// by the string "<stripped UUID>" (also inside other strings, such as
// generated emails), and time fields by an unquoted
// `<stripped field 'name'>`. [Parse] turns such a snapshot into JSON:
// every stripped UUID becomes a fresh, valid lower-case UUID and every
// stripped time field a millisecond timestamp, so the result has the shape
// and the values of the real object.
//
// The snapshot files are not part of this repository; tests find them with
// [Dir] and skip when they are absent.
package stacksnap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/usersync/usersync/internal/refdata"
)

// Dir returns the folder of provider's own published payloads (for example
// "stackauth"), under the reference folder refdata.Dir finds, or an error
// saying what is missing.
func Dir(provider string) (string, error) {
	ref, err := refdata.Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(ref, "real-fixtures", provider)
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		return "", fmt.Errorf("no payloads of %s in the reference folder", provider)
	}
	return p, nil
}

// Response is a snapshot of an HTTP response.
type Response struct {
	Status int
	// Body is the JSON body.
	Body json.RawMessage
	// Headers holds the headers the snapshot shows (most are hidden).
	Headers map[string]string
}

var (
	hiddenRe    = regexp.MustCompile(`<some fields may have been hidden>,?`)
	strippedRe  = regexp.MustCompile(`<stripped field '([A-Za-z0-9_]+)'>`)
	trailingRe  = regexp.MustCompile(`,(\s*[}\]])`)
	niceRespRe  = regexp.MustCompile(`^\s*NiceResponse\s*\{`)
	headersObjR = regexp.MustCompile(`Headers\s*\{`)
)

// BaseMillis is the timestamp (ms) given to the first stripped time field;
// each further one is a second later.
const BaseMillis = 1_714_000_000_000

// Parse turns one snapshot into JSON (see the package comment). Each
// stripped UUID gets the next value of uuids (nil: a deterministic
// sequence).
func Parse(snapshot []byte, uuids func() string) (json.RawMessage, error) {
	if uuids == nil {
		uuids = Sequence("5ca1ab1e")
	}
	s := string(snapshot)
	s = niceRespRe.ReplaceAllString(s, "{")
	s = headersObjR.ReplaceAllString(s, "{")
	s = hiddenRe.ReplaceAllString(s, "")
	n := 0
	s = strippedRe.ReplaceAllStringFunc(s, func(string) string {
		n++
		return fmt.Sprint(BaseMillis + int64(n-1)*1000)
	})
	for strings.Contains(s, "<stripped UUID>") {
		s = strings.Replace(s, "<stripped UUID>", uuids(), 1)
	}
	for {
		t := trailingRe.ReplaceAllString(s, "$1")
		if t == s {
			break
		}
		s = t
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("snapshot is not JSON once converted: %w", err)
	}
	return json.RawMessage(s), nil
}

// ParseResponse parses a `NiceResponse { ... }` snapshot.
func ParseResponse(snapshot []byte, uuids func() string) (Response, error) {
	raw, err := Parse(snapshot, uuids)
	if err != nil {
		return Response{}, err
	}
	var r struct {
		Status  *int              `json:"status"`
		Body    json.RawMessage   `json:"body"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Response{}, fmt.Errorf("response snapshot: %w", err)
	}
	if r.Status == nil || r.Body == nil {
		return Response{}, errors.New("response snapshot has no status or body")
	}
	return Response{Status: *r.Status, Body: r.Body, Headers: r.Headers}, nil
}

// ParseWebhookMessage parses a snapshot of a Svix message object (as Svix's
// API returns it) and returns its payload: the body Svix delivers to the
// webhook endpoint.
func ParseWebhookMessage(snapshot []byte, uuids func() string) (json.RawMessage, error) {
	raw, err := Parse(snapshot, uuids)
	if err != nil {
		return nil, err
	}
	var m struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("webhook message snapshot: %w", err)
	}
	if m.Payload == nil {
		return nil, errors.New("webhook message snapshot has no payload")
	}
	return m.Payload, nil
}

// Sequence returns a generator of distinct, valid (version 4) lower-case
// UUIDs whose first group is prefix (8 hex digits).
func Sequence(prefix string) func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("%s-%04x-4%03x-8%03x-%012x", prefix, n>>16&0xffff, n>>4&0xfff, n&0xfff, n)
	}
}
