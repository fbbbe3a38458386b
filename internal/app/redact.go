package app

import (
	"log/slog"

	"github.com/usersync/usersync/provider"
)

// Credentials are scrubbed where provider error text is made (each client
// redacts its answers), and again, defensively, wherever text leaves the
// process: every log line (provider.RedactingHandler), every error River
// stores in a job (usersync's job middleware) and the last error kept for
// `usersync status`.

// redactor returns the redactor for every credential of the configuration.
func (e *Env) redactor() *provider.Redactor {
	return provider.NewRedactor(e.Config.Secrets()...)
}

// redactLogger returns l with every credential scrubbed from its lines.
func redactLogger(l *slog.Logger, r *provider.Redactor) *slog.Logger {
	return slog.New(provider.NewRedactingHandler(l.Handler(), r))
}
