package config

import (
	"encoding/base64"
	"strings"
	"testing"
)

// svixSecret returns a Svix secret with n bytes of key material.
func svixSecret(n int) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

func load(t *testing.T, set map[string]string) error {
	t.Helper()
	m := map[string]string{"DATABASE_URL": "postgres://x"}
	for k, v := range set {
		m[k] = v
	}
	_, err := Load(env(m), true)
	return err
}

// TestWeakSecretsRefused (README "Configuration"): webhook secrets with fewer than 16 bytes
// of key material and River UI passwords shorter than 12 characters stop
// the process with one line naming the variable, without the value.
func TestWeakSecretsRefused(t *testing.T) {
	stack := func(wh string) map[string]string {
		return map[string]string{"STACK_PROJECT_ID": "p", "STACK_SECRET_SERVER_KEY": "ssk_key", "STACK_WEBHOOK_SECRET": wh}
	}
	clerk := func(wh string) map[string]string {
		return map[string]string{"CLERK_SECRET_KEY": "sk_test_key", "CLERK_WEBHOOK_SECRET": wh}
	}
	workos := func(wh string) map[string]string {
		return map[string]string{"WORKOS_API_KEY": "sk_test_key", "WORKOS_WEBHOOK_SECRET": wh}
	}
	ui := func(pw string) map[string]string {
		return map[string]string{"USERSYNC_UI_USER": "ops", "USERSYNC_UI_PASSWORD": pw}
	}
	cases := []struct {
		name    string
		set     map[string]string
		wantVar string // "" = accepted
	}{
		{"stack whsec_ alone", stack("whsec_"), "STACK_WEBHOOK_SECRET"},
		{"stack 15 bytes", stack(svixSecret(15)), "STACK_WEBHOOK_SECRET"},
		{"stack not base64", stack("whsec_not*base64!!secretvalue"), "STACK_WEBHOOK_SECRET"},
		{"stack 16 bytes", stack(svixSecret(16)), ""},
		{"stack 32 bytes", stack(svixSecret(32)), ""},
		{"clerk whsec_ alone", clerk("whsec_"), "CLERK_WEBHOOK_SECRET"},
		{"clerk 8 bytes", clerk(svixSecret(8)), "CLERK_WEBHOOK_SECRET"},
		{"clerk 24 bytes", clerk(svixSecret(24)), ""},
		{"workos 15 bytes", workos(strings.Repeat("w", 15)), "WORKOS_WEBHOOK_SECRET"},
		{"workos 16 bytes", workos(strings.Repeat("w", 16)), ""},
		{"ui 1 character", ui("x"), "USERSYNC_UI_PASSWORD"},
		{"ui 11 characters", ui("hunter2hunt"), "USERSYNC_UI_PASSWORD"},
		{"ui 11 multibyte characters", ui(strings.Repeat("é", 11)), "USERSYNC_UI_PASSWORD"},
		{"ui 12 characters", ui("correct hors"), ""},
	}
	for _, c := range cases {
		err := load(t, c.set)
		if c.wantVar == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, c.wantVar+":") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q should be one line starting with %s", c.name, msg, c.wantVar)
		}
		for _, v := range c.set {
			if len(v) > 6 && strings.Contains(msg, v) {
				t.Errorf("%s: error %q echoes a value", c.name, msg)
			}
		}
	}
}

// TestAPIURLNeverEchoed (README "Configuration"): an API URL error never prints the URL,
// nor any part of credentials in it.
func TestAPIURLNeverEchoed(t *testing.T) {
	const pw = "urlPassw0rdSecret"
	for _, v := range []string{"https://user:" + pw + "@api.example.com", "ftp://user:" + pw + "@api.example.com",
		"https://api.example.com/?token=" + pw, "user:" + pw + "@api.example.com", "https://api.example.com/" + pw + "#x"} {
		for _, set := range []map[string]string{
			{"STACK_PROJECT_ID": "p", "STACK_SECRET_SERVER_KEY": "k", "STACK_WEBHOOK_SECRET": svixSecret(32), "STACK_API_URL": v},
			{"CLERK_SECRET_KEY": "k", "CLERK_WEBHOOK_SECRET": svixSecret(32), "CLERK_API_URL": v},
			{"WORKOS_API_KEY": "k", "WORKOS_WEBHOOK_SECRET": strings.Repeat("w", 20), "WORKOS_API_URL": v},
		} {
			err := load(t, set)
			if err == nil {
				t.Errorf("%v: accepted", set)
				continue
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "api.example.com") {
				t.Errorf("error %q echoes the URL", err)
			}
		}
	}
	// A URL without a /v1 suffix is reported without the URL too.
	err := load(t, map[string]string{"CLERK_SECRET_KEY": "k", "CLERK_WEBHOOK_SECRET": svixSecret(32), "CLERK_API_URL": "https://" + pw + ".example.com/v2"})
	if err == nil || strings.Contains(err.Error(), pw) || !strings.HasPrefix(err.Error(), "CLERK_API_URL:") {
		t.Errorf("CLERK_API_URL without /v1: %v", err)
	}
}

// TestSecretsListsEveryCredential: the redaction list holds every
// credential, including the DATABASE_URL password in either form.
func TestSecretsListsEveryCredential(t *testing.T) {
	for _, dbURL := range []string{"postgres://u:dbPassw0rd@localhost/app", "host=localhost user=u password=dbPassw0rd dbname=app"} {
		c, err := Load(env(map[string]string{"DATABASE_URL": dbURL,
			"USERSYNC_UI_USER": "ops", "USERSYNC_UI_PASSWORD": "uiPassword123",
			"STACK_PROJECT_ID": "p", "STACK_SECRET_SERVER_KEY": "ssk_stack", "STACK_WEBHOOK_SECRET": svixSecret(32),
			"CLERK_SECRET_KEY": "sk_clerk", "CLERK_WEBHOOK_SECRET": svixSecret(24), "CLERK_SCHEMA": "clerk",
			"WORKOS_API_KEY": "sk_workos", "WORKOS_WEBHOOK_SECRET": strings.Repeat("w", 20), "WORKOS_SCHEMA": "workos"}), true)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(c.Secrets(), "\n")
		for _, want := range []string{"dbPassw0rd", "uiPassword123", "ssk_stack", svixSecret(32), "sk_clerk", svixSecret(24), "sk_workos", strings.Repeat("w", 20)} {
			if !strings.Contains(got, want) {
				t.Errorf("Secrets() lacks %q (DATABASE_URL %q)", want, dbURL)
			}
		}
	}
}
