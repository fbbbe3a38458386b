package provider

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
)

func TestRedactorScrubsEveryForm(t *testing.T) {
	const key = "sk_test_Ab+/cd=efGHijklmnop"
	r := NewRedactor(key, "short", "")
	for _, form := range []string{key, url.QueryEscape(key), url.PathEscape(key), `sk_test_Ab+\/cd=efGHijklmnop`,
		base64.StdEncoding.EncodeToString([]byte(key)), "Ab+/cd=efGHijklmnop"} {
		got := r.Redact("echo: Authorization: Bearer " + form + " end")
		if strings.Contains(got, form) || !strings.Contains(got, Redacted) {
			t.Errorf("form %q not scrubbed: %q", form, got)
		}
	}
	if got := r.Redact("a short text"); got != "a short text" {
		t.Errorf("a value under %d bytes is scrubbed: %q", minSecretLen, got)
	}
	base := errors.New("wrapped " + key)
	err := r.RedactError(base)
	if strings.Contains(err.Error(), key) || !errors.Is(err, base) {
		t.Errorf("RedactError: %v (Is base: %v)", err, errors.Is(err, base))
	}
	if clean := errors.New("clean"); r.RedactError(clean) != clean {
		t.Errorf("an error without a secret is replaced")
	}
	var nilR *Redactor
	if nilR.Redact(key) != key || nilR.With(key).Redact(key) == key {
		t.Errorf("nil Redactor")
	}
}

func TestReadBodyLimit(t *testing.T) {
	for _, cl := range []int64{-1, 10} {
		if b, err := ReadBody(strings.NewReader("0123456789"), cl, 10); err != nil || string(b) != "0123456789" {
			t.Errorf("at the limit (length %d): %q, %v", cl, b, err)
		}
		if _, err := ReadBody(strings.NewReader("0123456789x"), cl, 10); !errors.Is(err, ErrResponseTooLarge) {
			t.Errorf("over the limit (length %d): %v", cl, err)
		}
	}
	if _, err := ReadBody(strings.NewReader(""), 11, 10); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("announced over the limit: %v", err)
	}
	// An endless reader is read only to limit+1.
	cr := &countingReader{}
	if _, err := ReadBody(cr, -1, 1<<20); !errors.Is(err, ErrResponseTooLarge) || cr.n > 1<<20+1 {
		t.Errorf("endless: %v after %d bytes", err, cr.n)
	}
}

type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += int64(len(p))
	copy(p, bytes.Repeat([]byte{'x'}, len(p)))
	return len(p), nil
}

var _ io.Reader = (*countingReader)(nil)
