package clerkfake

import (
	"strings"
	"time"
)

// userJSON is Clerk's User object, in the field order of the documented
// user.created example. It carries exactly the keys of the Backend API's
// User schema (which allows no others): the legacy birthday and gender keys
// of old webhook examples are not part of it.
type userJSON struct {
	CreatedAt                     int64          `json:"created_at"`
	EmailAddresses                []emailJSON    `json:"email_addresses"`
	ExternalAccounts              []any          `json:"external_accounts"`
	ExternalID                    *string        `json:"external_id"`
	FirstName                     *string        `json:"first_name"`
	ID                            string         `json:"id"`
	ImageURL                      string         `json:"image_url"`
	HasImage                      bool           `json:"has_image"`
	LastName                      *string        `json:"last_name"`
	LastSignInAt                  *int64         `json:"last_sign_in_at"`
	LastActiveAt                  *int64         `json:"last_active_at"`
	Object                        string         `json:"object"`
	PasswordEnabled               bool           `json:"password_enabled"`
	PhoneNumbers                  []any          `json:"phone_numbers"`
	PrimaryEmailAddressID         *string        `json:"primary_email_address_id"`
	PrimaryPhoneNumberID          *string        `json:"primary_phone_number_id"`
	PrimaryWeb3WalletID           *string        `json:"primary_web3_wallet_id"`
	PrivateMetadata               map[string]any `json:"private_metadata"`
	ProfileImageURL               string         `json:"profile_image_url"`
	PublicMetadata                map[string]any `json:"public_metadata"`
	TwoFactorEnabled              bool           `json:"two_factor_enabled"`
	TOTPEnabled                   bool           `json:"totp_enabled"`
	BackupCodeEnabled             bool           `json:"backup_code_enabled"`
	UnsafeMetadata                map[string]any `json:"unsafe_metadata"`
	UpdatedAt                     int64          `json:"updated_at"`
	Username                      *string        `json:"username"`
	Web3Wallets                   []any          `json:"web3_wallets"`
	Passkeys                      []any          `json:"passkeys"`
	SAMLAccounts                  []any          `json:"saml_accounts"`
	EnterpriseAccounts            []any          `json:"enterprise_accounts"`
	Banned                        bool           `json:"banned"`
	Locked                        bool           `json:"locked"`
	LockoutExpiresInSeconds       *int64         `json:"lockout_expires_in_seconds"`
	VerificationAttemptsRemaining int            `json:"verification_attempts_remaining"`
	DeleteSelfEnabled             bool           `json:"delete_self_enabled"`
	CreateOrganizationEnabled     bool           `json:"create_organization_enabled"`
	CreateOrganizationsLimit      *int           `json:"create_organizations_limit"`
	MFAEnabledAt                  *int64         `json:"mfa_enabled_at"`
	MFADisabledAt                 *int64         `json:"mfa_disabled_at"`
	LegalAcceptedAt               *int64         `json:"legal_accepted_at"`
}

type emailJSON struct {
	EmailAddress         string           `json:"email_address"`
	ID                   string           `json:"id"`
	LinkedTo             []any            `json:"linked_to"`
	Object               string           `json:"object"`
	Reserved             bool             `json:"reserved"`
	Verification         verificationJSON `json:"verification"`
	MatchesSSOConnection bool             `json:"matches_sso_connection"`
	CreatedAt            int64            `json:"created_at"`
	UpdatedAt            int64            `json:"updated_at"`
}

// verificationJSON is a one-time-code verification (verification_otp); the
// object key tells the verification kinds apart.
type verificationJSON struct {
	Object   string `json:"object"`
	Status   string `json:"status"`
	Strategy string `json:"strategy"`
	Attempts *int   `json:"attempts"`
	ExpireAt *int64 `json:"expire_at"`
}

var (
	firstNames = []string{"Example", "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken",
		"Radia", "Edsger", "Hedy", "Donald", "Katherine", "Tim", "Mary", "John", "Sophie", "Yukihiro", "Zoë", "José"}
	lastNames = []string{"Example", "Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Ritchie", "Allen",
		"Thompson", "Perlman", "Dijkstra", "Lamarr", "Knuth", "Johnson", "Berners-Lee", "Jackson", "McCarthy", "Wilson",
		"Matsumoto", "Nuñez", "O'Brien"}
	plans   = []string{"free", "pro", "team", "enterprise"}
	domains = []string{"example.org", "example.com", "example.net"}
)

// newUserLocked makes a realistic user created at createdMs. One user in
// forty is banned and one in forty locked. About one user in ten has only a
// username, one in twenty neither names nor username, one
// in eight several email addresses with the primary not first, and one in
// twenty-five no email at all (a phone-only sign-up).
func (f *Fake) newUserLocked(createdMs int64) *fakeUser {
	f.seq++
	created := time.UnixMilli(createdMs)
	id := "user_" + f.ksuidLocked(created)
	first := firstNames[f.rng.IntN(len(firstNames))]
	last := lastNames[f.rng.IntN(len(lastNames))]
	local := strings.ToLower(strings.NewReplacer("'", "", "ë", "e", "é", "e", "ñ", "n").Replace(first + "." + last))
	o := userJSON{
		ID:                            id,
		Object:                        "user",
		CreatedAt:                     createdMs,
		UpdatedAt:                     createdMs,
		ImageURL:                      "https://img.clerk.com/" + f.base62(32),
		ProfileImageURL:               "https://www.gravatar.com/avatar?d=mp",
		PasswordEnabled:               f.rng.IntN(3) != 0,
		EmailAddresses:                []emailJSON{},
		ExternalAccounts:              []any{},
		PhoneNumbers:                  []any{},
		Web3Wallets:                   []any{},
		Passkeys:                      []any{},
		SAMLAccounts:                  []any{},
		EnterpriseAccounts:            []any{},
		PublicMetadata:                map[string]any{},
		PrivateMetadata:               map[string]any{},
		UnsafeMetadata:                map[string]any{},
		VerificationAttemptsRemaining: 100,
		DeleteSelfEnabled:             true,
		CreateOrganizationEnabled:     true,
	}
	switch r := f.rng.IntN(20); {
	case r < 2: // username only
		un := local[:strings.IndexByte(local, '.')] + f.base62(4)
		o.Username = &un
	case r < 3: // no names, no username
	case r < 4: // first name only, empty last name
		o.FirstName, o.LastName = &first, ptr("")
	default:
		o.FirstName, o.LastName = &first, &last
		if f.rng.IntN(4) == 0 {
			un := strings.ReplaceAll(local, ".", "_")
			o.Username = &un
		}
	}
	if f.rng.IntN(25) != 0 {
		n := 1
		if f.rng.IntN(8) == 0 {
			n = 2 + f.rng.IntN(2)
		}
		for i := 0; i < n; i++ {
			addr := local + "+" + f.base62(6) + "@" + domains[f.rng.IntN(len(domains))]
			o.EmailAddresses = append(o.EmailAddresses, emailJSON{
				EmailAddress: strings.ToLower(addr),
				ID:           "idn_" + f.ksuidLocked(created),
				LinkedTo:     []any{},
				Object:       "email_address",
				Verification: verificationJSON{Object: "verification_otp", Status: "verified", Strategy: "email_code", Attempts: ptrInt(1)},
				CreatedAt:    createdMs,
				UpdatedAt:    createdMs,
			})
		}
		primary := o.EmailAddresses[len(o.EmailAddresses)-1].ID // not first when several
		o.PrimaryEmailAddressID = &primary
	} else {
		phoneID := "idn_" + f.ksuidLocked(created)
		o.PrimaryPhoneNumberID = &phoneID
		o.PhoneNumbers = append(o.PhoneNumbers, map[string]any{
			"id": phoneID, "object": "phone_number", "phone_number": "+1555" + strings.Repeat("0", 3) + f.digits(4),
			"reserved_for_second_factor": false, "default_second_factor": false, "reserved": false,
			"verification": map[string]any{"object": "verification_otp", "status": "verified", "strategy": "phone_code", "attempts": 1, "expire_at": nil},
			"linked_to":    []any{}, "backup_codes": nil, "created_at": createdMs, "updated_at": createdMs,
		})
	}
	if f.rng.IntN(3) == 0 {
		ext := f.digits(6)
		o.ExternalID = &ext
	}
	if f.rng.IntN(2) == 0 {
		t := createdMs + int64(f.rng.IntN(1000))
		o.LastSignInAt, o.LastActiveAt = &t, &t
	}
	if f.rng.IntN(5) == 0 {
		o.PublicMetadata = map[string]any{"plan": plans[f.rng.IntN(len(plans))]}
		o.PrivateMetadata = map[string]any{"stripe_customer_id": "cus_" + f.base62(14)}
	}
	// Some users are banned or locked: they are users all the same (listed,
	// fetched, sent in webhooks).
	switch f.rng.IntN(40) {
	case 0:
		o.Banned = true
	case 1:
		o.Locked = true
		secs := int64(1800)
		o.LockoutExpiresInSeconds = &secs
	}
	return &fakeUser{seq: f.seq, obj: o}
}

func (f *Fake) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + f.rng.IntN(10))
	}
	return string(b)
}

func ptr(s string) *string { return &s }

func ptrInt(i int) *int { return &i }
