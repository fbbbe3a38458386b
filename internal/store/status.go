package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProviderStatus is one row of provider_status: what `usersync status`
// reports first about a provider. Nil times are unknown (or, in a flush,
// unchanged).
type ProviderStatus struct {
	Provider         string
	LastWebhookAt    *time.Time
	LastSyncAt       *time.Time
	LastError        *string
	LastErrorAt      *time.Time
	BadCredentialsAt *time.Time
	// CredentialsOKAt is the last time the provider accepted usersync's
	// credentials (a successful sync).
	CredentialsOKAt *time.Time
}

// Status holds the statements on provider_status.
type Status struct{ s Schemas }

// Flush merges st into its provider's row: each time keeps the later of
// the stored and the given one, and the last error the one of the later
// time.
func (q Status) Flush(ctx context.Context, db DB, st ProviderStatus) error {
	_, err := db.Exec(ctx, `INSERT INTO `+q.s.in()+`.provider_status AS s (provider, last_webhook_at, last_sync_at, last_error, last_error_at, bad_credentials_at, credentials_ok_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (provider) DO UPDATE SET
  last_webhook_at = greatest(s.last_webhook_at, excluded.last_webhook_at),
  last_sync_at = greatest(s.last_sync_at, excluded.last_sync_at),
  last_error = CASE WHEN excluded.last_error_at > coalesce(s.last_error_at, '-infinity') THEN excluded.last_error ELSE s.last_error END,
  last_error_at = greatest(s.last_error_at, excluded.last_error_at),
  bad_credentials_at = greatest(s.bad_credentials_at, excluded.bad_credentials_at),
  credentials_ok_at = greatest(s.credentials_ok_at, excluded.credentials_ok_at)`,
		st.Provider, st.LastWebhookAt, st.LastSyncAt, st.LastError, st.LastErrorAt, st.BadCredentialsAt, st.CredentialsOKAt)
	if err != nil {
		return fmt.Errorf("write provider status of %s: %w", st.Provider, err)
	}
	return nil
}

// Get returns prov's status row, or nil if nothing was recorded yet.
func (q Status) Get(ctx context.Context, db DB, prov string) (*ProviderStatus, error) {
	st := ProviderStatus{Provider: prov}
	err := db.QueryRow(ctx, `SELECT last_webhook_at, last_sync_at, last_error, last_error_at, bad_credentials_at, credentials_ok_at
		FROM `+q.s.in()+`.provider_status WHERE provider = $1`, prov).
		Scan(&st.LastWebhookAt, &st.LastSyncAt, &st.LastError, &st.LastErrorAt, &st.BadCredentialsAt, &st.CredentialsOKAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read provider status of %s: %w", prov, err)
	}
	return &st, nil
}
