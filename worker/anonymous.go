package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// syncExcludedAnonymous writes what a sync of an anonymous user means when
// anonymous users are excluded (Binding.ExcludeAnonymous): the same as the
// backfill, whose list leaves them out. A user that usersync already keeps
// (a users_sync row or a per-user state row, e.g. written before the
// operator switched modes) is a user absent at the provider: it is marked
// deleted, or removed in hard mode, unless newer data is stored. For any
// other nothing is written at all, not even per-user state. An anonymous
// user that becomes a regular one is synced by its next event or backfill.
func syncExcludedAnonymous(ctx context.Context, tx pgx.Tx, s *Store, userID string, token time.Time) (Result, error) {
	known, err := s.Known(ctx, tx, userID)
	if err != nil {
		return Result{}, fmt.Errorf("excluded anonymous user: %w", err)
	}
	if !known {
		return Result{}, nil
	}
	return s.MarkDeleted(ctx, tx, userID, token)
}
