// Package config reads usersync's configuration from the environment
// (README "Configuration"). A missing or malformed value is reported as one line naming the
// variable and what is wrong; secret values are never part of an error.
package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersync/usersync/provider"
)

// Delete modes for USERSYNC_DELETE_MODE.
const (
	DeleteSoft = "soft"
	DeleteHard = "hard"
)

// Config is the whole process configuration.
type Config struct {
	DatabaseURL      string
	Schema           string // USERSYNC_SCHEMA
	InternalSchema   string // USERSYNC_INTERNAL_SCHEMA
	Listen           string // USERSYNC_LISTEN
	Workers          int    // USERSYNC_WORKERS
	DBMaxConns       int32  // USERSYNC_DB_MAX_CONNS
	BackfillInterval time.Duration
	DeleteMode       string
	Redact           []string
	UIUser           string
	UIPassword       string
	LogFormat        string // "text" or "json"; "" = decide by terminal
	// NotifyChannel is the pg_notify channel for changes; "" = off.
	NotifyChannel    string
	notifyChannelSet bool
	// Anonymous is USERSYNC_ANONYMOUS: AnonymousInclude or AnonymousExclude.
	Anonymous string
	// Organizations is USERSYNC_ORGANIZATIONS=on: organizations and
	// memberships are synced too (docs/data-model.md, "Organizations").
	Organizations bool

	Stack  *StackConfig
	Clerk  *ClerkConfig
	WorkOS *WorkOSConfig

	// DeleteGuard (USERSYNC_DELETE_GUARD) is the largest share, 0..1, of a
	// provider's live users that one backfill run may infer deleted (when
	// that is also more than 10 rows) before the run is held
	// for confirmation.
	DeleteGuard float64

	// RateLimits are the enabled providers' STACK_RATE_LIMIT,
	// CLERK_RATE_LIMIT and WORKOS_RATE_LIMIT (requests per second across all
	// processes), by provider name; a provider without one uses its
	// default.
	RateLimits map[string]float64
}

// StackConfig is Stack Auth's configuration; nil when Stack Auth is disabled.
type StackConfig struct {
	ProjectID, SecretServerKey, WebhookSecret, APIURL string
	Schema                                            string
}

// ClerkConfig is Clerk's configuration; nil when Clerk is disabled.
type ClerkConfig struct {
	SecretKey, WebhookSecret, APIURL string
	Schema                           string
}

// WorkOSConfig is WorkOS's configuration; nil when WorkOS is disabled.
type WorkOSConfig struct {
	APIKey, WebhookSecret, APIURL string
	Schema                        string
}

// Error is a configuration problem with one variable.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

var identRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// DefaultWorkers is the default number of concurrent sync workers: syncs
// wait on provider HTTP calls, and the more of them are in flight, the more
// share each River fetch, skip-fetch read and group-committed transaction
// (measured on 2 cores against a provider answering at once: 512 workers
// drain a backlog about 1.6 times as fast as 128, with about a third less
// CPU per user in usersync and PostgreSQL together; 128 drained twice as
// fast as 32). A waiting sync holds no database connection, and the
// provider's rate limit, not this number, bounds the request rate.
func DefaultWorkers() int {
	n := 256 * runtime.NumCPU()
	return min(max(n, 256), 1024)
}

// Load reads the configuration through lookupEnv (os.LookupEnv in
// production). requireDB says whether DATABASE_URL is mandatory (it is not
// for demo).
func Load(lookupEnv func(string) (string, bool), requireDB bool) (*Config, error) {
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	c := &Config{
		DatabaseURL:      strings.TrimSpace(getenv("DATABASE_URL")),
		Schema:           "neon_identity",
		InternalSchema:   "usersync",
		Listen:           ":8080",
		Workers:          DefaultWorkers(),
		DBMaxConns:       20,
		BackfillInterval: 6 * time.Hour,
		DeleteMode:       DeleteSoft,
	}
	if requireDB && c.DatabaseURL == "" {
		return nil, &Error{"DATABASE_URL", "is required (the Postgres database to sync users into)"}
	}
	var err error
	if c.Schema, err = ident(getenv, "USERSYNC_SCHEMA", c.Schema); err != nil {
		return nil, err
	}
	if c.InternalSchema, err = ident(getenv, "USERSYNC_INTERNAL_SCHEMA", c.InternalSchema); err != nil {
		return nil, err
	}
	if len(c.InternalSchema) > 46 {
		return nil, &Error{"USERSYNC_INTERNAL_SCHEMA", "must be at most 46 characters (River's limit)"}
	}
	if v := getenv("USERSYNC_LISTEN"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return nil, &Error{"USERSYNC_LISTEN", fmt.Sprintf("%q is not a host:port address (e.g. :8080)", v)}
		}
		c.Listen = v
	}
	if v := getenv("USERSYNC_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return nil, &Error{"USERSYNC_WORKERS", fmt.Sprintf("%q is not a whole number from 0 to 10000", v)}
		}
		c.Workers = n
	}
	if v := getenv("USERSYNC_DB_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 10000 {
			return nil, &Error{"USERSYNC_DB_MAX_CONNS", fmt.Sprintf("%q is not a whole number from 2 to 10000", v)}
		}
		c.DBMaxConns = int32(n)
	}
	if v := getenv("USERSYNC_BACKFILL_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if v == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 || (d > 0 && d < time.Minute) {
			return nil, &Error{"USERSYNC_BACKFILL_INTERVAL", fmt.Sprintf("%q is not a duration of at least 1m (e.g. 6h) or 0 for never", v)}
		}
		c.BackfillInterval = d
	}
	if v := getenv("USERSYNC_DELETE_MODE"); v != "" {
		if v != DeleteSoft && v != DeleteHard {
			return nil, &Error{"USERSYNC_DELETE_MODE", fmt.Sprintf("%q must be soft or hard", v)}
		}
		c.DeleteMode = v
	}
	if v := getenv("USERSYNC_REDACT"); v != "" {
		for k := range strings.SplitSeq(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if k == "id" {
				return nil, &Error{"USERSYNC_REDACT", "cannot drop \"id\": it identifies the user"}
			}
			if !slices.Contains(c.Redact, k) {
				c.Redact = append(c.Redact, k)
			}
		}
	}
	c.UIUser, c.UIPassword = getenv("USERSYNC_UI_USER"), getenv("USERSYNC_UI_PASSWORD")
	if (c.UIUser == "") != (c.UIPassword == "") {
		if c.UIUser == "" {
			return nil, &Error{"USERSYNC_UI_USER", "must be set together with USERSYNC_UI_PASSWORD"}
		}
		return nil, &Error{"USERSYNC_UI_PASSWORD", "must be set together with USERSYNC_UI_USER"}
	}
	if strings.Contains(c.UIUser, ":") {
		return nil, &Error{"USERSYNC_UI_USER", "must not contain ':'"}
	}
	if v := getenv("USERSYNC_LOG_FORMAT"); v != "" {
		if v != "text" && v != "json" {
			return nil, &Error{"USERSYNC_LOG_FORMAT", fmt.Sprintf("%q must be text or json", v)}
		}
		c.LogFormat = v
	}
	if c.DeleteGuard, err = deleteGuard(getenv); err != nil {
		return nil, err
	}
	if err := c.loadProviders(getenv); err != nil {
		return nil, err
	}
	if err := c.loadAnonymous(getenv); err != nil {
		return nil, err
	}
	switch v := getenv("USERSYNC_ORGANIZATIONS"); v {
	case "", "off":
	case "on":
		c.Organizations = true
	default:
		return nil, &Error{"USERSYNC_ORGANIZATIONS", fmt.Sprintf("%q must be on or off", v)}
	}
	if err := c.loadRateLimits(getenv); err != nil {
		return nil, err
	}
	if err := c.checkStrength(); err != nil {
		return nil, err
	}
	if v, ok := lookupEnv("USERSYNC_NOTIFY_CHANNEL"); ok {
		if v != "" && (len(v) > 63 || strings.ContainsAny(v, "\x00")) {
			return nil, &Error{"USERSYNC_NOTIFY_CHANNEL", "must be at most 63 bytes"}
		}
		c.NotifyChannel, c.notifyChannelSet = v, true
	}
	return c, nil
}

// NotifyOff reports whether change notifications are off
// (USERSYNC_NOTIFY_CHANNEL set to empty): then organizations_sync and
// memberships_sync send none either.
func (c *Config) NotifyOff() bool { return c.notifyChannelSet && c.NotifyChannel == "" }

// NotifyChannelFor returns the change-notification channel for a target
// schema: the configured one, or "<schema>_users_sync" by default ("" = off).
func (c *Config) NotifyChannelFor(schema string) string {
	if c.notifyChannelSet {
		return c.NotifyChannel
	}
	return schema + "_users_sync"
}

func ident(getenv func(string) string, name, def string) (string, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	if !identRe.MatchString(v) || len(v) > 63 {
		return "", &Error{name, fmt.Sprintf("%q is not a valid schema name (letters, digits, _; not starting with a digit; at most 63)", v)}
	}
	return v, nil
}

func (c *Config) loadProviders(getenv func(string) string) error {
	type group struct {
		name string
		vars []string
	}
	// A provider is enabled when its credentials are set; a partial set is an error.
	check := func(g group) (bool, error) {
		set := 0
		for _, v := range g.vars {
			if strings.TrimSpace(getenv(v)) != "" {
				set++
			}
		}
		if set == 0 {
			return false, nil
		}
		for _, v := range g.vars {
			if strings.TrimSpace(getenv(v)) == "" {
				return false, &Error{v, fmt.Sprintf("is required when %s is enabled (the other %s variables are set)", g.name, g.name)}
			}
		}
		return true, nil
	}
	url := func(name, def string) (string, error) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def, nil
		}
		// The value is never echoed: a URL may hold credentials.
		if _, err := provider.ParseAPIURL(v); err != nil {
			return "", &Error{name, err.Error()}
		}
		return strings.TrimRight(v, "/"), nil
	}
	schemas := map[string]string{}
	schemaFor := func(prov, name string) (string, error) {
		s, err := ident(getenv, name, c.Schema)
		if err != nil {
			return "", err
		}
		if other, ok := schemas[s]; ok {
			return "", &Error{name, fmt.Sprintf("%s and %s would both sync into schema %q; give each its own (%s_SCHEMA)", other, prov, s, strings.ToUpper(prov))}
		}
		schemas[s] = prov
		return s, nil
	}

	if on, err := check(group{"Stack Auth", []string{"STACK_PROJECT_ID", "STACK_SECRET_SERVER_KEY", "STACK_WEBHOOK_SECRET"}}); err != nil {
		return err
	} else if on {
		u, err := url("STACK_API_URL", "https://api.stack-auth.com")
		if err != nil {
			return err
		}
		s, err := schemaFor("stackauth", "STACK_SCHEMA")
		if err != nil {
			return err
		}
		c.Stack = &StackConfig{strings.TrimSpace(getenv("STACK_PROJECT_ID")), strings.TrimSpace(getenv("STACK_SECRET_SERVER_KEY")),
			strings.TrimSpace(getenv("STACK_WEBHOOK_SECRET")), u, s}
	}
	if on, err := check(group{"Clerk", []string{"CLERK_SECRET_KEY", "CLERK_WEBHOOK_SECRET"}}); err != nil {
		return err
	} else if on {
		u, err := url("CLERK_API_URL", "https://api.clerk.com/v1")
		if err != nil {
			return err
		}
		if !strings.HasSuffix(u, "/v1") {
			return &Error{"CLERK_API_URL", "must end in /v1 (e.g. https://api.clerk.com/v1)"}
		}
		s, err := schemaFor("clerk", "CLERK_SCHEMA")
		if err != nil {
			return err
		}
		c.Clerk = &ClerkConfig{strings.TrimSpace(getenv("CLERK_SECRET_KEY")), strings.TrimSpace(getenv("CLERK_WEBHOOK_SECRET")), u, s}
	}
	if on, err := check(group{"WorkOS", []string{"WORKOS_API_KEY", "WORKOS_WEBHOOK_SECRET"}}); err != nil {
		return err
	} else if on {
		u, err := url("WORKOS_API_URL", "https://api.workos.com")
		if err != nil {
			return err
		}
		s, err := schemaFor("workos", "WORKOS_SCHEMA")
		if err != nil {
			return err
		}
		c.WorkOS = &WorkOSConfig{strings.TrimSpace(getenv("WORKOS_API_KEY")), strings.TrimSpace(getenv("WORKOS_WEBHOOK_SECRET")), u, s}
	}
	if s := c.Schema; s == c.InternalSchema {
		return &Error{"USERSYNC_INTERNAL_SCHEMA", fmt.Sprintf("must differ from the target schema %q", s)}
	}
	for s := range schemas {
		if s == c.InternalSchema {
			return &Error{"USERSYNC_INTERNAL_SCHEMA", fmt.Sprintf("must differ from the target schema %q", s)}
		}
	}
	return nil
}

// Enabled reports whether at least one provider is configured.
func (c *Config) Enabled() bool { return c.Stack != nil || c.Clerk != nil || c.WorkOS != nil }

// MinUIPasswordLen is the shortest River UI password accepted, in
// characters (README "Configuration").
const MinUIPasswordLen = 12

// checkStrength refuses weak secrets (README "Configuration"): webhook signing secrets with
// fewer than provider.MinWebhookSecretBytes bytes of key material (a Svix
// secret is "whsec_" + base64, counted decoded; a WorkOS secret is a plain
// string, counted in bytes) and a River UI password shorter than
// MinUIPasswordLen characters. Errors name the variable, never the value.
func (c *Config) checkStrength() error {
	svix := func(name, v string) error {
		switch n := provider.SvixKeyBytes(v); {
		case n < 0:
			return &Error{name, "is not a Svix signing secret (whsec_ followed by base64)"}
		case n < provider.MinWebhookSecretBytes:
			return &Error{name, fmt.Sprintf("has %d bytes of key material; at least %d are needed (copy the whole secret from the provider's dashboard)", n, provider.MinWebhookSecretBytes)}
		}
		return nil
	}
	if c.Stack != nil {
		if err := svix("STACK_WEBHOOK_SECRET", c.Stack.WebhookSecret); err != nil {
			return err
		}
	}
	if c.Clerk != nil {
		if err := svix("CLERK_WEBHOOK_SECRET", c.Clerk.WebhookSecret); err != nil {
			return err
		}
	}
	if c.WorkOS != nil {
		if n := len(c.WorkOS.WebhookSecret); n < provider.MinWebhookSecretBytes {
			return &Error{"WORKOS_WEBHOOK_SECRET", fmt.Sprintf("has %d bytes; at least %d are needed (copy the whole secret from the WorkOS dashboard)", n, provider.MinWebhookSecretBytes)}
		}
	}
	if c.UIPassword != "" && utf8.RuneCountInString(c.UIPassword) < MinUIPasswordLen {
		return &Error{"USERSYNC_UI_PASSWORD", fmt.Sprintf("is shorter than %d characters", MinUIPasswordLen)}
	}
	return nil
}

// Secrets returns every credential the configuration holds: provider keys,
// webhook secrets, the River UI password and the password in DATABASE_URL.
// They are scrubbed from any text usersync logs or stores.
func (c *Config) Secrets() []string {
	var out []string
	add := func(vs ...string) {
		for _, v := range vs {
			if v != "" {
				out = append(out, v)
			}
		}
	}
	add(c.UIPassword)
	if c.Stack != nil {
		add(c.Stack.SecretServerKey, c.Stack.WebhookSecret)
	}
	if c.Clerk != nil {
		add(c.Clerk.SecretKey, c.Clerk.WebhookSecret)
	}
	if c.WorkOS != nil {
		add(c.WorkOS.APIKey, c.WorkOS.WebhookSecret)
	}
	if c.DatabaseURL != "" {
		if pc, err := pgconn.ParseConfig(c.DatabaseURL); err == nil {
			add(pc.Password)
		}
		if u, err := url.Parse(c.DatabaseURL); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				add(pw)
			}
		}
	}
	return out
}

// DefaultDeleteGuard is USERSYNC_DELETE_GUARD's default: a backfill run may
// infer at most a tenth of a provider's live users deleted without an
// operator's confirmation.
const DefaultDeleteGuard = 0.1

// deleteGuard reads USERSYNC_DELETE_GUARD: a fraction from 0 to 1.
func deleteGuard(getenv func(string) string) (float64, error) {
	v := strings.TrimSpace(getenv("USERSYNC_DELETE_GUARD"))
	if v == "" {
		return DefaultDeleteGuard, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return 0, &Error{"USERSYNC_DELETE_GUARD", fmt.Sprintf("%q is not a number from 0 to 1 (the largest share of live users one backfill may delete, e.g. 0.1)", v)}
	}
	return f, nil
}
