package clerkfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

type writeErrFunc func(http.ResponseWriter, int, clerkError)

// serveOrgs answers GET /v1/organizations, /v1/organizations/{id_or_slug}
// and /v1/organizations/{id}/memberships (rest is the path after
// /v1/organizations).
func (f *Fake) serveOrgs(w http.ResponseWriter, r *http.Request, rest string, writeErr writeErrFunc) {
	if r.Method != http.MethodGet {
		writeErr(w, http.StatusMethodNotAllowed, clerkError{
			Message: "method not allowed", LongMessage: "The fake serves only GET", Code: "method_not_allowed"})
		return
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" || rest == "/":
		f.serveOrgList(w, r, writeErr)
	case len(parts) == 1:
		f.serveOrgGet(w, r, parts[0], writeErr)
	case len(parts) == 2 && parts[1] == "memberships":
		f.serveMembershipList(w, r, parts[0], writeErr)
	default:
		writeErr(w, http.StatusNotFound, notFound())
	}
}

// listQuery validates a list request's query: only the names in supported
// are implemented (the others Clerk documents answer 422, so that a client
// relying on a filter the fake would ignore fails loudly); limit 1..500
// (default 10) and offset >= 0 (malformed: 400, out of range: 422); booleans
// true or false (else 400).
type listQuery struct {
	limit, offset int
	bools         map[string]bool
	orderBy       string
}

func parseListQuery(w http.ResponseWriter, r *http.Request, writeErr writeErrFunc, supported []string, boolNames []string) (listQuery, bool) {
	q := r.URL.Query()
	for name := range q {
		ok := false
		for _, s := range supported {
			ok = ok || s == name
		}
		if !ok {
			writeErr(w, http.StatusUnprocessableEntity, clerkError{
				Message: "is not supported", LongMessage: name + " is a Clerk list parameter that clerkfake does not implement",
				Code: "unsupported_by_clerkfake"})
			return listQuery{}, false
		}
	}
	out := listQuery{bools: map[string]bool{}, orderBy: q.Get("order_by")}
	for _, name := range boolNames {
		switch v := q.Get(name); v {
		case "":
		case "true", "false":
			out.bools[name] = v == "true"
		default:
			writeErr(w, http.StatusBadRequest, clerkError{
				Message: "is invalid", LongMessage: name + " must be true or false", Code: "malformed_request_parameters"})
			return listQuery{}, false
		}
	}
	intParam := func(name string, def, lo, hi int) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, clerkError{
				Message: "is invalid", LongMessage: name + " is invalid", Code: "malformed_request_parameters"})
			return 0, false
		}
		if n < lo || n > hi {
			writeErr(w, http.StatusUnprocessableEntity, clerkError{
				Message:     "is invalid",
				LongMessage: name + " must be between " + strconv.Itoa(lo) + " and " + strconv.Itoa(hi),
				Code:        "form_param_value_invalid"})
			return 0, false
		}
		return n, true
	}
	var ok bool
	if out.limit, ok = intParam("limit", 10, 1, 500); !ok {
		return listQuery{}, false
	}
	if out.offset, ok = intParam("offset", 0, 0, 1<<53); !ok {
		return listQuery{}, false
	}
	return out, true
}

// orderDesc reads order_by (default -created_at): only created_at is
// implemented; the other documented fields answer 422 unsupported, and
// unknown ones 422 invalid, as Clerk does.
func orderDesc(w http.ResponseWriter, orderBy string, documented []string, writeErr writeErrFunc) (desc, ok bool) {
	if orderBy == "" {
		orderBy = "-created_at"
	}
	desc = strings.HasPrefix(orderBy, "-")
	field := strings.TrimLeft(orderBy, "+-")
	if field == "created_at" {
		return desc, true
	}
	for _, d := range documented {
		if d == field {
			writeErr(w, http.StatusUnprocessableEntity, clerkError{
				Message: "is not supported", LongMessage: "order_by " + orderBy + " is not implemented by clerkfake", Code: "unsupported_by_clerkfake"})
			return false, false
		}
	}
	writeErr(w, http.StatusUnprocessableEntity, clerkError{
		Message: "is invalid", LongMessage: "order_by " + orderBy + " is not a valid ordering", Code: "form_param_value_invalid"})
	return false, false
}

// window returns the indexes of the page [offset, offset+limit) of n items,
// in ascending or descending order.
func window(n, offset, limit int, desc bool) []int {
	start := min(offset, n)
	end := min(start+limit, n)
	idx := make([]int, 0, end-start)
	for i := start; i < end; i++ {
		if desc {
			idx = append(idx, n-1-i)
		} else {
			idx = append(idx, i)
		}
	}
	return idx
}

// serveOrgList answers GET /v1/organizations: {data, total_count}.
func (f *Fake) serveOrgList(w http.ResponseWriter, r *http.Request, writeErr writeErrFunc) {
	lq, ok := parseListQuery(w, r, writeErr,
		[]string{"limit", "offset", "order_by", "include_members_count", "include_missing_member_with_elevated_permissions"},
		[]string{"include_members_count", "include_missing_member_with_elevated_permissions"})
	if !ok {
		return
	}
	desc, ok := orderDesc(w, lq.orderBy, []string{"name", "members_count"}, writeErr)
	if !ok {
		return
	}
	f.mu.Lock()
	f.org.init()
	n := len(f.org.orgSorted)
	data := []json.RawMessage{}
	for _, i := range window(n, lq.offset, lq.limit, desc) {
		data = append(data, f.orgAPIBodyLocked(f.org.orgSorted[i], lq.bools))
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "total_count": n})
}

// orgAPIBodyLocked is the organization as the API returns it, with the
// counts the request asked for.
func (f *Fake) orgAPIBodyLocked(o *fakeOrg, bools map[string]bool) json.RawMessage {
	if !bools["include_members_count"] && !bools["include_missing_member_with_elevated_permissions"] {
		return f.orgBodyLocked(o, false, false)
	}
	obj := o.obj
	if bools["include_members_count"] {
		n := len(o.members)
		obj.MembersCount = &n
	}
	if bools["include_missing_member_with_elevated_permissions"] {
		missing := true
		for _, m := range o.members {
			missing = missing && m.role != roleAdmin
		}
		obj.MissingMemberWithElevatedPermissions = &missing
	}
	return mustJSON(&obj)
}

// serveOrgGet answers GET /v1/organizations/{id_or_slug}.
func (f *Fake) serveOrgGet(w http.ResponseWriter, r *http.Request, idOrSlug string, writeErr writeErrFunc) {
	q := r.URL.Query()
	bools := map[string]bool{}
	for _, name := range []string{"include_members_count", "include_missing_member_with_elevated_permissions"} {
		switch v := q.Get(name); v {
		case "":
		case "true", "false":
			bools[name] = v == "true"
		default:
			writeErr(w, http.StatusBadRequest, clerkError{
				Message: "is invalid", LongMessage: name + " must be true or false", Code: "malformed_request_parameters"})
			return
		}
	}
	f.mu.Lock()
	f.org.init()
	o, ok := f.org.orgs[idOrSlug]
	if !ok {
		o, ok = f.org.bySlug[idOrSlug]
	}
	var body json.RawMessage
	if ok {
		body = f.orgAPIBodyLocked(o, bools)
	}
	f.mu.Unlock()
	if !ok {
		writeErr(w, http.StatusNotFound, notFound())
		return
	}
	writeRaw(w, http.StatusOK, body)
}

// serveMembershipList answers GET /v1/organizations/{id}/memberships:
// {data, total_count}; 404 resource_not_found for an organization that does
// not exist.
func (f *Fake) serveMembershipList(w http.ResponseWriter, r *http.Request, orgID string, writeErr writeErrFunc) {
	lq, ok := parseListQuery(w, r, writeErr, []string{"limit", "offset", "order_by"}, nil)
	if !ok {
		return
	}
	desc, ok := orderDesc(w, lq.orderBy, []string{"phone_number", "email_address", "first_name", "last_name", "username"}, writeErr)
	if !ok {
		return
	}
	f.mu.Lock()
	f.org.init()
	o, ok := f.org.orgs[orgID]
	if !ok {
		f.mu.Unlock()
		writeErr(w, http.StatusNotFound, notFound())
		return
	}
	n := len(o.sorted)
	data := []json.RawMessage{}
	for _, i := range window(n, lq.offset, lq.limit, desc) {
		data = append(data, f.membershipLocked(o, o.sorted[i], false))
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "total_count": n})
}
