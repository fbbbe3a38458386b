package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// OrganizationName returns the name of organization id in
// schema.organizations_sync (nil when unknown or absent).
func OrganizationName(ctx context.Context, db DB, schema, id string) (*string, error) {
	var name *string
	err := db.QueryRow(ctx, `SELECT name FROM `+pgx.Identifier{schema, "organizations_sync"}.Sanitize()+` WHERE id = $1`, id).Scan(&name)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read organization %s: %w", id, err)
	}
	return name, nil
}

// MembershipView is one membership joined with its user and organization,
// as an app reads it.
type MembershipView struct {
	UserName, UserEmail, OrganizationName, Role *string
}

// Membership reads the membership of userID in orgID from
// schema.memberships_sync, joined with users_sync and organizations_sync
// (fields nil when unknown; ok false when there is no membership row).
func Membership(ctx context.Context, db DB, schema, orgID, userID string) (v MembershipView, ok bool, err error) {
	err = db.QueryRow(ctx, `SELECT u.name, u.email, o.name, m.role
		FROM `+pgx.Identifier{schema, "memberships_sync"}.Sanitize()+` m
		LEFT JOIN `+pgx.Identifier{schema, "users_sync"}.Sanitize()+` u ON u.id = m.user_id
		LEFT JOIN `+pgx.Identifier{schema, "organizations_sync"}.Sanitize()+` o ON o.id = m.organization_id
		WHERE m.organization_id = $1 AND m.user_id = $2`, orgID, userID).
		Scan(&v.UserName, &v.UserEmail, &v.OrganizationName, &v.Role)
	if err == pgx.ErrNoRows {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("read membership %s:%s: %w", orgID, userID, err)
	}
	return v, true, nil
}
