package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"DATABASE_URL": "postgres://x"}), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Schema != "neon_identity" || c.InternalSchema != "usersync" || c.Listen != ":8080" || c.DBMaxConns != 20 ||
		c.BackfillInterval != 6*time.Hour || c.DeleteMode != DeleteSoft || c.Workers < 1 || c.Enabled() {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.NotifyChannelFor("neon_identity"); got != "neon_identity_users_sync" {
		t.Fatalf("notify channel %q", got)
	}
}

func TestErrorsNameTheVariableAndHideSecrets(t *testing.T) {
	const secret = "ssk_supersecret_value"
	base := map[string]string{"DATABASE_URL": "postgres://x"}
	cases := []struct {
		set     map[string]string
		wantVar string
	}{
		{map[string]string{"DATABASE_URL": ""}, "DATABASE_URL"},
		{map[string]string{"USERSYNC_WORKERS": "abc"}, "USERSYNC_WORKERS"},
		{map[string]string{"USERSYNC_WORKERS": "-1"}, "USERSYNC_WORKERS"},
		{map[string]string{"USERSYNC_DB_MAX_CONNS": "1"}, "USERSYNC_DB_MAX_CONNS"},
		{map[string]string{"USERSYNC_BACKFILL_INTERVAL": "soon"}, "USERSYNC_BACKFILL_INTERVAL"},
		{map[string]string{"USERSYNC_DELETE_MODE": "purge"}, "USERSYNC_DELETE_MODE"},
		{map[string]string{"USERSYNC_SCHEMA": "bad-name"}, "USERSYNC_SCHEMA"},
		{map[string]string{"USERSYNC_SCHEMA": "usersync"}, "USERSYNC_INTERNAL_SCHEMA"},
		{map[string]string{"USERSYNC_LISTEN": "8080"}, "USERSYNC_LISTEN"},
		{map[string]string{"USERSYNC_LOG_FORMAT": "xml"}, "USERSYNC_LOG_FORMAT"},
		{map[string]string{"USERSYNC_UI_USER": "admin"}, "USERSYNC_UI_PASSWORD"},
		{map[string]string{"USERSYNC_REDACT": "id"}, "USERSYNC_REDACT"},
		{map[string]string{"STACK_SECRET_SERVER_KEY": secret}, "STACK_PROJECT_ID"},
		{map[string]string{"STACK_PROJECT_ID": "p", "STACK_SECRET_SERVER_KEY": secret, "STACK_WEBHOOK_SECRET": secret, "STACK_API_URL": "ftp://x"}, "STACK_API_URL"},
		{map[string]string{"CLERK_SECRET_KEY": secret, "CLERK_WEBHOOK_SECRET": secret, "CLERK_API_URL": "https://api.clerk.com"}, "CLERK_API_URL"},
		{map[string]string{"STACK_PROJECT_ID": "p", "STACK_SECRET_SERVER_KEY": secret, "STACK_WEBHOOK_SECRET": secret,
			"CLERK_SECRET_KEY": secret, "CLERK_WEBHOOK_SECRET": secret}, "CLERK_SCHEMA"},
	}
	for _, c := range cases {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range c.set {
			m[k] = v
		}
		_, err := Load(env(m), true)
		if err == nil {
			t.Errorf("%v: no error", c.set)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, c.wantVar+":") || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q should be one line starting with %s", c.set, msg, c.wantVar)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("%v: error leaks a secret: %q", c.set, msg)
		}
	}
}

func TestProvidersAndSchemas(t *testing.T) {
	c, err := Load(env(map[string]string{
		"DATABASE_URL": "postgres://x", "USERSYNC_REDACT": "server_metadata, private_metadata,server_metadata",
		"STACK_PROJECT_ID": "p", "STACK_SECRET_SERVER_KEY": "k", "STACK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "STACK_API_URL": "http://localhost:1/",
		"CLERK_SECRET_KEY": "sk", "CLERK_WEBHOOK_SECRET": "whsec_AAECAwQFBgcICQoLDA0ODw==", "CLERK_SCHEMA": "clerk_users",
		"USERSYNC_NOTIFY_CHANNEL": "",
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stack == nil || c.Stack.Schema != "neon_identity" || c.Stack.APIURL != "http://localhost:1" {
		t.Fatalf("stack: %+v", c.Stack)
	}
	if c.Clerk == nil || c.Clerk.Schema != "clerk_users" || c.Clerk.APIURL != "https://api.clerk.com/v1" || c.WorkOS != nil {
		t.Fatalf("clerk: %+v", c.Clerk)
	}
	if strings.Join(c.Redact, ",") != "server_metadata,private_metadata" {
		t.Fatalf("redact %v", c.Redact)
	}
	if c.NotifyChannelFor("x") != "" {
		t.Fatal("an empty USERSYNC_NOTIFY_CHANNEL turns notifications off")
	}
}

func TestDeleteGuard(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://x"}
	c, err := Load(env(base), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.DeleteGuard != DefaultDeleteGuard || DefaultDeleteGuard != 0.1 {
		t.Fatalf("default USERSYNC_DELETE_GUARD = %v, want 0.1", c.DeleteGuard)
	}
	for v, want := range map[string]float64{"0": 0, "1": 1, "0.25": 0.25, " 0.5 ": 0.5, "1e-1": 0.1} {
		m := map[string]string{"DATABASE_URL": "postgres://x", "USERSYNC_DELETE_GUARD": v}
		c, err := Load(env(m), true)
		if err != nil {
			t.Errorf("USERSYNC_DELETE_GUARD=%q: %v", v, err)
			continue
		}
		if c.DeleteGuard != want {
			t.Errorf("USERSYNC_DELETE_GUARD=%q: got %v, want %v", v, c.DeleteGuard, want)
		}
	}
	for _, v := range []string{"abc", "-0.1", "1.01", "10%", "NaN", "Inf", "0,1"} {
		m := map[string]string{"DATABASE_URL": "postgres://x", "USERSYNC_DELETE_GUARD": v}
		_, err := Load(env(m), true)
		if err == nil {
			t.Errorf("USERSYNC_DELETE_GUARD=%q accepted", v)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "USERSYNC_DELETE_GUARD: ") || strings.Contains(msg, "\n") {
			t.Errorf("USERSYNC_DELETE_GUARD=%q: error %q is not one line naming the variable", v, msg)
		}
	}
}
