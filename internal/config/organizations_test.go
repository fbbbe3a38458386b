package config

import (
	"strings"
	"testing"
)

func TestOrganizations(t *testing.T) {
	for value, want := range map[string]bool{"": false, "off": false, "on": true} {
		cfg, err := Load(env(map[string]string{"DATABASE_URL": "postgres://x", "USERSYNC_ORGANIZATIONS": value}), true)
		if err != nil {
			t.Fatalf("USERSYNC_ORGANIZATIONS=%q: %v", value, err)
		}
		if cfg.Organizations != want {
			t.Errorf("USERSYNC_ORGANIZATIONS=%q: Organizations %v, want %v", value, cfg.Organizations, want)
		}
	}
	for _, bad := range []string{"ON", "true", "1", "yes", "on "} {
		_, err := Load(env(map[string]string{"DATABASE_URL": "postgres://x", "USERSYNC_ORGANIZATIONS": bad}), true)
		if err == nil {
			t.Errorf("USERSYNC_ORGANIZATIONS=%q: no error", bad)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "USERSYNC_ORGANIZATIONS: ") || strings.Contains(msg, "\n") {
			t.Errorf("USERSYNC_ORGANIZATIONS=%q: error %q should be one line naming the variable", bad, msg)
		}
	}
	for value, off := range map[string]bool{"": true, "chan": false} {
		cfg, err := Load(env(map[string]string{"DATABASE_URL": "postgres://x", "USERSYNC_NOTIFY_CHANNEL": value}), true)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NotifyOff() != off {
			t.Errorf("USERSYNC_NOTIFY_CHANNEL=%q: NotifyOff %v, want %v", value, cfg.NotifyOff(), off)
		}
	}
}
