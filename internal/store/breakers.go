package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Breaker is one row of deletion_breaker: the sync path's deletion breaker
// of a provider.
type Breaker struct {
	Provider string
	// UnexpectedNotFound is how many syncs in a row found their user
	// missing although its latest event was not a deletion.
	UnexpectedNotFound int64
	// PausedAt is set while deletions by sync are paused.
	PausedAt *time.Time
	// PausedUserID is the user whose sync tripped the breaker.
	PausedUserID *string
	ResumedAt    *time.Time
}

// Breakers holds the statements on deletion_breaker.
type Breakers struct{ s Schemas }

// Count counts one unexpected not-found of prov in tx. It reports false
// when deletions are paused or this one would pass limit: the caller must
// then not delete.
func (q Breakers) Count(ctx context.Context, tx pgx.Tx, prov string, limit int) (bool, error) {
	rows, err := tx.Query(ctx, `INSERT INTO `+q.s.in()+`.deletion_breaker AS b (provider, unexpected_not_found) VALUES ($1, 1)
ON CONFLICT (provider) DO UPDATE SET unexpected_not_found = b.unexpected_not_found + 1, updated_at = now()
WHERE b.paused_at IS NULL AND b.unexpected_not_found < $2
RETURNING b.unexpected_not_found`, prov, limit)
	if err != nil {
		return false, fmt.Errorf("deletion breaker of %s: %w", prov, err)
	}
	defer rows.Close()
	ok := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("deletion breaker of %s: %w", prov, err)
	}
	return ok, nil
}

// Reset records, in tx, a successful fetch of an existing user of prov:
// the count starts again. It takes the row's lock only when there is a
// count to reset.
func (q Breakers) Reset(ctx context.Context, tx pgx.Tx, prov string) error {
	if _, err := tx.Exec(ctx, `UPDATE `+q.s.in()+`.deletion_breaker SET unexpected_not_found = 0, updated_at = now()
WHERE provider = $1 AND unexpected_not_found > 0 AND paused_at IS NULL`, prov); err != nil {
		return fmt.Errorf("deletion breaker of %s: reset: %w", prov, err)
	}
	return nil
}

// Pause pauses deletions by sync of prov, tripped by userID's sync, unless
// they are paused already; it reports whether this call paused them.
func (q Breakers) Pause(ctx context.Context, db DB, prov, userID string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE `+q.s.in()+`.deletion_breaker SET paused_at = now(), paused_user_id = $2, updated_at = now()
WHERE provider = $1 AND paused_at IS NULL`, prov, userID)
	if err != nil {
		return false, fmt.Errorf("pause deletions of %s: %w", prov, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Resume clears prov's breaker if it is paused; it reports whether it was.
func (q Breakers) Resume(ctx context.Context, db DB, prov string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE `+q.s.in()+`.deletion_breaker SET paused_at = NULL, paused_user_id = NULL,
		unexpected_not_found = 0, resumed_at = now(), updated_at = now() WHERE provider = $1 AND paused_at IS NOT NULL`, prov)
	if err != nil {
		return false, fmt.Errorf("resume deletions of %s: %w", prov, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Get returns prov's breaker, or nil if it never counted.
func (q Breakers) Get(ctx context.Context, db DB, prov string) (*Breaker, error) {
	b := Breaker{Provider: prov}
	err := db.QueryRow(ctx, `SELECT unexpected_not_found, paused_at, paused_user_id, resumed_at FROM `+q.s.in()+`.deletion_breaker WHERE provider = $1`, prov).
		Scan(&b.UnexpectedNotFound, &b.PausedAt, &b.PausedUserID, &b.ResumedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read deletion breaker of %s: %w", prov, err)
	}
	return &b, nil
}

// GuardState is what the deletion guard holds back for one provider.
type GuardState struct {
	Provider string
	// HeldDeletions is what the current held run would delete, -1 if none.
	HeldDeletions int64
	// Paused says deletions by sync are paused.
	Paused bool
}

// SampleGuard returns the guard's state of every provider that has a run
// or a breaker.
func (s *Store) SampleGuard(ctx context.Context, db Querier) ([]GuardState, error) {
	is := s.Schemas.in()
	rows, err := db.Query(ctx, `SELECT p.provider, coalesce(h.held_deletions, -1), coalesce(b.paused_at IS NOT NULL, false)
FROM (SELECT provider FROM `+is+`.backfill_run UNION SELECT provider FROM `+is+`.deletion_breaker) p
LEFT JOIN LATERAL (
  SELECT r.held_deletions FROM `+is+`.backfill_run r
  WHERE r.provider = p.provider AND r.status = $1
    AND NOT EXISTS (SELECT 1 FROM `+is+`.backfill_run c WHERE c.provider = r.provider AND c.status = $2 AND c.id > r.id)
  ORDER BY r.id DESC LIMIT 1) h ON true
LEFT JOIN `+is+`.deletion_breaker b ON b.provider = p.provider`, RunHeld, RunCompleted)
	if err != nil {
		return nil, fmt.Errorf("sample the deletion guard: %w", err)
	}
	defer rows.Close()
	var out []GuardState
	for rows.Next() {
		var g GuardState
		if err := rows.Scan(&g.Provider, &g.HeldDeletions, &g.Paused); err != nil {
			return nil, fmt.Errorf("sample the deletion guard: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
