package provider_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/usersync/usersync/provider"
)

// TestRedactingHandler: a credential in the message, a string attribute, an
// error, a formatted value, a group or WithAttrs never reaches the output;
// the rest of the line does.
func TestRedactingHandler(t *testing.T) {
	const secret = "ssk_s3cr3t_value_1234"
	var buf bytes.Buffer
	r := provider.NewRedactor(secret)
	l := slog.New(provider.NewRedactingHandler(slog.NewTextHandler(&buf, nil), r)).With("with", "w-"+secret)
	l.Info("msg "+secret,
		"s", "a "+secret,
		"err", fmt.Errorf("call: %w", errors.New("key "+secret)),
		"any", []string{secret},
		slog.Group("g", "inner", secret),
		"n", 42)
	l.WithGroup("grp").Warn("second", "k", secret)
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Fatalf("secret in log output:\n%s", out)
	}
	for _, want := range []string{"msg ", "s=\"a ", "call: key", "n=42", "g.inner=", "with=w-", "grp.k="} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
