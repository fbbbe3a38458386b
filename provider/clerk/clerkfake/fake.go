// Package clerkfake is an in-process imitation of Clerk's Backend API user
// endpoints and of its Svix-signed webhooks, for tests and the demo. It
// answers as the real Backend API does (status codes, error bodies, offset
// pagination, Svix-signed webhooks), as docs/providers.md describes.
package clerkfake

import (
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/clerk"
	"github.com/usersync/usersync/provider/fakekit"
)

// Options configures a [Fake]. The zero value is ready to use.
type Options struct {
	// SecretKey is the key the fake accepts; default a random sk_test_ key.
	SecretKey string
	// WebhookSecret signs webhooks; default a random whsec_ secret.
	WebhookSecret string
	// PageSize is the page size of the clients Provider returns (default
	// the client's default, 500).
	PageSize int
	// WrapTransport, when set, wraps the HTTP transport of the clients
	// Provider returns (e.g. to validate their traffic against the
	// provider's OpenAPI document).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Fake imitates Clerk. It implements [fakekit.Fake] and is safe for
// concurrent use.
type Fake struct {
	fakekit.Faults

	srv      *httptest.Server
	key      string
	whSecret string
	webhook  *svix.Webhook
	pageSize int
	wrap     func(http.RoundTripper) http.RoundTripper

	mu     sync.Mutex
	rng    *rand.Rand
	seq    int64
	byID   map[string]*fakeUser
	sorted []*fakeUser // by (CreatedAt, seq): the +created_at order
	org    orgState    // organizations and memberships (orgs.go)
}

var _ fakekit.Fake = (*Fake)(nil)

type fakeUser struct {
	seq int64
	obj userJSON
	// raw, when set, is served instead of obj: a user object given to
	// PutUser as is (obj then holds what the fake could decode of it).
	raw json.RawMessage
}

// body is the user's object as GET /v1/users/{id} returns it.
func (u *fakeUser) body() json.RawMessage {
	if u.raw != nil {
		return u.raw
	}
	return mustJSON(&u.obj)
}

// New starts a fake Clerk API on a local port.
func New(opts Options) *Fake {
	f := &Fake{
		key:      opts.SecretKey,
		whSecret: opts.WebhookSecret,
		pageSize: opts.PageSize,
		wrap:     opts.WrapTransport,
		byID:     map[string]*fakeUser{},
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	f.rng = rand.New(rand.NewPCG(beUint64(seed[:8]), beUint64(seed[8:])))
	if f.key == "" {
		f.key = "sk_test_" + randomBase62(40)
	}
	if f.whSecret == "" {
		var b [24]byte
		_, _ = crand.Read(b[:])
		f.whSecret = "whsec_" + base64.StdEncoding.EncodeToString(b[:])
	}
	wh, err := svix.NewWebhook(f.whSecret)
	if err != nil {
		panic(fmt.Sprintf("clerkfake: invalid webhook secret: %v", err))
	}
	f.webhook = wh
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	return f
}

// URL returns the API base URL, ending in /v1 (the value of CLERK_API_URL).
func (f *Fake) URL() string { return f.srv.URL + "/v1" }

// Env returns CLERK_SECRET_KEY, CLERK_WEBHOOK_SECRET and CLERK_API_URL.
func (f *Fake) Env() map[string]string {
	return map[string]string{
		"CLERK_SECRET_KEY":     f.key,
		"CLERK_WEBHOOK_SECRET": f.whSecret,
		"CLERK_API_URL":        f.URL(),
	}
}

// HTTPClient returns an HTTP client for the fake's server.
func (f *Fake) HTTPClient() *http.Client { return f.srv.Client() }

// Provider returns a Clerk client configured for this fake.
func (f *Fake) Provider() provider.Provider { return f.client(f.key) }

// ProviderWithBadCredentials returns a Clerk client with a key the fake rejects.
func (f *Fake) ProviderWithBadCredentials() provider.Provider {
	return f.client("sk_test_" + randomBase62(40))
}

func (f *Fake) client(key string) *clerk.Client {
	c, err := clerk.New(clerk.Config{
		SecretKey:     key,
		WebhookSecret: f.whSecret,
		APIURL:        f.URL(),
		HTTPClient:    f.httpClient(),
		PageSize:      f.pageSize,
	})
	if err != nil {
		panic(fmt.Sprintf("clerkfake: %v", err))
	}
	return c
}

// httpClient is the HTTP client of the clients Provider returns.
func (f *Fake) httpClient() *http.Client {
	hc := f.srv.Client()
	if f.wrap == nil {
		return hc
	}
	c := *hc
	c.Transport = f.wrap(hc.Transport)
	return &c
}

// Close stops the server.
func (f *Fake) Close() { f.srv.Close() }

// CreateUser adds a user created now and returns its id.
func (f *Fake) CreateUser() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.newUserLocked(time.Now().UnixMilli())
	f.insertLocked(u)
	return u.obj.ID
}

// Seed creates n users quickly, created over the last n/3 milliseconds in
// groups of three sharing a millisecond (as bulk imports do), and returns
// their ids in creation order.
func (f *Fake) Seed(n int) []string {
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now().UnixMilli()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		u := f.newUserLocked(now - int64((n-1-i)/3))
		f.byID[u.obj.ID] = u
		f.sorted = append(f.sorted, u)
		ids = append(ids, u.obj.ID)
	}
	sort.SliceStable(f.sorted, func(i, j int) bool { return less(f.sorted[i], f.sorted[j]) })
	return ids
}

// UpdateUser changes the user's name or metadata and bumps updated_at.
func (f *Fake) UpdateUser(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.byID[id]
	if !ok {
		return false
	}
	o := &u.obj
	u.raw = nil // from now on the fake's own shape
	switch f.rng.IntN(3) {
	case 0:
		fn := firstNames[f.rng.IntN(len(firstNames))]
		o.FirstName = &fn
	case 1:
		o.PublicMetadata = map[string]any{"plan": plans[f.rng.IntN(len(plans))], "seats": f.rng.IntN(50) + 1}
	default:
		o.PrivateMetadata = map[string]any{"stripe_customer_id": "cus_" + f.base62(14)}
	}
	now := time.Now().UnixMilli()
	o.UpdatedAt = max(now, o.UpdatedAt+1)
	return true
}

// DeleteUser removes the user.
func (f *Fake) DeleteUser(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.byID[id]
	if !ok {
		return false
	}
	f.dropUserMembershipsLocked(id)
	f.removeLocked(u)
	return true
}

// Snapshot returns every live user's object as GET /v1/users/{id} returns it.
func (f *Fake) Snapshot() map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]json.RawMessage, len(f.byID))
	for id, u := range f.byID {
		out[id] = u.body()
	}
	return out
}

// User returns one user's object, as GET /v1/users/{id} returns it.
func (f *Fake) User(id string) (json.RawMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.byID[id]
	if !ok {
		return nil, false
	}
	return u.body(), true
}

// SetUserFields overwrites top-level fields of a stored user (for tests of
// edge cases: names, username, email addresses); false if the user does not
// exist or the result is not a valid user object.
func (f *Fake) SetUserFields(id string, fields map[string]any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.byID[id]
	if !ok {
		return false
	}
	var m map[string]any
	if json.Unmarshal(u.body(), &m) != nil {
		return false
	}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return false
	}
	var o userJSON
	if json.Unmarshal(b, &o) != nil || o.ID != id || o.CreatedAt != u.obj.CreatedAt {
		return false
	}
	if u.raw != nil {
		u.raw = b
	}
	u.obj = o
	return true
}

// PutUser adds, or replaces, a user whose GET /v1/users/{id} answer (and
// list entry, and webhook data) is exactly raw, e.g. a payload Clerk itself
// published. raw must be a JSON object with a string "id" and an integer
// "created_at" (the list's order). It returns the user's id.
func (f *Fake) PutUser(raw json.RawMessage) (string, error) {
	var o userJSON
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("clerkfake: PutUser: %w", err)
	}
	if o.ID == "" {
		return "", errors.New("clerkfake: PutUser: no id")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.byID[o.ID]; ok {
		f.removeLocked(old)
	}
	f.seq++
	f.insertLocked(&fakeUser{seq: f.seq, obj: o, raw: append(json.RawMessage(nil), raw...)})
	return o.ID, nil
}

func (f *Fake) removeLocked(u *fakeUser) {
	delete(f.byID, u.obj.ID)
	i := sort.Search(len(f.sorted), func(i int) bool { return !less(f.sorted[i], u) })
	if i < len(f.sorted) && f.sorted[i] == u {
		f.sorted = append(f.sorted[:i], f.sorted[i+1:]...)
	}
}

func less(a, b *fakeUser) bool {
	if a.obj.CreatedAt != b.obj.CreatedAt {
		return a.obj.CreatedAt < b.obj.CreatedAt
	}
	return a.seq < b.seq
}

func (f *Fake) insertLocked(u *fakeUser) {
	f.byID[u.obj.ID] = u
	n := len(f.sorted)
	if n == 0 || !less(u, f.sorted[n-1]) {
		f.sorted = append(f.sorted, u)
		return
	}
	i := sort.Search(n, func(i int) bool { return less(u, f.sorted[i]) })
	f.sorted = append(f.sorted, nil)
	copy(f.sorted[i+1:], f.sorted[i:])
	f.sorted[i] = u
}

// Webhook builds a signed delivery: user.created (never updated) or
// user.updated with the user's current object, or user.deleted with
// {object, id, deleted}.
func (f *Fake) Webhook(kind provider.EventKind, id string) ([]byte, http.Header) {
	now := time.Now()
	var typ string
	var data any
	switch kind {
	case provider.EventUserDeleted:
		typ = "user.deleted"
		data = map[string]any{"object": "user", "id": id, "deleted": true}
	default:
		typ = "user.updated"
		f.mu.Lock()
		if u, ok := f.byID[id]; ok {
			if u.obj.UpdatedAt == u.obj.CreatedAt {
				typ = "user.created"
			}
			data = u.body()
		} else {
			data = map[string]any{"object": "user", "id": id}
		}
		f.mu.Unlock()
	}
	return f.event(typ, data, now)
}

// IgnoredWebhook builds a signed session.created delivery (not about users).
func (f *Fake) IgnoredWebhook() ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	userID := "user_" + f.ksuidLocked(now)
	sess := map[string]any{
		"object":         "session",
		"id":             "sess_" + f.ksuidLocked(now),
		"client_id":      "client_" + f.ksuidLocked(now),
		"user_id":        userID,
		"status":         "active",
		"last_active_at": now.UnixMilli(),
		"expire_at":      now.Add(7 * 24 * time.Hour).UnixMilli(),
		"abandon_at":     now.Add(30 * 24 * time.Hour).UnixMilli(),
		"created_at":     now.UnixMilli(),
		"updated_at":     now.UnixMilli(),
	}
	f.mu.Unlock()
	return f.event("session.created", sess, now)
}

func (f *Fake) event(typ string, data any, now time.Time) ([]byte, http.Header) {
	env := map[string]any{
		"data":        data,
		"instance_id": "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		"object":      "event",
		"timestamp":   now.UnixMilli(),
		"type":        typ,
		"event_attributes": map[string]any{"http_request": map[string]any{
			"client_ip":  "192.168.1.100",
			"user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
		}},
	}
	body, err := json.Marshal(env)
	if err != nil {
		panic(fmt.Sprintf("clerkfake: marshal event: %v", err))
	}
	return body, f.SignWebhook(body, now)
}

// SignWebhook signs body as Svix does for Clerk, at time at: svix-id,
// svix-timestamp (unix seconds) and svix-signature headers.
func (f *Fake) SignWebhook(body []byte, at time.Time) http.Header {
	msgID := "msg_" + randomBase62(27)
	sig, err := f.webhook.Sign(msgID, at, body)
	if err != nil {
		panic(fmt.Sprintf("clerkfake: sign: %v", err))
	}
	h := http.Header{}
	h.Set("svix-id", msgID)
	h.Set("svix-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("svix-signature", sig)
	return h
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("clerkfake: marshal: %v", err))
	}
	return b
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n cryptographically random base62 characters.
func randomBase62(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	for i := range b {
		b[i] = base62Digits[int(b[i])%62]
	}
	return string(b)
}

func (f *Fake) base62(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = base62Digits[f.rng.IntN(62)]
	}
	return string(b)
}

// ksuidLocked returns a KSUID-shaped id body (27 base62 characters: a
// timestamp and 16 random bytes), as Clerk's ids are.
func (f *Fake) ksuidLocked(t time.Time) string {
	var raw [20]byte
	ts := uint32(t.Unix() - 1400000000)
	raw[0], raw[1], raw[2], raw[3] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
	for i := 4; i < 20; i++ {
		raw[i] = byte(f.rng.UintN(256))
	}
	s := new(big.Int).SetBytes(raw[:]).Text(62)
	for len(s) < 27 {
		s = "0" + s
	}
	return s
}

func traceID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
