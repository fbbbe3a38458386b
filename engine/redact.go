package engine

import (
	"context"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/provider"
)

// NotMigratedError says what is missing from a database that was never (or
// not fully) migrated; Check and ConfigureRiver return errors wrapping it.
type NotMigratedError = migrate.NotMigratedError

// redactJobErrors is River worker middleware that scrubs credentials from
// the error a job returns, before River stores it in river_job.errors (shown
// by the River UI and `usersync status`). The error still unwraps to the
// original, so River's own checks (snooze, cancel) are unaffected.
type redactJobErrors struct {
	river.MiddlewareDefaults
	r *provider.Redactor
}

var _ rivertype.WorkerMiddleware = (*redactJobErrors)(nil)

func (m *redactJobErrors) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	return m.r.RedactError(doInner(ctx))
}
