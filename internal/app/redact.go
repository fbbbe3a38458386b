package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/usersync/usersync/provider"
)

// Credentials are scrubbed where provider error text is made (each client
// redacts its answers), and again, defensively, wherever text leaves the
// process: every log line (redactingHandler), every error River stores in a
// job (redactJobErrors) and the last error kept for `usersync status`.

// redactor returns the redactor for every credential of the configuration.
func (e *Env) redactor() *provider.Redactor {
	return provider.NewRedactor(e.Config.Secrets()...)
}

// redactLogger returns l with every credential scrubbed from its lines.
func redactLogger(l *slog.Logger, r *provider.Redactor) *slog.Logger {
	return slog.New(&redactingHandler{h: l.Handler(), r: r})
}

// redactingHandler scrubs credentials from a record's message and attribute
// values (strings, errors, and anything else as formatted) before passing it on.
type redactingHandler struct {
	h slog.Handler
	r *provider.Redactor
}

func (h *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.h.Enabled(ctx, l)
}

func (h *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		as := v.Group()
		red := make([]slog.Attr, len(as))
		for i, x := range as {
			red[i] = h.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		var s string
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprint(v.Any())
		}
		if r := h.r.Redact(s); r != s {
			return slog.String(a.Key, r)
		}
		return slog.Attr{Key: a.Key, Value: v}
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}

func (h *redactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.attr(a)
	}
	return &redactingHandler{h: h.h.WithAttrs(red), r: h.r}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{h: h.h.WithGroup(name), r: h.r}
}
