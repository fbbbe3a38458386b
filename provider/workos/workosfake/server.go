package workosfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/usersync/usersync/provider/workos"
)

type apiError struct {
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
}

func (f *Fake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", requestID())
	if f.Intercept(w, r, func(w http.ResponseWriter, status int) {
		writeJSON(w, status, faultError(status))
	}) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		writeJSON(w, http.StatusUnauthorized, apiError{Message: "Unauthorized"})
		return
	}
	type handler func(http.ResponseWriter, *http.Request, string)
	var serveList, serveOne handler
	var rest string
	for _, route := range []struct {
		prefix    string
		list, one handler
	}{
		{"/user_management/users", func(w http.ResponseWriter, r *http.Request, _ string) { f.serveList(w, r) }, f.serveUser},
		{"/organizations", f.serveOrganizationList, f.serveOrganization},
		{"/user_management/organization_memberships", f.serveMembershipList, f.serveMembership},
	} {
		if r2, ok := strings.CutPrefix(r.URL.Path, route.prefix); ok && (r2 == "" || r2[0] == '/') {
			rest, serveList, serveOne = r2, route.list, route.one
			break
		}
	}
	if serveList == nil {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Not Found", Code: "not_found"})
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Message: "Method Not Allowed (workosfake serves only GET)"})
		return
	}
	if rest == "" || rest == "/" {
		serveList(w, r, "")
		return
	}
	serveOne(w, r, rest[1:])
}

// serveUser answers GET /user_management/users/{id}.
func (f *Fake) serveUser(w http.ResponseWriter, _ *http.Request, id string) {
	f.mu.Lock()
	u, ok := f.byID[id]
	f.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Message: "User not found: '" + id + "'.", Code: "entity_not_found"})
		return
	}
	writeRaw(w, http.StatusOK, u.body())
}

func faultError(status int) apiError {
	switch {
	case status == http.StatusTooManyRequests:
		return apiError{Message: "Too many requests.", Code: "rate_limit_exceeded"}
	case status == http.StatusUnauthorized:
		return apiError{Message: "Unauthorized"}
	case status >= 500:
		return apiError{Message: "Internal Server Error", Code: "server_error"}
	}
	return apiError{Message: http.StatusText(status)}
}

type listMetadata struct {
	Before *string `json:"before"`
	After  *string `json:"after"`
}

// serveList answers GET /user_management/users: {object, data,
// list_metadata}; after/before are exclusive object-id cursors.
func (f *Fake) serveList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	invalid := func(msg string) {
		writeJSON(w, http.StatusUnprocessableEntity, apiError{Message: msg, Code: "invalid_request_parameters"})
	}
	// The real list also filters by organization_id (and the deprecated
	// organization) and email; it has no filter by user state, so without
	// these it lists every user. The fake implements none of the filters and
	// refuses them, so that a client relying on one (which the fake would
	// otherwise silently ignore) fails loudly.
	for name := range q {
		switch name {
		case "limit", "order", "after", "before":
		default:
			invalid(name + " is a WorkOS list parameter that workosfake does not implement")
			return
		}
	}
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			invalid("limit must be an integer between 1 and 100")
			return
		}
		limit = n
	}
	order := q.Get("order")
	switch order {
	case "", "desc", "normal":
		order = "desc"
	case "asc":
	default:
		invalid("order must be one of asc, desc, normal")
		return
	}
	after, before := q.Get("after"), q.Get("before")
	if after != "" && before != "" {
		invalid("after and before cannot be combined")
		return
	}
	cursor := after + before
	if cursor != "" && workos.ValidateUserID(cursor) != nil {
		invalid("invalid pagination cursor")
		return
	}

	f.mu.Lock()
	if cursor != "" && !f.lenient {
		if _, ok := f.byID[cursor]; !ok {
			f.mu.Unlock()
			// [I] WorkOS's answer for a cursor naming a deleted object is
			// undocumented; answer like a Stripe-style API would.
			writeJSON(w, http.StatusBadRequest, apiError{
				Message: "Invalid pagination cursor: no user with id '" + cursor + "'.", Code: "invalid_pagination_cursor"})
			return
		}
	}
	n := len(f.sorted)
	// lo..hi is the window of the id-sorted slice; the page is that window in
	// the requested order.
	var lo, hi int
	switch {
	case order == "asc" && before == "":
		lo = 0
		if after != "" {
			lo = f.upperLocked(after)
		}
		hi = min(lo+limit, n)
	case order == "asc":
		hi = f.indexLocked(before)
		lo = max(hi-limit, 0)
	case before == "": // desc, first page or after
		hi = n
		if after != "" {
			hi = f.indexLocked(after)
		}
		lo = max(hi-limit, 0)
	default: // desc, before
		lo = f.upperLocked(before)
		hi = min(lo+limit, n)
	}
	page := append([]*userJSON(nil), f.sorted[lo:hi]...)
	moreHigh, moreLow := hi < n, lo > 0
	f.mu.Unlock()

	if order == "desc" {
		for i, j := 0, len(page)-1; i < j; i, j = i+1, j-1 {
			page[i], page[j] = page[j], page[i]
		}
	}
	var md listMetadata
	if len(page) > 0 {
		first, last := page[0].ID, page[len(page)-1].ID
		moreAfter, moreBefore := moreHigh, moreLow
		if order == "desc" {
			moreAfter, moreBefore = moreLow, moreHigh
		}
		if moreAfter {
			md.After = &last
		}
		if moreBefore {
			md.Before = &first
		}
	}
	data := make([]json.RawMessage, len(page))
	for i, u := range page {
		data[i] = u.body()
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "list_metadata": md})
}

// upperLocked returns the position of the first user with id > id.
func (f *Fake) upperLocked(id string) int {
	i := f.indexLocked(id)
	if i < len(f.sorted) && f.sorted[i].ID == id {
		i++
	}
	return i
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, mustJSON(v))
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
