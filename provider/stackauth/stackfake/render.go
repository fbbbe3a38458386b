package stackfake

import (
	"encoding/hex"
	"strconv"
	"unicode/utf8"
)

// uid is a user id in binary form; its text form is the lowercase UUID.
type uid [16]byte

func (u uid) String() string {
	var b [36]byte
	u.appendTo(b[:0])
	return string(b[:])
}

func (u uid) appendTo(dst []byte) []byte {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return append(dst, b[:]...)
}

// parseUID parses a UUID in 8-4-4-4-12 form, in either case.
func parseUID(s string) (uid, bool) {
	var u uid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	var compact [32]byte
	copy(compact[0:8], s[0:8])
	copy(compact[8:12], s[9:13])
	copy(compact[12:16], s[14:18])
	copy(compact[16:20], s[19:23])
	copy(compact[20:32], s[24:36])
	if _, err := hex.Decode(u[:], compact[:]); err != nil {
		return uid{}, false
	}
	return u, true
}

// prng is splitmix64: small, fast and deterministic.
type prng uint64

func (p *prng) next() uint64 {
	*p += 0x9e3779b97f4a7c15
	z := uint64(*p)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n).
func (p *prng) intn(n int) int { return int(p.next() % uint64(n)) }

// chance returns true with probability pct percent.
func (p *prng) chance(pct int) bool { return p.intn(100) < pct }

func seedFor(seed int64, u uid, salt uint64) prng {
	h := uint64(seed) ^ 0x6a09e667f3bcc908 ^ salt*0x9e3779b97f4a7c15
	for _, b := range u {
		h ^= uint64(b)
		h *= 0x100000001b3
	}
	p := prng(h)
	p.next()
	return p
}

type name struct{ display, slug string }

var firstNames = []name{
	{"Ada", "ada"}, {"Alan", "alan"}, {"Amara", "amara"}, {"Aiko", "aiko"}, {"Ben", "ben"},
	{"Carlos", "carlos"}, {"Chen", "chen"}, {"Chloé", "chloe"}, {"Dmitri", "dmitri"}, {"Elena", "elena"},
	{"Emeka", "emeka"}, {"Fatima", "fatima"}, {"Grace", "grace"}, {"Hana", "hana"}, {"Ibrahim", "ibrahim"},
	{"Ingrid", "ingrid"}, {"James", "james"}, {"José", "jose"}, {"Kai", "kai"}, {"Lars", "lars"},
	{"Łukasz", "lukasz"}, {"Maya", "maya"}, {"Mei", "mei"}, {"Noah", "noah"}, {"Olga", "olga"},
	{"Priya", "priya"}, {"Rafael", "rafael"}, {"Sofia", "sofia"}, {"Søren", "soren"}, {"Tariq", "tariq"},
	{"Valentina", "valentina"}, {"Wei", "wei"}, {"Yuki", "yuki"}, {"Zoë", "zoe"}, {"李", "li"},
}

var lastNames = []name{
	{"Anderson", "anderson"}, {"Bauer", "bauer"}, {"Costa", "costa"}, {"Dubois", "dubois"}, {"Eriksson", "eriksson"},
	{"Fernández", "fernandez"}, {"García", "garcia"}, {"Hoffmann", "hoffmann"}, {"Ivanova", "ivanova"}, {"Johnson", "johnson"},
	{"Kowalski", "kowalski"}, {"Lovelace", "lovelace"}, {"Müller", "mueller"}, {"Nakamura", "nakamura"}, {"Nguyễn", "nguyen"},
	{"O'Brien", "obrien"}, {"Okafor", "okafor"}, {"Patel", "patel"}, {"Rossi", "rossi"}, {"Schmidt", "schmidt"},
	{"Smith", "smith"}, {"Tanaka", "tanaka"}, {"Turing", "turing"}, {"Van der Berg", "vanderberg"}, {"Wang", "wang"},
	{"Yılmaz", "yilmaz"}, {"Zhang", "zhang"},
}

var (
	emailDomains = []string{"example.com", "example.org", "mail.example.net", "corp.example.com", "users.example.io"}
	themes       = []string{"dark", "light", "system"}
	locales      = []string{"en-US", "en-GB", "de-DE", "fr-FR", "ja-JP", "pt-BR", "es-ES"}
	plans        = []string{"free", "pro", "team", "enterprise"}
	teamNames    = []string{"Acme Corp", "Globex", "Initech", "Umbrella Research", "Hooli XYZ", "Stark Industries", "Wayne Enterprises", "Soylent Labs"}
)

// team is one of the fake project's teams (selected_team of some users).
type team struct {
	id        uid
	name      string
	createdAt int64
}

// traits are the parts of a user's profile that never change, drawn from
// the seed and the id (an anonymous user has no email and no sign-in
// method).
type traits struct {
	base                               prng // continues the draw (for later traits)
	first, last                        name
	email                              string
	hasEmail, emailVerified, emailAuth bool
	hasPassword, otp, passkey, totp    bool
	image, oauth                       int
	googleAccount                      uint64
}

func (f *Fake) traits(r record) traits {
	base := seedFor(f.opts.Seed, r.id, 0)
	t := traits{first: firstNames[base.intn(len(firstNames))], last: lastNames[base.intn(len(lastNames))]}
	t.hasEmail = !base.chance(5)
	if t.hasEmail {
		local := t.first.slug + "." + t.last.slug
		switch base.intn(4) {
		case 0:
			local = t.first.slug + t.last.slug
		case 1:
			local += strconv.Itoa(base.intn(1000))
		}
		t.email = local + "@" + emailDomains[base.intn(len(emailDomains))]
	}
	t.emailVerified = t.hasEmail && base.chance(80)
	t.emailAuth = t.hasEmail && base.chance(70)
	t.hasPassword = base.chance(50)
	t.otp = t.hasEmail && base.chance(40)
	t.passkey = base.chance(10)
	t.totp = base.chance(5)
	t.image = base.intn(100)
	t.oauth = base.intn(100)
	t.googleAccount = base.next() % 1e15
	t.base = base
	if r.kind == kindAnonymous {
		t.email, t.hasEmail, t.emailVerified, t.emailAuth = "", false, false, false
		t.hasPassword, t.otp, t.passkey, t.totp = false, false, false, false
		t.oauth = 100 // none
	}
	return t
}

// restrictedReason is the user's restricted_reason type ("" when not
// restricted), in Stack Auth's order of precedence.
func (f *Fake) restrictedReason(r record, t traits) string {
	switch {
	case r.kind == kindAnonymous:
		return "anonymous"
	case f.opts.RequireEmailVerification && !t.emailVerified:
		return "email_not_verified"
	case r.kind == kindRestricted:
		return "restricted_by_administrator"
	}
	return ""
}

// appendUser renders the full server user object (the shape Stack Auth's
// GET /api/v1/users/{id} answers, every field present, null where unset) for
// record r, with id as the text of its id. The content is a pure function of
// (seed, id, kind, version, times), so the same user renders identically
// every time.
func (f *Fake) appendUser(dst []byte, id string, r record) []byte {
	key, signedUp, lastActive, version := r.id, r.signedUp, r.lastActive, r.version
	t := f.traits(r)
	base := t.base
	ver := seedFor(f.opts.Seed, key, 1+uint64(version)) // traits an update changes
	first, last := t.first, t.last
	email, hasEmail, emailVerified, emailAuth := t.email, t.hasEmail, t.emailVerified, t.emailAuth
	hasPassword, otp, passkey, totp := t.hasPassword, t.otp, t.passkey, t.totp
	image, oauth, googleAccount := t.image, t.oauth, t.googleAccount
	anonymous := r.kind == kindAnonymous

	dst = append(dst, `{"id":"`...)
	dst = appendRaw(dst, id)
	dst = append(dst, `","primary_email":`...)
	if hasEmail {
		dst = appendString(dst, email)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"primary_email_verified":`...)
	dst = strconv.AppendBool(dst, emailVerified)
	dst = append(dst, `,"primary_email_auth_enabled":`...)
	dst = strconv.AppendBool(dst, emailAuth)

	dst = append(dst, `,"display_name":`...)
	switch n := ver.intn(100); {
	case n < 15 || anonymous:
		dst = append(dst, "null"...)
	case n < 70:
		dst = appendString(dst, first.display+" "+last.display)
	case n < 85:
		dst = appendString(dst, first.display)
	case n < 95:
		dst = appendString(dst, first.display+" "+last.display[:utf8Len1(last.display)]+".")
	default:
		dst = appendString(dst, first.display+` "`+first.slug+`" `+last.display)
	}

	if ver.chance(30) && !anonymous {
		t := f.teams[ver.intn(len(f.teams))]
		dst = append(dst, `,"selected_team":{"id":"`...)
		dst = t.id.appendTo(dst)
		dst = append(dst, `","display_name":`...)
		dst = appendString(dst, t.name)
		dst = append(dst, `,"profile_image_url":null,"created_at_millis":`...)
		dst = strconv.AppendInt(dst, t.createdAt, 10)
		dst = append(dst, `,"client_metadata":null,"client_read_only_metadata":null,"server_metadata":null},"selected_team_id":"`...)
		dst = t.id.appendTo(dst)
		dst = append(dst, '"')
	} else {
		dst = append(dst, `,"selected_team":null,"selected_team_id":null`...)
	}

	dst = append(dst, `,"profile_image_url":`...)
	switch {
	case image < 40:
		dst = append(dst, `"https://avatars.example.com/u/`...)
		dst = key.appendTo(dst)
		dst = append(dst, `.png"`...)
	case image < 45:
		// A (tiny) data: URL, as Stack stores uploaded images.
		dst = append(dst, `"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="`...)
	default:
		dst = append(dst, "null"...)
	}

	dst = append(dst, `,"signed_up_at_millis":`...)
	dst = strconv.AppendInt(dst, signedUp, 10)
	dst = append(dst, `,"has_password":`...)
	dst = strconv.AppendBool(dst, hasPassword)
	dst = append(dst, `,"otp_auth_enabled":`...)
	dst = strconv.AppendBool(dst, otp)
	dst = append(dst, `,"passkey_auth_enabled":`...)
	dst = strconv.AppendBool(dst, passkey)

	dst = append(dst, `,"client_metadata":`...)
	if ver.chance(40) {
		dst = append(dst, `{"theme":"`...)
		dst = append(dst, themes[ver.intn(len(themes))]...)
		dst = append(dst, `","locale":"`...)
		dst = append(dst, locales[ver.intn(len(locales))]...)
		dst = append(dst, `"}`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"client_read_only_metadata":`...)
	if ver.chance(25) {
		dst = append(dst, `{"plan":"`...)
		dst = append(dst, plans[ver.intn(len(plans))]...)
		dst = append(dst, `","seats":`...)
		dst = strconv.AppendInt(dst, int64(1+ver.intn(50)), 10)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"server_metadata":`...)
	if ver.chance(50) {
		dst = append(dst, `{"stripe_customer_id":"cus_`...)
		dst = appendAlnum(dst, &base, 14)
		dst = append(dst, `","revision":`...)
		dst = strconv.AppendUint(dst, uint64(version), 10)
		dst = append(dst, `,"flags":{"beta":`...)
		dst = strconv.AppendBool(dst, ver.chance(20))
		dst = append(dst, `,"risk_score":`...)
		dst = strconv.AppendFloat(dst, float64(ver.intn(1000))/1000, 'f', -1, 64)
		dst = append(dst, `},"notes":`...)
		dst = appendString(dst, "Imported from legacy CRM\n\t<see ticket #"+strconv.Itoa(ver.intn(99999))+">")
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}

	dst = append(dst, `,"last_active_at_millis":`...)
	dst = strconv.AppendInt(dst, lastActive, 10)

	dst = append(dst, `,"oauth_providers":`...)
	switch {
	case oauth < 30:
		dst = append(dst, `[{"id":"google","account_id":"`...)
		dst = strconv.AppendUint(dst, 100000000000000000+googleAccount, 10)
		dst = append(dst, `","email":`...)
		if hasEmail {
			dst = appendString(dst, email)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, `}]`...)
	case oauth < 40:
		dst = append(dst, `[{"id":"github","account_id":"`...)
		dst = strconv.AppendUint(dst, 1000000+googleAccount%90000000, 10)
		dst = append(dst, `","email":null}]`...)
	default:
		dst = append(dst, `[]`...)
	}
	dst = append(dst, `,"auth_with_email":`...)
	dst = strconv.AppendBool(dst, hasPassword || otp)
	dst = append(dst, `,"requires_totp_mfa":`...)
	dst = strconv.AppendBool(dst, totp)

	// Fields of newer Stack Auth versions: anonymous and restricted users,
	// the country code and sign-up risk scores.
	reason := f.restrictedReason(r, t)
	dst = append(dst, `,"is_anonymous":`...)
	dst = strconv.AppendBool(dst, anonymous)
	dst = append(dst, `,"is_restricted":`...)
	dst = strconv.AppendBool(dst, reason != "")
	dst = append(dst, `,"restricted_reason":`...)
	if reason != "" {
		dst = append(dst, `{"type":"`+reason+`"}`...)
	} else {
		dst = append(dst, "null"...)
	}
	if r.kind == kindRestricted {
		dst = append(dst, `,"restricted_by_admin":true,"restricted_by_admin_reason":"Sign-up rule: disposable email domain","restricted_by_admin_private_details":"rule ref `...)
		dst = strconv.AppendInt(dst, int64(base.intn(10000)), 10)
		dst = append(dst, `"`...)
	} else {
		dst = append(dst, `,"restricted_by_admin":false,"restricted_by_admin_reason":null,"restricted_by_admin_private_details":null`...)
	}
	dst = append(dst, `,"country_code":null,"risk_scores":{"sign_up":{"bot":`...)
	dst = strconv.AppendInt(dst, int64(base.intn(100)/90*base.intn(100)), 10)
	dst = append(dst, `,"free_trial_abuse":0}}`...)
	return append(dst, '}')
}

// utf8Len1 is the byte length of the first rune of s.
func utf8Len1(s string) int {
	_, n := utf8.DecodeRuneInString(s)
	return n
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func appendAlnum(dst []byte, p *prng, n int) []byte {
	for range n {
		dst = append(dst, alnum[p.intn(len(alnum))])
	}
	return dst
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendRaw(dst, s)
	return append(dst, '"')
}

// appendRaw appends the JSON-escaped content of s, without quotes.
func appendRaw(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}
