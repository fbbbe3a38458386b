package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// UserOrganizationIDs returns the organizations of the user's live rows in
// memberships_sync, sorted.
func (s *Orgs) UserOrganizationIDs(ctx context.Context, db DB, userID string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT organization_id FROM `+pgx.Identifier{s.Schema, "memberships_sync"}.Sanitize()+`
		WHERE user_id = $1 AND deleted_at IS NULL ORDER BY 1`, userID)
	if err != nil {
		return nil, fmt.Errorf("organizations of user %s: %w", userID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("organizations of user %s: %w", userID, err)
	}
	return ids, nil
}
