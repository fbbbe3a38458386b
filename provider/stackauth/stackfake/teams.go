package stackfake

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/fakekit"
)

// Teams (usersync's organizations), as Stack Auth serves them
// (docs/providers.md, "Organizations"):
//
//   - GET /api/v1/teams lists every team at once, oldest first, with
//     {"items":[...],"is_paginated":false} (no paging); user_id=<uuid>
//     keeps the teams that user belongs to, user_id=me is a 400
//     CANNOT_GET_OWN_USER_WITHOUT_USER with server access.
//   - GET /api/v1/teams/{id} answers the team, 400 SCHEMA_ERROR for an id
//     that is not a UUID, 404 TEAM_NOT_FOUND (known error) when missing.
//   - GET /api/v1/users?team_id=<uuid> is the member list: the user list,
//     with its cursor paging and its anonymous/restricted filters, kept to
//     the team's members; an unknown team lists nobody.
//   - GET /api/v1/team-member-profiles[?team_id=&user_id=] lists
//     memberships oldest first, unpaginated, with no anonymous/restricted
//     filter, each {team_id, user_id, display_name, profile_image_url,
//     user}; GET /api/v1/team-member-profiles/{team_id}/{user_id} answers
//     one, 404 USER_NOT_FOUND or TEAM_MEMBERSHIP_NOT_FOUND.
//   - A team's creator joins silently (team.created only); deleting a team
//     drops its memberships without membership events; deleting a user
//     drops the user's memberships.

// orgRecord is one team.
type orgRecord struct {
	id        uid
	createdAt int64 // ms
	version   uint32
	// members maps each member to when it joined (a sequence number).
	members map[uid]int64
}

var _ fakekit.OrganizationsFake = (*Fake)(nil)

// Organizations returns the client for this fake (the same as Provider),
// which implements provider.Organizations.
func (f *Fake) Organizations() provider.Organizations { return f.client(f.opts.SecretServerKey) }

// newOrgLocked adds a team created now. f.mu must be held.
func (f *Fake) newOrgLocked() *orgRecord {
	f.clock += 1 + f.rng.Int64N(30_000)
	o := &orgRecord{id: f.newUIDLocked(), createdAt: f.clock, members: map[uid]int64{}}
	f.orgs[o.id] = o
	return o
}

// CreateOrganization adds a team created now and returns its id. When
// creatorID is not "", that user becomes its first member silently, as
// Stack Auth does it (only team.created is sent); if that user does not
// exist, nothing is created and "" is returned (Stack Auth refuses the
// request with USER_NOT_FOUND).
func (f *Fake) CreateOrganization(creatorID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var creator uid
	if creatorID != "" {
		key, ok := parseUID(creatorID)
		if !ok {
			return ""
		}
		if _, ok := f.index[key]; !ok {
			return ""
		}
		creator = key
	}
	o := f.newOrgLocked()
	if creatorID != "" {
		f.joinLocked(o, creator)
	}
	return o.id.String()
}

// joinLocked makes user a member of o. f.mu must be held.
func (f *Fake) joinLocked(o *orgRecord, user uid) {
	f.joinSeq++
	o.members[user] = f.joinSeq
	teams := f.userOrgs[user]
	if teams == nil {
		teams = map[uid]struct{}{}
		f.userOrgs[user] = teams
	}
	teams[o.id] = struct{}{}
}

// leaveLocked ends user's membership of o; false if there was none. f.mu
// must be held.
func (f *Fake) leaveLocked(o *orgRecord, user uid) bool {
	if _, ok := o.members[user]; !ok {
		return false
	}
	delete(o.members, user)
	if teams := f.userOrgs[user]; teams != nil {
		delete(teams, o.id)
		if len(teams) == 0 {
			delete(f.userOrgs, user)
		}
	}
	return true
}

// orgLocked returns the live team with the given id. f.mu must be held.
func (f *Fake) orgLocked(id string) *orgRecord {
	key, ok := parseUID(id)
	if !ok {
		return nil
	}
	return f.orgs[key]
}

// UpdateOrganization renames the team and changes its metadata; false if
// it does not exist. Stack Auth teams have no update time.
func (f *Fake) UpdateOrganization(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.orgLocked(id)
	if o == nil {
		return false
	}
	f.clock += 1 + f.rng.Int64N(60_000)
	o.version++
	return true
}

// DeleteOrganization removes the team and all its memberships, as Stack
// Auth does it: with team.deleted only, no membership event. False if the
// team did not exist.
func (f *Fake) DeleteOrganization(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.orgLocked(id)
	if o == nil {
		return false
	}
	for user := range o.members {
		f.leaveLocked(o, user)
	}
	delete(f.orgs, o.id)
	f.goneOrgs[o.id] = orgRecord{id: o.id, createdAt: o.createdAt, version: o.version}
	return true
}

// AddMember makes the user a member of the team (Stack Auth has no roles:
// role is ignored); false if either does not exist or the membership
// exists. Anonymous and restricted users can be members.
func (f *Fake) AddMember(orgID, userID, role string) bool {
	user, ok := parseUID(userID)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.orgLocked(orgID)
	if o == nil {
		return false
	}
	if _, ok := f.index[user]; !ok {
		return false
	}
	if _, ok := o.members[user]; ok {
		return false
	}
	f.joinLocked(o, user)
	return true
}

// UpdateMember changes nothing (Stack Auth memberships have no role, and
// permissions are not memberships) and reports whether the membership
// exists.
func (f *Fake) UpdateMember(orgID, userID, role string) bool {
	user, ok := parseUID(userID)
	if !ok {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	o := f.orgLocked(orgID)
	if o == nil {
		return false
	}
	_, ok = o.members[user]
	return ok
}

// RemoveMember ends the membership; false if there was none.
func (f *Fake) RemoveMember(orgID, userID string) bool {
	user, ok := parseUID(userID)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.orgLocked(orgID)
	if o == nil {
		return false
	}
	return f.leaveLocked(o, user)
}

// SeedOrganizations creates n teams, each with min(perOrg, live users)
// distinct members drawn at random from the live users, and returns their
// ids in list order.
func (f *Fake) SeedOrganizations(n, perOrg int) []string {
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, n)
	for range n {
		o := f.newOrgLocked()
		ids = append(ids, o.id.String())
		want := min(perOrg, len(f.index))
		if want <= 0 {
			continue
		}
		if want*2 >= len(f.index) {
			// Most users: walk them all, keeping each with the right odds.
			left := want
			live := len(f.index)
			for _, r := range f.users {
				if r.deleted {
					continue
				}
				if f.rng.IntN(live) < left {
					f.joinLocked(o, r.id)
					left--
				}
				live--
			}
			continue
		}
		for len(o.members) < want {
			r := f.users[f.rng.IntN(len(f.users))]
			if r.deleted {
				continue
			}
			if _, ok := o.members[r.id]; !ok {
				f.joinLocked(o, r.id)
			}
		}
	}
	return ids
}

// OrganizationsSnapshot returns every live team's object exactly as
// GET /api/v1/teams/{id} returns it, by id.
func (f *Fake) OrganizationsSnapshot() map[string]json.RawMessage {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]json.RawMessage, len(f.orgs))
	for _, o := range f.orgs {
		out[o.id.String()] = f.appendTeam(nil, f.idText(o.id), *o)
	}
	return out
}

// MembershipsSnapshot returns every membership by "<team_id>:<user_id>",
// each as the object a client makes of the member list (Stack Auth has no
// membership object): {"team_id":...,"user_id":...}, ids in lower case.
func (f *Fake) MembershipsSnapshot() map[string]json.RawMessage {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[string]json.RawMessage{}
	for _, o := range f.orgs {
		team := o.id.String()
		for u := range o.members {
			user := u.String()
			out[team+":"+user] = json.RawMessage(`{"team_id":"` + team + `","user_id":"` + user + `"}`)
		}
	}
	return out
}

// Members returns the ids of the team's members (every kind of user), in
// the member list's order; nil if the team does not exist.
func (f *Fake) Members(orgID string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	o := f.orgLocked(orgID)
	if o == nil {
		return nil
	}
	recs := f.membersLocked(o)
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.id.String()
	}
	return out
}

// membersLocked returns the team's members in the user list's order. f.mu
// must be held.
func (f *Fake) membersLocked(o *orgRecord) []record {
	recs := make([]record, 0, len(o.members))
	for u := range o.members {
		if pos, ok := f.index[u]; ok {
			recs = append(recs, f.users[pos])
		}
	}
	slices.SortFunc(recs, record.less)
	return recs
}

// ---- webhooks ----

// OrganizationWebhook builds a signed delivery as Stack Auth would send it
// now. EventOrganizationChanged: {"type":"team.created" (never updated) or
// "team.updated","data":<the team object>}; for a deleted team its last
// state is sent, and for an id the fake never knew a team is generated
// around the id as given. EventOrganizationDeleted:
// {"type":"team.deleted","data":{"id":id}}. Any other kind: as
// [Fake.IgnoredWebhook].
func (f *Fake) OrganizationWebhook(kind provider.EventKind, orgID string) ([]byte, http.Header) {
	var body []byte
	switch kind {
	case provider.EventOrganizationChanged:
		key, _ := parseUID(orgID)
		f.mu.RLock()
		o, known := orgRecord{}, false
		if p, ok := f.orgs[key]; ok {
			o, known = *p, true
		} else if g, ok := f.goneOrgs[key]; ok {
			o, known = g, true
		}
		clock := f.clock
		f.mu.RUnlock()
		if !known {
			o = orgRecord{id: key, createdAt: clock}
		}
		typ := "team.updated"
		if o.version == 0 {
			typ = "team.created"
		}
		body = append(body, `{"type":"`+typ+`","data":`...)
		body = f.appendTeam(body, orgID, o)
		body = append(body, '}')
	case provider.EventOrganizationDeleted:
		body = append(body, `{"type":"team.deleted","data":{"id":`...)
		body = appendString(body, orgID)
		body = append(body, "}}"...)
	default:
		return f.IgnoredWebhook()
	}
	return body, f.SignWebhook(body, time.Now())
}

// MembershipWebhook builds a signed team_membership.created (or, with
// deleted, team_membership.deleted) delivery:
// {"type":...,"data":{"team_id":orgID,"user_id":userID}}, ids as given.
func (f *Fake) MembershipWebhook(orgID, userID string, deleted bool) ([]byte, http.Header) {
	typ := "team_membership.created"
	if deleted {
		typ = "team_membership.deleted"
	}
	body := []byte(`{"type":"` + typ + `","data":{"team_id":`)
	body = appendString(body, orgID)
	body = append(body, `,"user_id":`...)
	body = appendString(body, userID)
	body = append(body, "}}"...)
	return body, f.SignWebhook(body, time.Now())
}

// ---- rendering ----

// teamWords name generated teams.
var teamWords = []string{"Platform", "Growth", "Payments", "Research", "Design", "Support", "Infra", "Mobile", "Data", "Security", "Sales", "Ops"}

// appendTeam renders the server team object (every key present, null where
// unset) for o, with id as the text of its id: a pure function of (seed,
// id, version, creation time).
func (f *Fake) appendTeam(dst []byte, id string, o orgRecord) []byte {
	base := seedFor(f.opts.Seed, o.id, 0x7ea)
	ver := seedFor(f.opts.Seed, o.id, 0x7ea+1+uint64(o.version))
	org := teamNames[base.intn(len(teamNames))]
	dst = append(dst, `{"id":"`...)
	dst = appendRaw(dst, id)
	dst = append(dst, `","display_name":`...)
	name := org + " " + teamWords[ver.intn(len(teamWords))]
	switch ver.intn(10) {
	case 0:
		name = org + " — " + teamWords[ver.intn(len(teamWords))] + " (EU)"
	case 1:
		name = `"` + org + `" ` + strconv.Itoa(ver.intn(100))
	}
	if o.version > 0 {
		name += " v" + strconv.FormatUint(uint64(o.version), 10)
	}
	dst = appendString(dst, name)
	dst = append(dst, `,"profile_image_url":`...)
	if base.chance(40) {
		dst = append(dst, `"https://storage.example.com/team-profile-images/`...)
		dst = o.id.appendTo(dst)
		dst = append(dst, `.png"`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"created_at_millis":`...)
	dst = strconv.AppendInt(dst, o.createdAt, 10)
	dst = append(dst, `,"client_metadata":`...)
	if ver.chance(30) {
		dst = append(dst, `{"color":"`...)
		dst = append(dst, themes[ver.intn(len(themes))]...)
		dst = append(dst, `"}`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"client_read_only_metadata":`...)
	if ver.chance(30) {
		dst = append(dst, `{"plan":"`...)
		dst = append(dst, plans[ver.intn(len(plans))]...)
		dst = append(dst, `","seats":`...)
		dst = strconv.AppendInt(dst, int64(1+ver.intn(200)), 10)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"server_metadata":`...)
	if ver.chance(50) {
		dst = append(dst, `{"billing_id":"acct_`...)
		dst = appendAlnum(dst, &base, 12)
		dst = append(dst, `","revision":`...)
		dst = strconv.AppendUint(dst, uint64(o.version), 10)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, '}')
}

// ---- HTTP API ----

func (f *Fake) handleGetTeam(w http.ResponseWriter, r *http.Request) {
	if !f.authorize(w, r) {
		return
	}
	raw := r.PathValue("id")
	key, ok := parseUID(raw)
	if !ok {
		writeSchemaError(w, r, "params.team_id must be a valid UUID")
		return
	}
	f.mu.RLock()
	var body []byte
	if o, ok := f.orgs[key]; ok {
		body = f.appendTeam(make([]byte, 0, 512), f.idText(o.id), *o)
	}
	f.mu.RUnlock()
	if body == nil {
		writeKnownError(w, http.StatusNotFound, "TEAM_NOT_FOUND", "Team "+raw+" not found.", map[string]string{"team_id": raw})
		return
	}
	writeJSON(w, body)
}

func (f *Fake) handleListTeams(w http.ResponseWriter, r *http.Request) {
	if !f.authorize(w, r) {
		return
	}
	q := r.URL.Query()
	var user *uid
	if q.Has("user_id") {
		v := q.Get("user_id")
		if v == "me" {
			writeKnownError(w, http.StatusBadRequest, "CANNOT_GET_OWN_USER_WITHOUT_USER",
				"You have specified 'me' as a userId, but did not provide authentication for a user.", nil)
			return
		}
		key, ok := parseUID(v)
		if !ok {
			writeSchemaError(w, r, "query.user_id must be a valid UUID")
			return
		}
		user = &key
	}
	f.mu.RLock()
	list := make([]orgRecord, 0, len(f.orgs))
	for _, o := range f.orgs {
		if user != nil {
			if _, ok := o.members[*user]; !ok {
				continue
			}
		}
		list = append(list, *o)
	}
	// Oldest first, as Stack Auth orders them; teams created in the same
	// millisecond come in no defined order there (here: by id, descending,
	// so that clients do not rely on any).
	slices.SortFunc(list, func(a, b orgRecord) int {
		if a.createdAt != b.createdAt {
			if a.createdAt < b.createdAt {
				return -1
			}
			return 1
		}
		return strings.Compare(b.id.String(), a.id.String())
	})
	body := make([]byte, 0, 32+len(list)*300)
	body = append(body, `{"items":[`...)
	for i, o := range list {
		if i > 0 {
			body = append(body, ',')
		}
		body = f.appendTeam(body, f.idText(o.id), o)
	}
	f.mu.RUnlock()
	body = append(body, `],"is_paginated":false}`...)
	writeJSON(w, body)
}

// memberProfile is one membership as team-member-profiles serves it.
type memberProfile struct {
	team, user uid
	seq        int64
	rec        record
}

// appendProfile renders a team member profile: {team_id, user_id,
// display_name, profile_image_url, user}. The fake has no team-specific
// profiles, so the names and images are the user's.
func (f *Fake) appendProfile(dst []byte, p memberProfile) []byte {
	user := f.render(nil, p.rec)
	var w struct {
		DisplayName     json.RawMessage `json:"display_name"`
		ProfileImageURL json.RawMessage `json:"profile_image_url"`
	}
	_ = json.Unmarshal(user, &w) // the fake's own rendering: always an object
	dst = append(dst, `{"team_id":"`...)
	dst = append(dst, f.idText(p.team)...)
	dst = append(dst, `","user_id":"`...)
	dst = append(dst, f.idText(p.user)...)
	dst = append(dst, `","display_name":`...)
	dst = append(dst, w.DisplayName...)
	dst = append(dst, `,"profile_image_url":`...)
	dst = append(dst, w.ProfileImageURL...)
	dst = append(dst, `,"user":`...)
	dst = append(dst, user...)
	return append(dst, '}')
}

// userParam parses a user id parameter that may also be "me" (which server
// access cannot use); false means an error answer was written.
func userParam(w http.ResponseWriter, r *http.Request, v, field string) (uid, bool) {
	if v == "me" {
		writeKnownError(w, http.StatusBadRequest, "CANNOT_GET_OWN_USER_WITHOUT_USER",
			"You have specified 'me' as a userId, but did not provide authentication for a user.", nil)
		return uid{}, false
	}
	key, ok := parseUID(v)
	if !ok {
		writeSchemaError(w, r, field+" must be a valid UUID")
		return uid{}, false
	}
	return key, true
}

// handleListProfiles serves GET /api/v1/team-member-profiles: every
// membership (of the team_id, of the user_id, or of the project), oldest
// first, unpaginated, anonymous and restricted members included.
func (f *Fake) handleListProfiles(w http.ResponseWriter, r *http.Request) {
	if !f.authorize(w, r) {
		return
	}
	q := r.URL.Query()
	var team, user *uid
	if q.Has("user_id") {
		key, ok := userParam(w, r, q.Get("user_id"), "query.user_id")
		if !ok {
			return
		}
		user = &key
	}
	if q.Has("team_id") {
		key, ok := parseUID(q.Get("team_id"))
		if !ok {
			writeSchemaError(w, r, "query.team_id must be a valid UUID")
			return
		}
		team = &key
	}
	f.mu.RLock()
	if team != nil && f.orgs[*team] == nil {
		f.mu.RUnlock()
		writeKnownError(w, http.StatusNotFound, "TEAM_NOT_FOUND", "Team "+q.Get("team_id")+" not found.", map[string]string{"team_id": q.Get("team_id")})
		return
	}
	if user != nil {
		if _, ok := f.index[*user]; !ok {
			f.mu.RUnlock()
			writeKnownError(w, http.StatusNotFound, "USER_NOT_FOUND", "User not found.", nil)
			return
		}
	}
	var profiles []memberProfile
	for _, o := range f.orgs {
		if team != nil && o.id != *team {
			continue
		}
		for u, seq := range o.members {
			if user != nil && u != *user {
				continue
			}
			if pos, ok := f.index[u]; ok {
				profiles = append(profiles, memberProfile{team: o.id, user: u, seq: seq, rec: f.users[pos]})
			}
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(profiles, func(a, b memberProfile) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	body := []byte(`{"items":[`)
	for i, p := range profiles {
		if i > 0 {
			body = append(body, ',')
		}
		body = f.appendProfile(body, p)
	}
	body = append(body, `],"is_paginated":false}`...)
	writeJSON(w, body)
}

// handleGetProfile serves GET /api/v1/team-member-profiles/{team_id}/{user_id}:
// 404 USER_NOT_FOUND when the user does not exist, else
// TEAM_MEMBERSHIP_NOT_FOUND when they are not a member (or the team does not
// exist).
func (f *Fake) handleGetProfile(w http.ResponseWriter, r *http.Request) {
	if !f.authorize(w, r) {
		return
	}
	teamText, userText := r.PathValue("team_id"), r.PathValue("user_id")
	team, ok := parseUID(teamText)
	if !ok {
		writeSchemaError(w, r, "params.team_id must be a valid UUID")
		return
	}
	user, ok := userParam(w, r, userText, "params.user_id")
	if !ok {
		return
	}
	f.mu.RLock()
	pos, live := f.index[user]
	var p *memberProfile
	if o := f.orgs[team]; live && o != nil {
		if seq, ok := o.members[user]; ok {
			p = &memberProfile{team: team, user: user, seq: seq, rec: f.users[pos]}
		}
	}
	f.mu.RUnlock()
	switch {
	case !live:
		writeKnownError(w, http.StatusNotFound, "USER_NOT_FOUND", "User not found.", nil)
	case p == nil:
		writeKnownError(w, http.StatusNotFound, "TEAM_MEMBERSHIP_NOT_FOUND", "User "+userText+" is not found in team "+teamText+".",
			map[string]string{"team_id": teamText, "user_id": userText})
	default:
		writeJSON(w, f.appendProfile(nil, *p))
	}
}
