package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProviderReport is one provider's part of `usersync status`.
type ProviderReport struct {
	Provider          string           `json:"provider"`
	Schema            string           `json:"schema"`
	Users             int64            `json:"users"`
	DeletedUsers      int64            `json:"deleted_users"`
	LastWebhookAt     *time.Time       `json:"last_webhook_at"`
	LastSyncAt        *time.Time       `json:"last_sync_at"`
	BadCredentialsAt  *time.Time       `json:"bad_credentials_at,omitempty"`
	LastCompleteRun   *Run             `json:"last_complete_backfill"`
	CurrentRun        *Run             `json:"running_backfill,omitempty"`
	LastFailedRun     *Run             `json:"last_failed_backfill,omitempty"`
	Jobs              map[string]int64 `json:"jobs_by_state"`
	OldestWaitingJob  *time.Time       `json:"oldest_waiting_job_since"`
	DiscardedLastHour int64            `json:"discarded_last_hour"`
	RecentErrors      []ErrorCount     `json:"recent_errors"`
	// HeldRun is the backfill run held by the deletion guard, waiting for
	// confirmation (none when a complete run came after it).
	HeldRun *Run `json:"held_backfill,omitempty"`
	// DeletionsPaused is set while the breaker pauses deletions by syncs.
	DeletionsPaused *PauseReport `json:"sync_deletions_paused,omitempty"`
	// RateLimit is the provider's request budget and its use (nil before
	// the first request).
	RateLimit *RateLimitReport `json:"rate_limit,omitempty"`
	// Organizations is set when organizations are synced.
	Organizations *OrganizationsReport `json:"organizations,omitempty"`
}

// OrganizationsReport is the organizations' part of a provider's report:
// organizations_sync, memberships_sync and the organizations backfill runs.
type OrganizationsReport struct {
	Organizations        int64 `json:"organizations"`
	DeletedOrganizations int64 `json:"deleted_organizations"`
	Memberships          int64 `json:"memberships"`
	LastCompleteRun      *Run  `json:"last_complete_backfill"`
	CurrentRun           *Run  `json:"running_backfill,omitempty"`
	LastFailedRun        *Run  `json:"last_failed_backfill,omitempty"`
	HeldRun              *Run  `json:"held_backfill,omitempty"`
}

// PauseReport describes paused deletions by sync jobs.
type PauseReport struct {
	PausedAt time.Time `json:"paused_at"`
	// UnexpectedNotFound is how many users in a row were not found although
	// their latest event was not a deletion.
	UnexpectedNotFound int64 `json:"unexpected_not_found"`
	// UserID is the user whose sync found the breaker's limit reached.
	UserID string `json:"user_id,omitempty"`
	// WaitingSyncs is how many sync jobs wait for deletions to resume.
	WaitingSyncs int64 `json:"waiting_syncs"`
}

// ReportQuery names what a provider's report reads.
type ReportQuery struct {
	Provider string
	// TargetSchema holds the provider's users_sync table.
	TargetSchema string
	// Queues are the provider's job queues; SyncKind and SyncQueue name its
	// sync_user jobs (those that wait for resumed deletions).
	Queues              []string
	SyncKind, SyncQueue string
	// Organizations adds the organizations' part.
	Organizations bool
}

// Report reads a provider's status report.
func (s *Store) Report(ctx context.Context, db DB, q ReportQuery) (*ProviderReport, error) {
	prov := q.Provider
	pr := &ProviderReport{Provider: prov, Schema: q.TargetSchema, Jobs: map[string]int64{}, RecentErrors: []ErrorCount{}}
	wrap := func(err error) error { return fmt.Errorf("status of %s: %w", prov, err) }
	var err error
	if pr.Users, pr.DeletedUsers, err = CountUsers(ctx, db, q.TargetSchema); err != nil {
		return nil, wrap(err)
	}
	st, err := s.Status.Get(ctx, db, prov)
	if err != nil {
		return nil, wrap(err)
	}
	if st != nil {
		pr.LastWebhookAt, pr.LastSyncAt, pr.BadCredentialsAt = st.LastWebhookAt, st.LastSyncAt, st.BadCredentialsAt
		if pr.BadCredentialsAt != nil && st.CredentialsOKAt != nil && st.CredentialsOKAt.After(*pr.BadCredentialsAt) {
			pr.BadCredentialsAt = nil
		}
	}
	for state, dst := range map[RunState]**Run{RunCompleted: &pr.LastCompleteRun, RunRunning: &pr.CurrentRun, RunFailed: &pr.LastFailedRun} {
		if *dst, err = s.Runs.Latest(ctx, db, prov, state); err != nil {
			return nil, wrap(err)
		}
	}
	if pr.LastFailedRun != nil && pr.LastCompleteRun != nil && pr.LastCompleteRun.ID > pr.LastFailedRun.ID {
		pr.LastFailedRun = nil
	}
	if pr.HeldRun, err = s.Runs.Held(ctx, db, prov, false); err != nil {
		return nil, wrap(err)
	}
	b, err := s.Breakers.Get(ctx, db, prov)
	if err != nil {
		return nil, wrap(err)
	}
	if b != nil && b.PausedAt != nil {
		p := &PauseReport{PausedAt: *b.PausedAt, UnexpectedNotFound: b.UnexpectedNotFound}
		if b.PausedUserID != nil {
			p.UserID = *b.PausedUserID
		}
		if p.WaitingSyncs, err = s.Jobs.CountPaused(ctx, db, q.SyncKind, q.SyncQueue); err != nil {
			return nil, wrap(err)
		}
		pr.DeletionsPaused = p
	}
	if q.Organizations {
		if pr.Organizations, err = s.organizationsReport(ctx, db, q); err != nil {
			return nil, wrap(err)
		}
	}
	if pr.Jobs, err = s.Jobs.CountByState(ctx, db, q.Queues); err != nil {
		return nil, wrap(err)
	}
	if pr.OldestWaitingJob, err = s.Jobs.OldestWaiting(ctx, db, q.Queues); err != nil {
		return nil, wrap(err)
	}
	if pr.DiscardedLastHour, err = s.Jobs.DiscardedSince(ctx, db, q.Queues, time.Hour); err != nil {
		return nil, wrap(err)
	}
	if pr.RecentErrors, err = s.Jobs.RecentErrors(ctx, db, q.Queues, 24*time.Hour, 5); err != nil {
		return nil, wrap(err)
	}
	if pr.RateLimit, err = s.RateLimits().Get(ctx, db, prov, RateLimitRecovery); err != nil {
		return nil, wrap(err)
	}
	return pr, nil
}

// CountUsers counts the live and the deleted rows of schema.users_sync.
func CountUsers(ctx context.Context, db DB, schema string) (live, deleted int64, err error) {
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM `+
		pgx.Identifier{schema, "users_sync"}.Sanitize()).Scan(&live, &deleted); err != nil {
		return 0, 0, fmt.Errorf("count users in %s.users_sync: %w", schema, err)
	}
	return live, deleted, nil
}

// UserName returns the name and email of user id in schema.users_sync
// (nil when unknown or absent).
func UserName(ctx context.Context, db DB, schema, id string) (name, email *string, err error) {
	err = db.QueryRow(ctx, `SELECT name, email FROM `+pgx.Identifier{schema, "users_sync"}.Sanitize()+` WHERE id = $1`, id).Scan(&name, &email)
	if err == pgx.ErrNoRows {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read user %s: %w", id, err)
	}
	return name, email, nil
}

// Listen subscribes conn to the notification channel.
func Listen(ctx context.Context, conn DB, channel string) error {
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen on %s: %w", channel, err)
	}
	return nil
}

func (s *Store) organizationsReport(ctx context.Context, db DB, q ReportQuery) (*OrganizationsReport, error) {
	o := &OrganizationsReport{}
	var err error
	if o.Organizations, o.DeletedOrganizations, o.Memberships, err = CountOrganizations(ctx, db, q.TargetSchema); err != nil {
		return nil, err
	}
	runs := s.Runs.Kind(RunOrganizations)
	for state, dst := range map[RunState]**Run{RunCompleted: &o.LastCompleteRun, RunRunning: &o.CurrentRun, RunFailed: &o.LastFailedRun} {
		if *dst, err = runs.Latest(ctx, db, q.Provider, state); err != nil {
			return nil, err
		}
	}
	if o.LastFailedRun != nil && o.LastCompleteRun != nil && o.LastCompleteRun.ID > o.LastFailedRun.ID {
		o.LastFailedRun = nil
	}
	if o.HeldRun, err = runs.Held(ctx, db, q.Provider, false); err != nil {
		return nil, err
	}
	return o, nil
}
