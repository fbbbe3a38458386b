// Package stackfake is an in-process imitation of Stack Auth's server REST API
// and of the Svix-signed webhooks it sends, with fault injection. It backs
// the Stack Auth tests and the demo.
//
// Like the real API, it leaves anonymous and restricted users out of
// GET /api/v1/users unless asked (include_restricted=true adds restricted
// users, include_anonymous=true lists everyone, only_anonymous=true without
// include_anonymous=true is a 400), while GET /api/v1/users/{id} and the
// webhooks show every user; its user objects carry every field the real
// ones do (is_anonymous, is_restricted, restricted_reason,
// restricted_by_admin*, country_code, risk_scores, ...), and its errors
// are Stack Auth's known-error bodies with the X-Stack-Known-Error header.
//
// It also serves teams and their members as Stack Auth does (teams.go), and
// implements [fakekit.OrganizationsFake].
//
// It keeps users compactly (about 100 bytes each: the JSON of a user is
// rendered on demand, deterministically from the seed, the id and a profile
// version), so a million users are cheap, and it serves a list page in time
// proportional to the page.
package stackfake

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth"
)

// Options configures a [Fake]. Empty credentials are generated.
type Options struct {
	// ProjectID is the project id the fake accepts; a random UUID when empty.
	ProjectID string
	// SecretServerKey is the secret server key the fake accepts; a random
	// ssk_... key when empty.
	SecretServerKey string
	// WebhookSecret signs the webhooks; whsec_ + base64 of 32 random bytes
	// when empty.
	WebhookSecret string
	// Seed makes the generated users (ids, times, profiles) deterministic.
	Seed int64
	// RequireEmailVerification is the project setting of that name: users
	// whose primary email is not verified (or who have none) are then
	// restricted (restricted_reason email_not_verified), and the list leaves
	// them out unless asked (include_restricted or include_anonymous).
	RequireEmailVerification bool
	// UpperCaseIDs makes the API write user ids (and list cursors) in upper
	// case, as a test of clients that must treat ids case-insensitively;
	// requests may use either case, as with the real API.
	UpperCaseIDs bool
}

// Kinds of user, as far as Stack Auth's list filters are concerned.
const (
	kindRegular    uint8 = iota
	kindAnonymous        // is_anonymous: signed in without an account
	kindRestricted       // restricted_by_admin
)

// record is one user, compactly: its JSON is rendered from these fields.
type record struct {
	id         uid
	signedUp   int64 // ms
	lastActive int64 // ms
	version    uint32
	deleted    bool
	kind       uint8
}

func (a record) less(b record) int {
	if a.signedUp != b.signedUp {
		if a.signedUp < b.signedUp {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.id[:], b.id[:])
}

// Fake is a fake Stack Auth API server. It implements [fakekit.Fake] and
// is safe for concurrent use.
type Fake struct {
	opts   Options
	srv    *httptest.Server
	wh     *svix.Webhook
	teams  []team
	closed chan struct{}
	once   sync.Once

	mu    sync.RWMutex
	rng   *rand.Rand
	users []record      // sorted by (signedUp, id); deleted ones are tombstones
	index map[uid]int32 // live id → position in users
	gone  map[uid]record
	dead  int   // tombstones in users
	clock int64 // logical time (ms): the latest sign-up or update

	// Teams (teams.go).
	orgs     map[uid]*orgRecord
	goneOrgs map[uid]orgRecord        // deleted teams' last state
	userOrgs map[uid]map[uid]struct{} // user → the teams they belong to
	// goneUserOrgs are the teams a deleted user belonged to (user.deleted
	// names them).
	goneUserOrgs map[uid][]uid
	joinSeq      int64

	faultMu    sync.Mutex
	latency    time.Duration
	failN      int
	failStatus int
	retryAfter time.Duration

	requests atomic.Int64
	limiter  fakekit.RateLimiter
}

var _ fakekit.HiddenUsersFake = (*Fake)(nil)

// New starts a fake Stack Auth server with no users. It panics if
// opts.WebhookSecret is set but is not a valid Svix secret (a programming
// error in the test).
func New(opts Options) *Fake {
	if opts.ProjectID == "" {
		var u uid
		randBytes(u[:])
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		opts.ProjectID = u.String()
	}
	if opts.SecretServerKey == "" {
		b := make([]byte, 24)
		randBytes(b)
		opts.SecretServerKey = fmt.Sprintf("ssk_%x", b)
	}
	if opts.WebhookSecret == "" {
		b := make([]byte, 32)
		randBytes(b)
		opts.WebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString(b)
	}
	wh, err := svix.NewWebhook(opts.WebhookSecret)
	if err != nil {
		panic("stackfake: Options.WebhookSecret is not a valid Svix secret (whsec_ + base64)")
	}
	f := &Fake{
		opts:   opts,
		wh:     wh,
		closed: make(chan struct{}),
		rng:    rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed5eed)),
		index:  make(map[uid]int32),
		gone:   make(map[uid]record),

		orgs:         make(map[uid]*orgRecord),
		goneOrgs:     make(map[uid]orgRecord),
		userOrgs:     make(map[uid]map[uid]struct{}),
		goneUserOrgs: make(map[uid][]uid),
	}
	// Sign-ups start on 2023-01-01 (plus up to a day) and move forward.
	f.clock = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() + f.rng.Int64N(86_400_000)
	for i, n := range teamNames {
		f.teams = append(f.teams, team{id: f.newUIDLocked(), name: n, createdAt: f.clock - int64(i+1)*86_400_000})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users", f.handleList)
	mux.HandleFunc("GET /api/v1/users/{id}", f.handleGet)
	mux.HandleFunc("GET /api/v1/teams", f.handleListTeams)
	mux.HandleFunc("GET /api/v1/teams/{id}", f.handleGetTeam)
	mux.HandleFunc("GET /api/v1/team-member-profiles", f.handleListProfiles)
	mux.HandleFunc("GET /api/v1/team-member-profiles/{team_id}/{user_id}", f.handleGetProfile)
	f.srv = httptest.NewServer(f.middleware(mux))
	return f
}

func randBytes(b []byte) {
	if _, err := crand.Read(b); err != nil {
		panic("stackfake: crypto/rand: " + err.Error())
	}
}

// Options returns the fake's effective options (with generated credentials).
func (f *Fake) Options() Options { return f.opts }

// URL is the API base URL (STACK_API_URL); the API lives under /api/v1.
func (f *Fake) URL() string { return f.srv.URL }

// Env returns STACK_PROJECT_ID, STACK_SECRET_SERVER_KEY, STACK_WEBHOOK_SECRET
// and STACK_API_URL for this fake.
func (f *Fake) Env() map[string]string {
	return map[string]string{
		"STACK_PROJECT_ID":        f.opts.ProjectID,
		"STACK_SECRET_SERVER_KEY": f.opts.SecretServerKey,
		"STACK_WEBHOOK_SECRET":    f.opts.WebhookSecret,
		"STACK_API_URL":           f.srv.URL,
	}
}

// Provider returns a [stackauth.Client] with the fake's credentials and
// HTTP client.
func (f *Fake) Provider() provider.Provider { return f.client(f.opts.SecretServerKey) }

// ProviderWithBadCredentials returns a [stackauth.Client] whose secret server
// key the fake rejects (401 INVALID_SECRET_SERVER_KEY).
func (f *Fake) ProviderWithBadCredentials() provider.Provider {
	return f.client("ssk_wrong_" + strconv.FormatInt(f.opts.Seed, 36))
}

func (f *Fake) client(key string) *stackauth.Client {
	c, err := stackauth.New(stackauth.Config{
		ProjectID:       f.opts.ProjectID,
		SecretServerKey: key,
		WebhookSecret:   f.opts.WebhookSecret,
		APIURL:          f.srv.URL,
		HTTPClient:      f.srv.Client(),
	})
	if err != nil {
		panic("stackfake: configuring a client for the fake: " + err.Error())
	}
	return c
}

// Close stops the server; requests waiting on injected latency return.
func (f *Fake) Close() {
	f.once.Do(func() { close(f.closed) })
	f.srv.Close()
}

// ---- users ----

// newUIDLocked returns a fresh random (version 4) id. f.mu must be held.
func (f *Fake) newUIDLocked() uid {
	for {
		var u uid
		a, b := f.rng.Uint64(), f.rng.Uint64()
		for i := range 8 {
			u[i] = byte(a >> (8 * i))
			u[8+i] = byte(b >> (8 * i))
		}
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		if _, ok := f.index[u]; ok {
			continue
		}
		if _, ok := f.gone[u]; ok {
			continue
		}
		if _, ok := f.orgs[u]; ok {
			continue
		}
		if _, ok := f.goneOrgs[u]; ok {
			continue
		}
		return u
	}
}

// CreateUser adds a user who signs up now (after every existing user) and
// returns its id.
func (f *Fake) CreateUser() string { return f.create(kindRegular) }

// CreateAnonymousUser adds an anonymous user (is_anonymous: no email, no
// sign-in method; restricted_reason anonymous), who signs up now, and
// returns its id. The list leaves such users out unless asked with
// include_anonymous=true; GET /users/{id} and webhooks show them.
func (f *Fake) CreateAnonymousUser() string { return f.create(kindAnonymous) }

// CreateRestrictedUser adds a user restricted by an administrator
// (restricted_by_admin; restricted_reason restricted_by_administrator
// unless an unverified email comes first), who signs up now, and returns
// its id. The list leaves such users out unless asked with
// include_restricted=true or include_anonymous=true.
func (f *Fake) CreateRestrictedUser() string { return f.create(kindRestricted) }

// CreateHiddenUsers creates the users that Stack Auth's list leaves out
// unless asked: two anonymous users and two restricted by an administrator
// (implementing [fakekit.HiddenUsersFake]).
func (f *Fake) CreateHiddenUsers() []string {
	return []string{f.CreateAnonymousUser(), f.CreateRestrictedUser(), f.CreateAnonymousUser(), f.CreateRestrictedUser()}
}

// UpgradeAnonymousUser turns an anonymous user into a regular one with the
// same id and sign-up time, as signing up from an anonymous session does;
// false if the user does not exist or is not anonymous.
func (f *Fake) UpgradeAnonymousUser(id string) bool {
	key, ok := parseUID(id)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pos, ok := f.index[key]
	if !ok || f.users[pos].kind != kindAnonymous {
		return false
	}
	f.clock += 1 + f.rng.Int64N(60_000)
	r := &f.users[pos]
	r.kind = kindRegular
	r.version++
	r.lastActive = f.clock
	return true
}

func (f *Fake) create(kind uint8) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock += 1 + f.rng.Int64N(30_000)
	r := record{id: f.newUIDLocked(), signedUp: f.clock, kind: kind}
	r.lastActive = r.signedUp + f.rng.Int64N(3_600_000)
	f.index[r.id] = int32(len(f.users))
	f.users = append(f.users, r)
	return r.id.String()
}

// Seed creates n users quickly, signing up after every existing user (some
// with equal sign-up times, ordered by id), and returns their ids in list
// order.
func (f *Fake) Seed(n int) []string {
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	start := len(f.users)
	f.users = slices.Grow(f.users, n)
	f.clock++
	for range n {
		if f.rng.IntN(100) >= 2 { // 2%: same millisecond as the previous user
			f.clock += 1 + f.rng.Int64N(20_000)
		}
		r := record{id: f.newUIDLocked(), signedUp: f.clock}
		r.lastActive = r.signedUp + f.rng.Int64N(30*86_400_000)
		f.index[r.id] = 0 // reserve, so newUIDLocked never repeats an id
		f.users = append(f.users, r)
	}
	batch := f.users[start:]
	slices.SortFunc(batch, record.less)
	ids := make([]string, n)
	for i := range batch {
		f.index[batch[i].id] = int32(start + i)
		ids[i] = batch[i].id.String()
	}
	f.mu.Unlock()
	return ids
}

// UpdateUser changes the user's profile (display name, metadata, selected
// team, ...) and its last-active time; false if the user does not exist.
func (f *Fake) UpdateUser(id string) bool {
	key, ok := parseUID(id)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pos, ok := f.index[key]
	if !ok {
		return false
	}
	f.clock += 1 + f.rng.Int64N(60_000)
	r := &f.users[pos]
	r.version++
	r.lastActive = f.clock
	return true
}

// DeleteUser removes the user and the user's team memberships; false if
// it did not exist.
func (f *Fake) DeleteUser(id string) bool {
	key, ok := parseUID(id)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pos, ok := f.index[key]
	if !ok {
		return false
	}
	f.users[pos].deleted = true
	f.gone[key] = f.users[pos]
	if teams := f.userOrgs[key]; len(teams) > 0 {
		var was []uid
		for t := range teams {
			if o := f.orgs[t]; o != nil {
				f.leaveLocked(o, key)
			}
			was = append(was, t)
		}
		f.sortTeamsLocked(was)
		f.goneUserOrgs[key] = was
	}
	delete(f.index, key)
	f.dead++
	if f.dead > 64 && f.dead*4 > len(f.users) {
		f.compactLocked()
	}
	return true
}

// compactLocked drops tombstones and renumbers the index. f.mu must be held.
func (f *Fake) compactLocked() {
	live := f.users[:0]
	for _, r := range f.users {
		if r.deleted {
			continue
		}
		f.index[r.id] = int32(len(live))
		live = append(live, r)
	}
	clear(f.users[len(live):])
	f.users = live
	f.dead = 0
}

// Len returns the number of live users.
func (f *Fake) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.index)
}

// Snapshot returns every live user's object exactly as GET /api/v1/users/{id}
// returns it, by id.
func (f *Fake) Snapshot() map[string]json.RawMessage {
	f.mu.RLock()
	recs := make([]record, 0, len(f.index))
	for _, r := range f.users {
		if !r.deleted {
			recs = append(recs, r)
		}
	}
	f.mu.RUnlock()
	out := make(map[string]json.RawMessage, len(recs))
	for _, r := range recs {
		id := r.id.String()
		out[id] = f.render(nil, r)
	}
	return out
}

func (f *Fake) render(dst []byte, r record) []byte {
	return f.appendUser(dst, f.idText(r.id), r)
}

// idText is the id as the API writes it.
func (f *Fake) idText(u uid) string {
	s := u.String()
	if f.opts.UpperCaseIDs {
		s = strings.ToUpper(s)
	}
	return s
}

// ---- webhooks ----

// Webhook builds a signed delivery, as Stack Auth would send it now.
// EventUserChanged: {"type":"user.created" (never updated) or "user.updated",
// "data": <the full user>}; for a deleted user its last state is sent, and for
// an id the fake never knew a user is generated around the id as given (so
// tests can send malformed ids). EventUserDeleted:
// {"type":"user.deleted","data":{"id":id,"teams":[{"id":...}]}}, naming
// the teams the user belongs (or, deleted, belonged) to. EventIgnored: as
// [Fake.IgnoredWebhook].
func (f *Fake) Webhook(kind provider.EventKind, id string) ([]byte, http.Header) {
	var body []byte
	switch kind {
	case provider.EventUserChanged:
		key, isUUID := parseUID(id)
		f.mu.RLock()
		r, known := record{}, false
		if isUUID {
			if pos, ok := f.index[key]; ok {
				r, known = f.users[pos], true
			} else if g, ok := f.gone[key]; ok {
				r, known = g, true
			}
		}
		clock := f.clock
		f.mu.RUnlock()
		if !known {
			r = record{id: key, signedUp: clock, lastActive: clock}
		}
		typ := "user.updated"
		if r.version == 0 {
			typ = "user.created"
		}
		body = append(body, `{"type":"`+typ+`","data":`...)
		body = f.appendUser(body, id, r)
		body = append(body, '}')
	case provider.EventUserDeleted:
		body = append(body, `{"type":"user.deleted","data":{"id":`...)
		body = appendString(body, id)
		body = append(body, `,"teams":[`...)
		for i, t := range f.userTeams(id) {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"id":"`...)
			body = append(body, f.idText(t)...)
			body = append(body, `"}`...)
		}
		body = append(body, `]}}`...)
	default:
		return f.IgnoredWebhook()
	}
	return body, f.SignWebhook(body, time.Now())
}

// userTeams returns the teams the user belongs to or, deleted, belonged
// to, oldest first (as user.deleted lists them).
func (f *Fake) userTeams(id string) []uid {
	key, ok := parseUID(id)
	if !ok {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if _, live := f.index[key]; !live {
		return f.goneUserOrgs[key]
	}
	out := make([]uid, 0, len(f.userOrgs[key]))
	for t := range f.userOrgs[key] {
		out = append(out, t)
	}
	f.sortTeamsLocked(out)
	return out
}

// sortTeamsLocked sorts live team ids oldest first. f.mu must be held.
func (f *Fake) sortTeamsLocked(ids []uid) {
	created := func(id uid) int64 {
		if o := f.orgs[id]; o != nil {
			return o.createdAt
		}
		return f.goneOrgs[id].createdAt
	}
	slices.SortFunc(ids, func(a, b uid) int {
		if ca, cb := created(a), created(b); ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
		return bytes.Compare(a[:], b[:])
	})
}

// IgnoredWebhook builds a signed team_permission.created delivery (a
// member's permission: usersync stores no roles for Stack Auth), as Stack
// Auth sends one when a user joins a team.
func (f *Fake) IgnoredWebhook() ([]byte, http.Header) {
	body := []byte(`{"type":"team_permission.created","data":{"id":"team_member","team_id":"`)
	body = f.teams[0].id.appendTo(body)
	body = append(body, `","user_id":"`...)
	f.mu.RLock()
	user := f.teams[1].id // a stand-in when there are no users
	for _, r := range f.users {
		if !r.deleted {
			user = r.id
			break
		}
	}
	f.mu.RUnlock()
	body = user.appendTo(body)
	body = append(body, `"}}`...)
	return body, f.SignWebhook(body, time.Now())
}

// SignWebhook signs body as Svix would at time at: svix-id (a fresh msg_
// id), svix-timestamp and svix-signature.
func (f *Fake) SignWebhook(body []byte, at time.Time) http.Header {
	var b [20]byte
	randBytes(b[:])
	msgID := "msg_" + base64.RawURLEncoding.EncodeToString(b[:])
	sig, err := f.wh.Sign(msgID, at, body)
	if err != nil { // svix never fails to sign
		panic("stackfake: svix sign: " + err.Error())
	}
	h := http.Header{}
	h.Set("svix-id", msgID)
	h.Set("svix-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("svix-signature", sig)
	return h
}

// ---- faults ----

// SetLatency delays every API response by d.
func (f *Fake) SetLatency(d time.Duration) {
	f.faultMu.Lock()
	f.latency = d
	f.faultMu.Unlock()
}

// FailNext makes the next n API requests answer status (n < 0: every request
// until ClearFaults). With 429 the answer carries Retry-After: retryAfter in
// whole seconds (rounded up, at least 1). Status 0 resets the connection
// without answering. Note that Go's HTTP transport transparently retries an
// idempotent request once when a reused keep-alive connection dies before
// answering, so use n >= 2 for a single client call to see a reset.
func (f *Fake) FailNext(n int, status int, retryAfter time.Duration) {
	f.faultMu.Lock()
	f.failN, f.failStatus, f.retryAfter = n, status, retryAfter
	f.faultMu.Unlock()
}

// SetRateLimit makes the fake enforce a rate limit of perSecond requests
// with bursts of up to burst, answering 429 with Retry-After and Stack
// Auth's {"message": ...} body beyond it; perSecond ≤ 0 removes it.
// ClearFaults leaves it in place.
func (f *Fake) SetRateLimit(perSecond float64, burst int) { f.limiter.Set(perSecond, burst) }

// RateLimited returns how many API requests the rate limit answered 429.
func (f *Fake) RateLimited() int64 { return f.limiter.Limited() }

// ClearFaults removes latency and failure injection (not the rate limit).
func (f *Fake) ClearFaults() {
	f.faultMu.Lock()
	f.latency, f.failN, f.failStatus, f.retryAfter = 0, 0, 0, 0
	f.faultMu.Unlock()
}

// Requests returns how many API requests reached the fake, failed ones
// included.
func (f *Fake) Requests() int64 { return f.requests.Load() }

func (f *Fake) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		allowed, limitedFor := f.limiter.Allow(time.Now())
		f.faultMu.Lock()
		latency := f.latency
		fail, status, retryAfter := f.failN != 0, f.failStatus, f.retryAfter
		if f.failN > 0 {
			f.failN--
		}
		f.faultMu.Unlock()
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				panic(http.ErrAbortHandler)
			case <-f.closed:
				t.Stop()
				panic(http.ErrAbortHandler)
			}
		}
		if !allowed {
			writeFault(w, http.StatusTooManyRequests, limitedFor)
			return
		}
		if fail {
			writeFault(w, status, retryAfter)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeFault(w http.ResponseWriter, status int, retryAfter time.Duration) {
	if status == 0 {
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler) // net/http closes the connection
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // RST rather than FIN: "connection reset by peer"
		}
		_ = conn.Close()
		return
	}
	if status == http.StatusTooManyRequests {
		// Stack Auth's API proxy answers a rate-limited request with a
		// plain {"message": ...} body (docs/providers.md).
		w.Header().Set("Retry-After", fakekit.RetryAfterHeader(retryAfter))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"message":"Too many requests. Please try again later."}`))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "stackfake: injected HTTP %d (%s)\n", status, http.StatusText(status))
}

// ---- HTTP API ----

const (
	msgAccessTypeRequired = "You must specify an access level for this Stack project. Make sure project API keys are provided (eg. x-stack-publishable-client-key) and you set the x-stack-access-type header to 'client', 'server', or 'admin'.\n\nFor more information, see the docs on REST API authentication: https://docs.stack-auth.com/rest-api/overview#authentication"
)

// writeKnownError writes Stack's KnownError shape.
func writeKnownError(w http.ResponseWriter, status int, code, msg string, details any) {
	body := struct {
		Code    string `json:"code"`
		Details any    `json:"details,omitempty"`
		Error   string `json:"error"`
	}{code, details, msg}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Stack-Known-Error", code)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeSchemaError(w http.ResponseWriter, r *http.Request, problem string) {
	msg := "Request validation failed on " + r.Method + " " + r.URL.Path + ":\n  - " + problem
	writeKnownError(w, http.StatusBadRequest, "SCHEMA_ERROR", msg, map[string]string{"message": msg})
}

// authorize applies Stack's server authentication rules; false means an error
// answer was written.
func (f *Fake) authorize(w http.ResponseWriter, r *http.Request) bool {
	accessType := r.Header.Get("X-Stack-Access-Type")
	projectID := r.Header.Get("X-Stack-Project-Id")
	key := r.Header.Get("X-Stack-Secret-Server-Key")
	anyKey := key != "" || r.Header.Get("X-Stack-Publishable-Client-Key") != "" || r.Header.Get("X-Stack-Super-Secret-Admin-Key") != ""
	switch {
	case accessType == "" && anyKey:
		writeKnownError(w, http.StatusBadRequest, "PROJECT_KEY_WITHOUT_ACCESS_TYPE",
			"Either an API key or an admin access token was provided, but the x-stack-access-type header is missing. Set it to 'client', 'server', or 'admin' as appropriate.", nil)
		return false
	case accessType == "":
		writeKnownError(w, http.StatusBadRequest, "ACCESS_TYPE_REQUIRED", msgAccessTypeRequired, nil)
		return false
	case accessType != "client" && accessType != "server" && accessType != "admin":
		writeKnownError(w, http.StatusBadRequest, "INVALID_ACCESS_TYPE",
			fmt.Sprintf("The x-stack-access-type header must be 'client', 'server', or 'admin', but was '%s'.", accessType),
			map[string]string{"access_type": accessType})
		return false
	case projectID == "":
		writeKnownError(w, http.StatusBadRequest, "ACCESS_TYPE_WITHOUT_PROJECT_ID",
			fmt.Sprintf("The x-stack-access-type header was '%s', but the x-stack-project-id header was not provided.\n\nFor more information, see the docs on REST API authentication: https://docs.stack-auth.com/rest-api/overview#authentication", accessType),
			map[string]string{"request_type": accessType})
		return false
	case accessType == "client":
		writeKnownError(w, http.StatusUnauthorized, "CLIENT_AUTHENTICATION_REQUIRED", "The publishable client key must be provided.", nil)
		return false
	case accessType == "admin":
		writeKnownError(w, http.StatusUnauthorized, "ADMIN_AUTHENTICATION_REQUIRED", "The super secret admin key or admin access token must be provided.", nil)
		return false
	case key == "":
		writeKnownError(w, http.StatusUnauthorized, "SERVER_AUTHENTICATION_REQUIRED", "The secret server key must be provided.", nil)
		return false
	case projectID != f.opts.ProjectID || key != f.opts.SecretServerKey:
		writeKnownError(w, http.StatusUnauthorized, "INVALID_SECRET_SERVER_KEY",
			fmt.Sprintf("The secret server key is not valid for the project %q. Does the project and/or the key exist?", projectID),
			map[string]string{"project_id": projectID})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (f *Fake) handleGet(w http.ResponseWriter, r *http.Request) {
	if !f.authorize(w, r) {
		return
	}
	key, ok := parseUID(r.PathValue("id"))
	if !ok {
		writeSchemaError(w, r, "params.user_id must be a valid UUID")
		return
	}
	f.mu.RLock()
	pos, ok := f.index[key]
	var rec record
	if ok {
		rec = f.users[pos]
	}
	f.mu.RUnlock()
	if !ok {
		writeKnownError(w, http.StatusNotFound, "USER_NOT_FOUND", "User not found.", nil)
		return
	}
	writeJSON(w, f.render(make([]byte, 0, 1024), rec))
}

func (f *Fake) handleList(w http.ResponseWriter, r *http.Request) {
	if !f.authorize(w, r) {
		return
	}
	q := r.URL.Query()
	limit := -1 // all
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 {
			writeSchemaError(w, r, "query.limit must be a positive integer")
			return
		}
		limit = n
	}
	if v := q.Get("order_by"); q.Has("order_by") && v != "signed_up_at" {
		writeSchemaError(w, r, "query.order_by must be one of the following values: signed_up_at")
		return
	}
	desc := false
	if q.Has("desc") {
		switch q.Get("desc") {
		case "true":
			desc = true
		case "false":
		default:
			writeSchemaError(w, r, "query.desc must be a `boolean` type")
			return
		}
	}
	var cursor uid
	hasCursor := q.Get("cursor") != ""
	if hasCursor {
		var ok bool
		if cursor, ok = parseUID(q.Get("cursor")); !ok {
			writeSchemaError(w, r, "query.cursor must be a valid UUID")
			return
		}
	}
	var team *uid
	if q.Has("team_id") {
		key, ok := parseUID(q.Get("team_id"))
		if !ok {
			writeSchemaError(w, r, "query.team_id must be a valid UUID")
			return
		}
		team = &key
	}
	flags := map[string]bool{}
	for _, name := range []string{"include_anonymous", "only_anonymous", "include_restricted"} {
		if !q.Has(name) {
			continue
		}
		switch q.Get(name) {
		case "true":
			flags[name] = true
		case "false":
		default:
			writeSchemaError(w, r, "query."+name+" must be one of the following values: true, false")
			return
		}
	}
	keep, ok := f.listFilter(flags["include_anonymous"], flags["only_anonymous"], flags["include_restricted"])
	if !ok {
		// Stack answers this one with a plain-text StatusError, not a KnownError.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "only_anonymous=true requires include_anonymous=true")
		return
	}

	// Collect up to limit+1 live records from the cursor on (inclusive), as
	// Prisma's take: limit+1 with a cursor does.
	want := limit + 1
	if limit < 0 {
		want = -1
	}
	var page []record
	f.mu.RLock()
	users := f.users // the list to page through
	if team != nil {
		// A team's members: the same list, kept to them (none for a team
		// that does not exist).
		users = nil
		if o := f.orgs[*team]; o != nil {
			users = f.membersLocked(o)
		}
	}
	pos, step := 0, 1
	if desc {
		pos, step = len(users)-1, -1
	}
	found := true
	if hasCursor {
		// Prisma's cursor: the user must exist (else nothing is listed);
		// the page starts at its place in the order, whether or not it is
		// itself listed.
		var p int32
		p, found = f.index[cursor]
		pos = int(p)
		if found && team != nil {
			at := f.users[p]
			pos = sort.Search(len(users), func(i int) bool { return users[i].less(at) >= 0 })
			if desc {
				pos = sort.Search(len(users), func(i int) bool { return users[i].less(at) > 0 }) - 1
			}
		}
	}
	if found {
		if want > 0 {
			page = make([]record, 0, want)
		} else {
			page = make([]record, 0, min(len(f.index), len(users)))
		}
		for ; pos >= 0 && pos < len(users) && (want < 0 || len(page) < want); pos += step {
			if rec := users[pos]; !rec.deleted && keep(rec) {
				page = append(page, rec)
			}
		}
	}
	f.mu.RUnlock()

	var next *record
	if limit >= 0 && len(page) > limit {
		next = &page[limit]
		page = page[:limit]
	}
	body := make([]byte, 0, 64+len(page)*900)
	body = append(body, `{"items":[`...)
	for i, rec := range page {
		if i > 0 {
			body = append(body, ',')
		}
		body = f.render(body, rec)
	}
	body = append(body, `],"is_paginated":true,"pagination":{"next_cursor":`...)
	if next != nil {
		body = append(body, '"')
		body = append(body, f.idText(next.id)...)
		body = append(body, '"')
	} else {
		body = append(body, "null"...)
	}
	body = append(body, "}}"...)
	writeJSON(w, body)
}

// listFilter returns which users GET /api/v1/users lists for the given
// flags, as Stack Auth's list handler filters them: no flag lists only users
// that are neither anonymous nor restricted; include_restricted adds the
// restricted ones (never the anonymous); include_anonymous lists everyone;
// only_anonymous (which requires include_anonymous, else ok is false: a 400)
// lists only anonymous users. Restricted means restricted by an
// administrator or, when the project requires email verification, without
// a verified primary email.
func (f *Fake) listFilter(includeAnonymous, onlyAnonymous, includeRestricted bool) (keep func(record) bool, ok bool) {
	if onlyAnonymous && !includeAnonymous {
		return nil, false
	}
	includeRestricted = includeRestricted || includeAnonymous
	return func(r record) bool {
		switch {
		case onlyAnonymous:
			return r.kind == kindAnonymous
		case !includeAnonymous && r.kind == kindAnonymous:
			return false
		case includeRestricted:
			return true
		case r.kind == kindRestricted:
			return false
		case f.opts.RequireEmailVerification:
			return f.traits(r).emailVerified
		}
		return true
	}, true
}
