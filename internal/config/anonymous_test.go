package config

import (
	"strings"
	"testing"
)

func TestAnonymous(t *testing.T) {
	for _, c := range []struct {
		value   *string
		want    string
		exclude bool
	}{
		{nil, AnonymousInclude, false},
		{ptr(""), AnonymousInclude, false},
		{ptr("include"), AnonymousInclude, false},
		{ptr("exclude"), AnonymousExclude, true},
	} {
		m := map[string]string{"DATABASE_URL": "postgres://x"}
		if c.value != nil {
			m["USERSYNC_ANONYMOUS"] = *c.value
		}
		cfg, err := Load(env(m), true)
		if err != nil {
			t.Fatalf("USERSYNC_ANONYMOUS=%v: %v", c.value, err)
		}
		if cfg.Anonymous != c.want || cfg.ExcludeAnonymous() != c.exclude {
			t.Errorf("USERSYNC_ANONYMOUS=%v: Anonymous %q, ExcludeAnonymous %v; want %q, %v", c.value, cfg.Anonymous, cfg.ExcludeAnonymous(), c.want, c.exclude)
		}
	}
	for _, bad := range []string{"Exclude", "no", "exclude ", "true"} {
		_, err := Load(env(map[string]string{"DATABASE_URL": "postgres://x", "USERSYNC_ANONYMOUS": bad}), true)
		if err == nil {
			t.Errorf("USERSYNC_ANONYMOUS=%q: no error", bad)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "USERSYNC_ANONYMOUS: ") || strings.Contains(msg, "\n") {
			t.Errorf("USERSYNC_ANONYMOUS=%q: error %q should be one line naming the variable", bad, msg)
		}
	}
}

func ptr(s string) *string { return &s }
