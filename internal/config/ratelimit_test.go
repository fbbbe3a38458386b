package config

import (
	"errors"
	"strings"
	"testing"
)

// TestRateLimits: *_RATE_LIMIT takes a positive number of requests per
// second (kept for enabled providers only); anything else stops the start
// with an error naming the variable.
func TestRateLimits(t *testing.T) {
	clerk := map[string]string{"DATABASE_URL": "postgres://x", "CLERK_SECRET_KEY": "sk_test_x",
		"CLERK_WEBHOOK_SECRET": "whsec_" + strings.Repeat("QUFB", 8)}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range clerk {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Load(env(with()), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RateLimits) != 0 {
		t.Errorf("RateLimits without variables = %v, want none (defaults)", c.RateLimits)
	}
	c, err = Load(env(with("CLERK_RATE_LIMIT", "2.5", "WORKOS_RATE_LIMIT", "40")), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RateLimits) != 1 || c.RateLimits["clerk"] != 2.5 {
		t.Errorf("RateLimits = %v, want only clerk: 2.5 (WorkOS is not enabled)", c.RateLimits)
	}
	for _, tc := range []struct{ name, value string }{
		{"CLERK_RATE_LIMIT", "0"}, {"CLERK_RATE_LIMIT", "-5"}, {"CLERK_RATE_LIMIT", "fast"},
		{"CLERK_RATE_LIMIT", "NaN"}, {"CLERK_RATE_LIMIT", "Inf"}, {"CLERK_RATE_LIMIT", "1e9"},
		{"STACK_RATE_LIMIT", "ten"}, {"WORKOS_RATE_LIMIT", "0"},
	} {
		_, err := Load(env(with(tc.name, tc.value)), true)
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != tc.name {
			t.Errorf("%s=%q: error %v, want one naming %s", tc.name, tc.value, err, tc.name)
		}
	}
}
