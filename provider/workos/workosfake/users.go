package workosfake

import (
	"encoding/json"
	"strings"
	"time"
)

// userJSON is WorkOS's UserlandUser, in the field order of
// workos-go testdata/user.json.
type userJSON struct {
	Object            string            `json:"object"`
	ID                string            `json:"id"`
	FirstName         *string           `json:"first_name"`
	LastName          *string           `json:"last_name"`
	Name              *string           `json:"name,omitempty"`
	ProfilePictureURL *string           `json:"profile_picture_url"`
	Email             string            `json:"email"`
	EmailVerified     bool              `json:"email_verified"`
	ExternalID        *string           `json:"external_id"`
	Metadata          map[string]string `json:"metadata"`
	LastSignInAt      *string           `json:"last_sign_in_at"`
	Locale            *string           `json:"locale,omitempty"`
	CreatedAt         string            `json:"created_at"`
	UpdatedAt         string            `json:"updated_at"`

	// raw, when set, is served instead of the fields above: a user object
	// given to PutUser as is.
	raw json.RawMessage
}

// body is the user's object as GET /user_management/users/{id} returns it.
func (u *userJSON) body() json.RawMessage {
	if u.raw != nil {
		return u.raw
	}
	return mustJSON(u)
}

var (
	firstNames = []string{"Marcelina", "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken",
		"Radia", "Edsger", "Hedy", "Donald", "Katherine", "Tim", "Mary", "John", "Sophie", "Yukihiro", "Zoë", "José"}
	lastNames = []string{"Davis", "Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Ritchie", "Allen",
		"Thompson", "Perlman", "Dijkstra", "Lamarr", "Knuth", "Johnson", "Berners-Lee", "Jackson", "McCarthy", "Wilson",
		"Matsumoto", "Nuñez", "O'Brien"}
	plans   = []string{"free", "pro", "team", "enterprise"}
	locales = []string{"en-US", "en-GB", "fr-FR", "de-DE", "ja-JP"}
)

// isoTime formats t as WorkOS does: UTC, milliseconds, "Z".
func isoTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func fullName(first, last *string) *string {
	var parts []string
	for _, p := range []*string{first, last} {
		if p != nil && *p != "" {
			parts = append(parts, *p)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	s := strings.Join(parts, " ")
	return &s
}

// newUserLocked makes a realistic user created at t. About one user in ten
// has a null last_name, one in twenty neither first nor last name.
func (f *Fake) newUserLocked(t time.Time) *userJSON {
	t = t.UTC().Truncate(time.Millisecond)
	id := "user_" + f.ulidLocked(t)
	first := firstNames[f.rng.IntN(len(firstNames))]
	last := lastNames[f.rng.IntN(len(lastNames))]
	local := strings.ToLower(strings.NewReplacer("'", "", "ë", "e", "é", "e", "ñ", "n").Replace(first + "." + last))
	u := &userJSON{
		Object:        "user",
		ID:            id,
		Email:         local + "." + strings.ToLower(id[len(id)-6:]) + "@example.com",
		EmailVerified: f.rng.IntN(5) != 0,
		Metadata:      map[string]string{},
		CreatedAt:     isoTime(t),
		UpdatedAt:     isoTime(t),
	}
	switch r := f.rng.IntN(20); {
	case r < 2:
		u.FirstName = &first
	case r < 3:
	default:
		u.FirstName, u.LastName = &first, &last
	}
	u.Name = fullName(u.FirstName, u.LastName)
	if f.rng.IntN(2) == 0 {
		pic := "https://workoscdn.com/images/v1/" + strings.ToLower(id[5:])
		u.ProfilePictureURL = &pic
	}
	if f.rng.IntN(3) == 0 {
		ext := requestID()
		u.ExternalID = &ext
	}
	if f.rng.IntN(2) == 0 {
		ls := isoTime(t.Add(time.Duration(f.rng.IntN(1000)) * time.Millisecond))
		u.LastSignInAt = &ls
	}
	if f.rng.IntN(3) == 0 {
		u.Metadata = map[string]string{"timezone": "America/New_York"}
	}
	if f.rng.IntN(2) == 0 {
		loc := locales[f.rng.IntN(len(locales))]
		u.Locale = &loc
	}
	return u
}
