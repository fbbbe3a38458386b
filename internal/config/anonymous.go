package config

import "fmt"

// Values of USERSYNC_ANONYMOUS.
const (
	// AnonymousInclude syncs Stack Auth's anonymous users like any other
	// (the default).
	AnonymousInclude = "include"
	// AnonymousExclude leaves Stack Auth's anonymous users out of users_sync,
	// on the webhook and the backfill paths alike; restricted users are kept.
	AnonymousExclude = "exclude"
)

// loadAnonymous reads USERSYNC_ANONYMOUS into c.Anonymous.
func (c *Config) loadAnonymous(getenv func(string) string) error {
	switch v := getenv("USERSYNC_ANONYMOUS"); v {
	case "", AnonymousInclude:
		c.Anonymous = AnonymousInclude
	case AnonymousExclude:
		c.Anonymous = AnonymousExclude
	default:
		return &Error{"USERSYNC_ANONYMOUS", fmt.Sprintf("%q must be include or exclude", v)}
	}
	return nil
}

// ExcludeAnonymous reports whether Stack Auth's anonymous users are left
// out (USERSYNC_ANONYMOUS=exclude).
func (c *Config) ExcludeAnonymous() bool { return c.Anonymous == AnonymousExclude }
