package clerkfake

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// clerkError is one entry of a ClerkErrors body.
type clerkError struct {
	Message     string `json:"message"`
	LongMessage string `json:"long_message"`
	Code        string `json:"code"`
}

func (f *Fake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	trace := traceID()
	w.Header().Set("Clerk-Trace-Id", trace)
	writeErr := func(w http.ResponseWriter, status int, e clerkError) {
		writeJSON(w, status, map[string]any{"errors": []clerkError{e}, "clerk_trace_id": trace})
	}
	if f.Intercept(w, r, func(w http.ResponseWriter, status int) {
		writeErr(w, status, faultError(status))
	}) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		writeErr(w, http.StatusUnauthorized, clerkError{
			Message:     "Invalid authentication",
			LongMessage: "Unable to authenticate the request, you need to supply an active API key",
			Code:        "authentication_invalid",
		})
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/organizations"); ok && (rest == "" || rest[0] == '/') {
		f.serveOrgs(w, r, rest, writeErr)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/users")
	if !ok || (path != "" && path[0] != '/') {
		writeErr(w, http.StatusNotFound, notFound())
		return
	}
	if r.Method != http.MethodGet {
		writeErr(w, http.StatusMethodNotAllowed, clerkError{
			Message: "method not allowed", LongMessage: "The fake serves only GET", Code: "method_not_allowed"})
		return
	}
	switch path {
	case "", "/":
		f.serveList(w, r, writeErr, false)
	case "/count":
		f.serveList(w, r, writeErr, true)
	default:
		id := path[1:]
		f.mu.Lock()
		u, ok := f.byID[id]
		var body json.RawMessage
		if ok {
			body = u.body()
		}
		f.mu.Unlock()
		if !ok {
			writeErr(w, http.StatusNotFound, notFound())
			return
		}
		writeRaw(w, http.StatusOK, body)
	}
}

func notFound() clerkError {
	return clerkError{Message: "not found", LongMessage: "Resource not found", Code: "resource_not_found"}
}

func faultError(status int) clerkError {
	switch status {
	case http.StatusTooManyRequests:
		return clerkError{Message: "Too many requests", LongMessage: "Too many requests, please try again later.", Code: "too_many_requests"}
	case http.StatusUnauthorized:
		return clerkError{Message: "Invalid authentication", LongMessage: "Unable to authenticate the request", Code: "authentication_invalid"}
	case http.StatusNotFound:
		return notFound()
	}
	if status >= 500 {
		return clerkError{Message: "Oops, an unexpected error occurred", LongMessage: "There was an internal error on our servers. We've been notified and are working on fixing it.", Code: "internal_clerk_error"}
	}
	return clerkError{Message: http.StatusText(status), LongMessage: http.StatusText(status), Code: "request_failed"}
}

// serveList answers GET /v1/users (bare array) and GET /v1/users/count.
func (f *Fake) serveList(w http.ResponseWriter, r *http.Request, writeErr func(http.ResponseWriter, int, clerkError), count bool) {
	q := r.URL.Query()
	// Clerk's list has many filters (email_address, user_id, query, ...);
	// the fake implements these (user_id: up to MaxUserIDs ids, each
	// optionally "+"/"-" prefixed) and refuses the others, so that a client
	// relying on a filter the fake would silently ignore (listing everyone
	// where the real API lists a subset) fails loudly.
	for name := range q {
		switch name {
		case "limit", "offset", "order_by", "created_at_after", "created_at_before", "banned", "user_id":
		default:
			writeErr(w, http.StatusUnprocessableEntity, clerkError{
				Message: "is not supported", LongMessage: name + " is a Clerk list parameter that clerkfake does not implement",
				Code: "unsupported_by_clerkfake"})
			return
		}
	}
	// banned=true lists only banned users, banned=false only the others;
	// without it the list holds every user, banned and locked ones included
	// (as GET /users/{id} and the webhooks do).
	var banned *bool
	switch v := q.Get("banned"); v {
	case "":
	case "true", "false":
		b := v == "true"
		banned = &b
	default:
		writeErr(w, http.StatusBadRequest, clerkError{
			Message: "is invalid", LongMessage: "banned must be true or false", Code: "malformed_request_parameters"})
		return
	}
	ids, ok := parseUserIDs(q["user_id"])
	if !ok {
		writeErr(w, http.StatusUnprocessableEntity, clerkError{
			Message:     "is invalid",
			LongMessage: "user_id accepts up to " + strconv.Itoa(MaxUserIDs) + " user IDs",
			Code:        "form_param_value_invalid"})
		return
	}
	intParam := func(name string, def, lo, hi int64) (int64, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeErr(w, http.StatusBadRequest, clerkError{
				Message: "is invalid", LongMessage: name + " is invalid", Code: "form_param_format_invalid"})
			return 0, false
		}
		if n < lo || n > hi {
			writeErr(w, http.StatusUnprocessableEntity, clerkError{
				Message:     "is invalid",
				LongMessage: name + " must be between " + strconv.FormatInt(lo, 10) + " and " + strconv.FormatInt(hi, 10),
				Code:        "form_param_value_invalid"})
			return 0, false
		}
		return n, true
	}
	limit, ok := intParam("limit", 10, 1, 500)
	if !ok {
		return
	}
	offset, ok := intParam("offset", 0, 0, 1<<53)
	if !ok {
		return
	}
	const noBound = int64(-1) << 62
	after, ok := intParam("created_at_after", noBound, 0, 1<<53)
	if !ok {
		return
	}
	before, ok := intParam("created_at_before", noBound, 0, 1<<53)
	if !ok {
		return
	}
	orderBy := q.Get("order_by") // only the first order_by is kept
	if orderBy == "" {
		orderBy = "-created_at"
	}
	desc := strings.HasPrefix(orderBy, "-")
	field := strings.TrimLeft(orderBy, "+-")
	if field != "created_at" && field != "updated_at" {
		writeErr(w, http.StatusUnprocessableEntity, clerkError{
			Message: "is invalid", LongMessage: "order_by " + orderBy + " is not supported by clerkfake", Code: "form_param_value_invalid"})
		return
	}

	f.mu.Lock()
	// The +created_at order is kept sorted; created_at filters are binary
	// searches, so a page costs O(log n + limit).
	lo, hi := 0, len(f.sorted)
	if after != noBound {
		lo = sort.Search(len(f.sorted), func(i int) bool { return f.sorted[i].obj.CreatedAt > after })
	}
	if before != noBound {
		hi = sort.Search(len(f.sorted), func(i int) bool { return f.sorted[i].obj.CreatedAt >= before })
	}
	if hi < lo {
		hi = lo
	}
	sorted := f.sorted
	if ids.include != nil {
		// At most MaxUserIDs users: look them up instead of scanning.
		var sel []*fakeUser
		for id := range ids.include {
			if u, ok := f.byID[id]; ok && !ids.exclude[id] && u.obj.CreatedAt > after &&
				(before == noBound || u.obj.CreatedAt < before) {
				sel = append(sel, u)
			}
		}
		sort.Slice(sel, func(i, j int) bool { return less(sel[i], sel[j]) })
		sorted, lo, hi = sel, 0, len(sel)
	} else if len(ids.exclude) > 0 {
		var sel []*fakeUser
		for _, u := range f.sorted[lo:hi] {
			if !ids.exclude[u.obj.ID] {
				sel = append(sel, u)
			}
		}
		sorted, lo, hi = sel, 0, len(sel)
	}
	if banned != nil {
		// Filter the window; lo..hi then index the filtered slice.
		var sel []*fakeUser
		for _, u := range sorted[lo:hi] {
			if u.obj.Banned == *banned {
				sel = append(sel, u)
			}
		}
		sorted, lo, hi = sel, 0, len(sel)
	}
	if count {
		n := hi - lo
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"object": "total_count", "total_count": n})
		return
	}
	var page []*fakeUser
	if field == "created_at" {
		n := int64(hi - lo)
		start := min(offset, n)
		end := min(start+limit, n)
		for i := start; i < end; i++ {
			j := int64(lo) + i
			if desc {
				j = int64(hi) - 1 - i
			}
			page = append(page, sorted[j])
		}
	} else {
		sel := append([]*fakeUser(nil), sorted[lo:hi]...)
		sort.SliceStable(sel, func(i, j int) bool {
			a, b := sel[i].obj.UpdatedAt, sel[j].obj.UpdatedAt
			if desc {
				return a > b
			}
			return a < b
		})
		n := int64(len(sel))
		start := min(offset, n)
		page = sel[start:min(start+limit, n)]
	}
	items := make([]json.RawMessage, len(page))
	for i, u := range page {
		items[i] = u.body()
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, items)
}

// MaxUserIDs is the most user_id values one list request may carry, as
// Clerk's Backend API documents.
const MaxUserIDs = 100

// userIDFilter is a parsed user_id list filter.
type userIDFilter struct {
	// include, when not nil, holds the ids to list (no prefix, or "+"):
	// the list holds only those of them that exist.
	include map[string]bool
	// exclude holds the ids to leave out ("-" prefix).
	exclude map[string]bool
}

// parseUserIDs reads the repeatable user_id parameter: each value an id,
// optionally prefixed "+" (include, as with no prefix) or "-" (exclude);
// false when there are more than MaxUserIDs values. Ids that match no user
// are ignored, as Clerk documents.
func parseUserIDs(vals []string) (userIDFilter, bool) {
	var fl userIDFilter
	if len(vals) > MaxUserIDs {
		return fl, false
	}
	for _, v := range vals {
		if id, ok := strings.CutPrefix(v, "-"); ok {
			if fl.exclude == nil {
				fl.exclude = map[string]bool{}
			}
			fl.exclude[id] = true
			continue
		}
		if fl.include == nil {
			fl.include = map[string]bool{}
		}
		fl.include[strings.TrimPrefix(v, "+")] = true
	}
	return fl, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
