package workosfake

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/usersync/usersync/provider"
)

// listParams are the pagination parameters every WorkOS list takes.
type listParams struct {
	limit         int
	order         string // "asc" or "desc" ("normal" is answered as desc)
	after, before string
}

// parseListParams reads limit (1..100, default 10), order, after and
// before, refusing any parameter not in filters (the list's other
// parameters that the fake implements). On failure it has answered 422.
func parseListParams(w http.ResponseWriter, q url.Values, filters ...string) (listParams, bool) {
	invalid := func(msg string) (listParams, bool) {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Message: msg, Code: "invalid_request_parameters"})
		return listParams{}, false
	}
	for name := range q {
		switch name {
		case "limit", "order", "after", "before":
		default:
			known := false
			for _, f := range filters {
				known = known || f == name
			}
			if !known {
				return invalid(name + " is a WorkOS list parameter that workosfake does not implement")
			}
		}
	}
	p := listParams{limit: 10, after: q.Get("after"), before: q.Get("before")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return invalid("limit must be an integer between 1 and 100")
		}
		p.limit = n
	}
	switch p.order = q.Get("order"); p.order {
	case "", "desc", "normal":
		p.order = "desc"
	case "asc":
	default:
		return invalid("order must be one of asc, desc, normal")
	}
	if p.after != "" && p.before != "" {
		return invalid("after and before cannot be combined")
	}
	return p, true
}

func (p listParams) cursor() string { return p.after + p.before }

// window returns the page of sorted (ascending by id) that p asks for, in
// its order, with the list_metadata cursors: after and before are exclusive
// object-id cursors that need not name an element of sorted.
func window[T any](sorted []T, id func(T) string, p listParams) ([]T, listMetadata) {
	n := len(sorted)
	lower := func(x string) int { return sort.Search(n, func(i int) bool { return id(sorted[i]) >= x }) }
	upper := func(x string) int { return sort.Search(n, func(i int) bool { return id(sorted[i]) > x }) }
	var lo, hi int
	switch {
	case p.order == "asc" && p.before == "":
		if p.after != "" {
			lo = upper(p.after)
		}
		hi = min(lo+p.limit, n)
	case p.order == "asc":
		hi = lower(p.before)
		lo = max(hi-p.limit, 0)
	case p.before == "": // desc, first page or after
		hi = n
		if p.after != "" {
			hi = lower(p.after)
		}
		lo = max(hi-p.limit, 0)
	default: // desc, before
		lo = upper(p.before)
		hi = min(lo+p.limit, n)
	}
	page := append([]T(nil), sorted[lo:hi]...)
	moreAfter, moreBefore := hi < n, lo > 0
	if p.order == "desc" {
		for i, j := 0, len(page)-1; i < j; i, j = i+1, j-1 {
			page[i], page[j] = page[j], page[i]
		}
		moreAfter, moreBefore = moreBefore, moreAfter
	}
	var md listMetadata
	if len(page) > 0 {
		first, last := id(page[0]), id(page[len(page)-1])
		if moreAfter {
			md.After = &last
		}
		if moreBefore {
			md.Before = &first
		}
	}
	return page, md
}

func writeList(w http.ResponseWriter, data []json.RawMessage, md listMetadata) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "list_metadata": md})
}

func orgNotFound(w http.ResponseWriter, id string) {
	writeJSON(w, http.StatusNotFound, apiError{Message: "Organization not found: '" + id + "'.", Code: "entity_not_found"})
}

func badCursor(w http.ResponseWriter, what, cursor string) {
	// [I] WorkOS's answer for a cursor naming a deleted object is
	// undocumented; answer like a Stripe-style API would.
	writeJSON(w, http.StatusBadRequest, apiError{
		Message: "Invalid pagination cursor: no " + what + " with id '" + cursor + "'.", Code: "invalid_pagination_cursor"})
}

// serveOrganization answers GET /organizations/{id}.
func (f *Fake) serveOrganization(w http.ResponseWriter, _ *http.Request, id string) {
	f.mu.Lock()
	o, ok := f.orgs.byID[id]
	var body json.RawMessage
	if ok {
		body = o.apiBody()
	}
	f.mu.Unlock()
	if !ok {
		orgNotFound(w, id)
		return
	}
	writeRaw(w, http.StatusOK, body)
}

// serveOrganizationList answers GET /organizations: {object, data,
// list_metadata}, by creation time. The domains and search filters are not
// implemented (refused with 422).
func (f *Fake) serveOrganizationList(w http.ResponseWriter, r *http.Request, _ string) {
	p, ok := parseListParams(w, r.URL.Query())
	if !ok {
		return
	}
	if c := p.cursor(); c != "" && provider.ValidateUserID(c) != nil {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Message: "invalid pagination cursor", Code: "invalid_request_parameters"})
		return
	}
	f.mu.Lock()
	if c := p.cursor(); c != "" && !f.lenient {
		if _, ok := f.orgs.byID[c]; !ok {
			f.mu.Unlock()
			badCursor(w, "organization", c)
			return
		}
	}
	page, md := window(f.orgs.sorted, func(o *orgJSON) string { return o.ID }, p)
	data := make([]json.RawMessage, len(page))
	for i, o := range page {
		data[i] = o.apiBody()
	}
	f.mu.Unlock()
	writeList(w, data, md)
}

// serveMembership answers GET /user_management/organization_memberships/{id}.
func (f *Fake) serveMembership(w http.ResponseWriter, _ *http.Request, id string) {
	f.mu.Lock()
	m, ok := f.orgs.memberByID[id]
	var body json.RawMessage
	if ok {
		body = f.memberAPIBodyLocked(m)
	}
	f.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Organization membership not found: '" + id + "'.", Code: "entity_not_found"})
		return
	}
	writeRaw(w, http.StatusOK, body)
}

// serveMembershipList answers GET /user_management/organization_memberships:
// organization_id and/or user_id are required (400
// missing_user_id_or_organization_id); statuses (comma-separated, or the
// key repeated) filters by status, and without it only active memberships
// are listed, as WorkOS does.
func (f *Fake) serveMembershipList(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	p, ok := parseListParams(w, q, "organization_id", "user_id", "statuses")
	if !ok {
		return
	}
	orgID, userID := q.Get("organization_id"), q.Get("user_id")
	if orgID == "" && userID == "" {
		writeJSON(w, http.StatusBadRequest, apiError{
			Message: "At least one of user_id or organization_id must be provided.", Code: "missing_user_id_or_organization_id"})
		return
	}
	statuses := map[string]bool{}
	for _, v := range q["statuses"] {
		for _, s := range strings.Split(v, ",") {
			switch s = strings.TrimSpace(s); s {
			case "active", "inactive", "pending":
				statuses[s] = true
			case "":
			default:
				writeJSON(w, http.StatusUnprocessableEntity, apiError{
					Message: "statuses must contain only active, inactive or pending", Code: "invalid_request_parameters"})
				return
			}
		}
	}
	if len(statuses) == 0 {
		statuses["active"] = true
	}
	if c := p.cursor(); c != "" && provider.ValidateUserID(c) != nil {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Message: "invalid pagination cursor", Code: "invalid_request_parameters"})
		return
	}

	f.mu.Lock()
	if orgID != "" {
		if _, ok := f.orgs.byID[orgID]; !ok {
			f.mu.Unlock()
			orgNotFound(w, orgID)
			return
		}
	}
	if userID != "" {
		if _, ok := f.byID[userID]; !ok {
			f.mu.Unlock()
			writeJSON(w, http.StatusNotFound, apiError{Message: "User not found: '" + userID + "'.", Code: "entity_not_found"})
			return
		}
	}
	if c := p.cursor(); c != "" && !f.lenient {
		if _, ok := f.orgs.memberByID[c]; !ok {
			f.mu.Unlock()
			badCursor(w, "organization membership", c)
			return
		}
	}
	var candidates []*memberJSON
	if orgID != "" {
		candidates = f.orgs.byOrg[orgID]
	} else {
		for _, m := range f.orgs.memberByID {
			candidates = append(candidates, m)
		}
		sort.Slice(candidates, func(i, j int) bool { return candidates[i].ID < candidates[j].ID })
	}
	var matching []*memberJSON
	for _, m := range candidates {
		if statuses[m.Status] && (userID == "" || m.UserID == userID) {
			matching = append(matching, m)
		}
	}
	page, md := window(matching, func(m *memberJSON) string { return m.ID }, p)
	data := make([]json.RawMessage, len(page))
	for i, m := range page {
		data[i] = f.memberAPIBodyLocked(m)
	}
	f.mu.Unlock()
	writeList(w, data, md)
}
