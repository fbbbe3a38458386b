// Package workosfake is an in-process imitation of WorkOS User Management's
// user endpoints, of its organizations and AuthKit organization memberships,
// and of its signed webhooks, for tests and the demo. It
// answers as the real API does (status codes, error bodies, cursor pagination,
// the WorkOS-Signature header), as docs/providers.md describes.
package workosfake

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/workos"
)

// Options configures a [Fake]. The zero value is ready to use.
type Options struct {
	// APIKey is the key the fake accepts; default a random sk_test_ key.
	APIKey string
	// WebhookSecret signs webhooks; default a random secret.
	WebhookSecret string
	// PageSize is the page size of the clients Provider returns (default
	// the client's default, 100).
	PageSize int
	// WrapTransport, when set, wraps the HTTP transport of the clients
	// Provider returns (e.g. to validate their traffic against the
	// provider's OpenAPI document).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// LenientCursor makes a list cursor that names a deleted user work as a
	// plain id bound (keyset pagination). By default such a cursor is
	// answered 400 (WorkOS's real behaviour is undocumented; this is the
	// pessimistic guess).
	LenientCursor bool
}

// Fake imitates WorkOS. It implements [fakekit.Fake] and is safe for
// concurrent use.
type Fake struct {
	fakekit.Faults

	srv      *httptest.Server
	key      string
	whSecret string
	pageSize int
	wrap     func(http.RoundTripper) http.RoundTripper
	lenient  bool

	mu      sync.Mutex
	rng     *rand.Rand
	lastMs  int64
	lastRnd [10]byte
	byID    map[string]*userJSON
	sorted  []*userJSON // by id, which is creation order (monotonic ULIDs)
	deleted map[string]*userJSON
	orgs    orgState
}

var _ fakekit.Fake = (*Fake)(nil)

// New starts a fake WorkOS API on a local port.
func New(opts Options) *Fake {
	f := &Fake{
		key:      opts.APIKey,
		whSecret: opts.WebhookSecret,
		pageSize: opts.PageSize,
		wrap:     opts.WrapTransport,
		lenient:  opts.LenientCursor,
		byID:     map[string]*userJSON{},
		deleted:  map[string]*userJSON{},
		orgs:     newOrgState(),
	}
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	f.rng = rand.New(rand.NewPCG(beUint64(seed[:8]), beUint64(seed[8:])))
	if f.key == "" {
		f.key = "sk_test_" + randomBase62(48)
	}
	if f.whSecret == "" {
		f.whSecret = randomBase62(32)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	return f
}

// URL returns the API base URL (the value of WORKOS_API_URL).
func (f *Fake) URL() string { return f.srv.URL }

// Env returns WORKOS_API_KEY, WORKOS_WEBHOOK_SECRET and WORKOS_API_URL.
func (f *Fake) Env() map[string]string {
	return map[string]string{
		"WORKOS_API_KEY":        f.key,
		"WORKOS_WEBHOOK_SECRET": f.whSecret,
		"WORKOS_API_URL":        f.URL(),
	}
}

// HTTPClient returns an HTTP client for the fake's server.
func (f *Fake) HTTPClient() *http.Client { return f.srv.Client() }

// Provider returns a WorkOS client configured for this fake.
func (f *Fake) Provider() provider.Provider { return f.client(f.key) }

// ProviderWithBadCredentials returns a WorkOS client with a key the fake
// rejects.
func (f *Fake) ProviderWithBadCredentials() provider.Provider {
	return f.client("sk_test_" + randomBase62(48))
}

func (f *Fake) client(key string) *workos.Client {
	c, err := workos.New(workos.Config{
		APIKey:        key,
		WebhookSecret: f.whSecret,
		APIURL:        f.URL(),
		HTTPClient:    f.httpClient(),
		PageSize:      f.pageSize,
	})
	if err != nil {
		panic(fmt.Sprintf("workosfake: %v", err))
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
	u := f.newUserLocked(time.Now())
	f.byID[u.ID] = u
	f.sorted = append(f.sorted, u)
	return u.ID
}

// Seed creates n users quickly and returns their ids in creation order.
func (f *Fake) Seed(n int) []string {
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		u := f.newUserLocked(now)
		f.byID[u.ID] = u
		f.sorted = append(f.sorted, u)
		ids = append(ids, u.ID)
	}
	return ids
}

// UpdateUser changes the user's name or metadata and bumps updated_at.
func (f *Fake) UpdateUser(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.byID[id]
	if !ok {
		return false
	}
	u := *old // users are replaced, never mutated: pages marshal outside the lock
	// From now on the fake's own shape, not a raw object given to PutUser.
	u.raw = nil
	switch f.rng.IntN(3) {
	case 0:
		fn := firstNames[f.rng.IntN(len(firstNames))]
		u.FirstName = &fn
		u.Name = fullName(u.FirstName, u.LastName)
	case 1:
		u.Metadata = map[string]string{"plan": plans[f.rng.IntN(len(plans))], "timezone": "Europe/Paris"}
	default:
		u.EmailVerified = !u.EmailVerified
	}
	prev, _ := time.Parse(time.RFC3339Nano, u.UpdatedAt)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if !now.After(prev) {
		now = prev.Add(time.Millisecond)
	}
	u.UpdatedAt = isoTime(now)
	f.replaceLocked(old, &u)
	return true
}

func (f *Fake) replaceLocked(old, u *userJSON) {
	f.byID[u.ID] = u
	if i := f.indexLocked(u.ID); i < len(f.sorted) && f.sorted[i] == old {
		f.sorted[i] = u
	}
}

// indexLocked returns the position of the first user with id >= id.
func (f *Fake) indexLocked(id string) int {
	return sort.Search(len(f.sorted), func(i int) bool { return f.sorted[i].ID >= id })
}

// PutUser adds, or replaces, a user whose GET /user_management/users/{id}
// answer (and list entry, and webhook data) is exactly raw, e.g. a payload
// WorkOS itself published. raw must be a JSON object whose "id" is a WorkOS
// user id. It returns the id.
func (f *Fake) PutUser(raw json.RawMessage) (string, error) {
	var u userJSON
	if err := json.Unmarshal(raw, &u); err != nil {
		return "", fmt.Errorf("workosfake: PutUser: %w", err)
	}
	if err := workos.ValidateUserID(u.ID); err != nil {
		return "", fmt.Errorf("workosfake: PutUser: %w", err)
	}
	u.raw = append(json.RawMessage(nil), raw...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.byID[u.ID]; ok {
		f.replaceLocked(old, &u)
		return u.ID, nil
	}
	delete(f.deleted, u.ID)
	f.byID[u.ID] = &u
	i := f.indexLocked(u.ID)
	f.sorted = append(f.sorted, nil)
	copy(f.sorted[i+1:], f.sorted[i:])
	f.sorted[i] = &u
	return u.ID, nil
}

// DeleteUser removes the user and their organization memberships.
func (f *Fake) DeleteUser(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.byID[id]
	if !ok {
		return false
	}
	delete(f.byID, id)
	f.deleted[id] = u
	f.deleteUserMembershipsLocked(id)
	if i := f.indexLocked(id); i < len(f.sorted) && f.sorted[i] == u {
		f.sorted = append(f.sorted[:i], f.sorted[i+1:]...)
	}
	return true
}

// Snapshot returns every live user's object as
// GET /user_management/users/{id} returns it.
func (f *Fake) Snapshot() map[string]json.RawMessage {
	f.mu.Lock()
	users := make([]*userJSON, 0, len(f.byID))
	for _, u := range f.byID {
		users = append(users, u)
	}
	f.mu.Unlock()
	out := make(map[string]json.RawMessage, len(users))
	for _, u := range users {
		out[u.ID] = u.body()
	}
	return out
}

// SetUserFields overwrites fields of a stored user (for tests of edge cases:
// null last_name, ...); false if the user does not exist or the result is not
// a valid user object.
func (f *Fake) SetUserFields(id string, fields map[string]any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.byID[id]
	if !ok {
		return false
	}
	var m map[string]any
	if json.Unmarshal(old.body(), &m) != nil {
		return false
	}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return false
	}
	var u userJSON
	if json.Unmarshal(b, &u) != nil || u.ID != id {
		return false
	}
	if old.raw != nil {
		u.raw = b
	}
	f.replaceLocked(old, &u)
	return true
}

// Webhook builds a signed delivery: user.created (never updated) or
// user.updated with the user's current object, or user.deleted with its last
// known object.
func (f *Fake) Webhook(kind provider.EventKind, id string) ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	u, live := f.byID[id]
	if !live {
		u = f.deleted[id]
	}
	if u == nil {
		u = f.newUserLocked(now)
		u.ID = id
	}
	typ := "user.updated"
	switch {
	case kind == provider.EventUserDeleted:
		typ = "user.deleted"
	case u.CreatedAt == u.UpdatedAt:
		typ = "user.created"
	}
	evID := "event_" + f.ulidLocked(now)
	f.mu.Unlock()
	return f.event(evID, typ, u.body(), now)
}

// IgnoredWebhook builds a signed role.created delivery (about neither users
// nor organizations).
func (f *Fake) IgnoredWebhook() ([]byte, http.Header) {
	now := time.Now()
	f.mu.Lock()
	evID := "event_" + f.ulidLocked(now)
	f.mu.Unlock()
	role := map[string]any{
		"object":             "role",
		"slug":               "auditor",
		"resource_type_slug": "organization",
		"permissions":        []string{"audit-logs:read"},
		"created_at":         isoTime(now),
		"updated_at":         isoTime(now),
	}
	return f.event(evID, "role.created", role, now)
}

func (f *Fake) event(id, typ string, data any, now time.Time) ([]byte, http.Header) {
	body := mustJSON(map[string]any{
		"object":     "event",
		"id":         id,
		"event":      typ,
		"data":       data,
		"created_at": isoTime(now),
		// The document's EventContextActorDto requires a string id; the
		// name may be null (an API key has none).
		"context": map[string]any{"actor": map[string]any{"id": actorID, "source": "api", "name": nil}},
	})
	return body, f.SignWebhook(body, now)
}

// SignWebhook signs body as WorkOS does, at time at: the WorkOS-Signature
// header "t=<unix ms>, v1=<hex HMAC-SHA256>".
func (f *Fake) SignWebhook(body []byte, at time.Time) http.Header {
	h := http.Header{}
	h.Set(workos.SignatureHeader, workos.ComputeSignature(f.whSecret, at, body))
	return h
}

// actorID is the actor of every event the fake sends: the environment's API
// key, as if every change had been made through the API.
const actorID = "key_01EHWNCE74X7JSDV0X3SZ3KJNY"

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("workosfake: marshal: %v", err))
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

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulidLocked returns a monotonic ULID: 48 bits of milliseconds and 80
// random bits, incremented instead of redrawn within one millisecond (and
// when the clock goes back), so ids sort in creation order.
func (f *Fake) ulidLocked(t time.Time) string {
	ms := t.UnixMilli()
	if ms <= f.lastMs {
		ms = f.lastMs
		for i := len(f.lastRnd) - 1; i >= 0; i-- {
			f.lastRnd[i]++
			if f.lastRnd[i] != 0 {
				break
			}
		}
	} else {
		for i := range f.lastRnd {
			f.lastRnd[i] = byte(f.rng.UintN(256))
		}
		f.lastRnd[0] &= 0x7f // leave room to increment
	}
	f.lastMs = ms
	var raw [16]byte
	for i := 0; i < 6; i++ {
		raw[i] = byte(ms >> (8 * (5 - i)))
	}
	copy(raw[6:], f.lastRnd[:])
	digits := new(big.Int).SetBytes(raw[:]).Text(32)
	var b strings.Builder
	for i := len(digits); i < 26; i++ {
		b.WriteByte('0')
	}
	for i := 0; i < len(digits); i++ {
		d := digits[i]
		var v byte
		if d <= '9' {
			v = d - '0'
		} else {
			v = d - 'a' + 10
		}
		b.WriteByte(crockford[v])
	}
	return b.String()
}

func requestID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
