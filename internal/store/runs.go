package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run is one row of backfill_run: a backfill run of one provider (a chain
// of backfill_page jobs). Its JSON form is what `usersync status --json`
// shows.
type Run struct {
	ID                       int64
	Provider                 string `json:"-"`
	Status                   RunState
	StartedAt                time.Time
	FinishedAt               *time.Time
	Pages                    int
	Listed, Written, Deleted int64
	LastError                *string
	// HeldDeletions and HeldLive are set on a held run: how many live users
	// it would mark deleted, of how many.
	HeldDeletions *int64 `json:",omitempty"`
	HeldLive      *int64 `json:",omitempty"`
	// RecentUserIDs are the last users of the last committed page, newest
	// last: where to resume when the next cursor no longer resolves.
	RecentUserIDs []string `json:"-"`
	// Restarts counts the times the run listed again from the start.
	Restarts int `json:"-"`
	// Kind is RunUsers (a chain of backfill_page jobs) or RunOrganizations
	// (a chain of backfill_organizations jobs, whose Listed, Written and
	// Deleted count organizations).
	Kind RunKind `json:",omitempty"`
	// UsersRun is, for an organizations run, the users run that started it.
	UsersRun *int64 `json:",omitempty"`
}

// RunKind is what a backfill run lists (backfill_run.kind).
type RunKind string

// Run kinds.
const (
	RunUsers         RunKind = "users"
	RunOrganizations RunKind = "organizations"
)

// Runs holds the statements on backfill_run and backfill_request, for the
// runs of one kind (RunUsers unless made by Kind).
type Runs struct {
	s    Schemas
	kind RunKind
}

// Kind returns the statements on runs of kind k.
func (q Runs) Kind(k RunKind) Runs { q.kind = k; return q }

// kindCond is the SQL condition selecting q's kind; k is one of the
// constants above, never input.
func (q Runs) kindCond(alias string) string {
	k := q.kind
	if k == "" {
		k = RunUsers
	}
	return alias + "kind = '" + string(k) + "'"
}

func (q Runs) runKind() RunKind {
	if q.kind == "" {
		return RunUsers
	}
	return q.kind
}

const runCols = `id, provider, status, started_at, finished_at, pages, users_listed, users_written, users_deleted,
	last_error, held_deletions, held_live, recent_user_ids, restarts, kind, users_run`

// scanRun scans one run; no row is (nil, nil).
func scanRun(row pgx.Row) (*Run, error) {
	var r Run
	err := row.Scan(&r.ID, &r.Provider, &r.Status, &r.StartedAt, &r.FinishedAt, &r.Pages, &r.Listed, &r.Written, &r.Deleted,
		&r.LastError, &r.HeldDeletions, &r.HeldLive, &r.RecentUserIDs, &r.Restarts, &r.Kind, &r.UsersRun)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Get returns run id, or nil if there is none.
func (q Runs) Get(ctx context.Context, db DB, id int64) (*Run, error) {
	r, err := scanRun(db.QueryRow(ctx, `SELECT `+runCols+` FROM `+q.s.in()+`.backfill_run WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("read backfill run %d: %w", id, err)
	}
	return r, nil
}

// Latest returns prov's newest run in state, or nil.
func (q Runs) Latest(ctx context.Context, db DB, prov string, state RunState) (*Run, error) {
	r, err := scanRun(db.QueryRow(ctx, `SELECT `+runCols+` FROM `+q.s.in()+`.backfill_run
		WHERE provider = $1 AND status = $2 AND `+q.kindCond("")+` ORDER BY id DESC LIMIT 1`, prov, state))
	if err != nil {
		return nil, fmt.Errorf("read %s backfill run of %s: %w", state, prov, err)
	}
	return r, nil
}

// Newest returns prov's newest run in any state, or nil.
func (q Runs) Newest(ctx context.Context, db DB, prov string) (*Run, error) {
	r, err := scanRun(db.QueryRow(ctx, `SELECT `+runCols+` FROM `+q.s.in()+`.backfill_run
		WHERE provider = $1 AND `+q.kindCond("")+` ORDER BY id DESC LIMIT 1`, prov))
	if err != nil {
		return nil, fmt.Errorf("read the newest backfill run of %s: %w", prov, err)
	}
	return r, nil
}

// All returns prov's runs, oldest first.
func (q Runs) All(ctx context.Context, db DB, prov string) ([]Run, error) {
	rows, err := db.Query(ctx, `SELECT `+runCols+` FROM `+q.s.in()+`.backfill_run WHERE provider = $1 AND `+q.kindCond("")+` ORDER BY id`, prov)
	if err != nil {
		return nil, fmt.Errorf("read backfill runs of %s: %w", prov, err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("read backfill runs of %s: %w", prov, err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read backfill runs of %s: %w", prov, err)
	}
	return out, nil
}

// SkipScheduled reports whether a scheduled (not forced) backfill of prov
// should not start a run: a complete run started less than within ago, and
// no operator asked for a backfill (RequestBackfill) since it started.
func (q Runs) SkipScheduled(ctx context.Context, db DB, prov string, within time.Duration) (bool, error) {
	var skip bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+q.s.in()+`.backfill_run r
		WHERE r.provider = $1 AND r.status = $3 AND r.started_at > now() - $2::interval AND `+q.kindCond("r.")+`
		  AND r.started_at > coalesce((SELECT requested_at FROM `+q.s.in()+`.backfill_request WHERE provider = $1), '-infinity'))`,
		prov, within, RunCompleted).Scan(&skip)
	if err != nil {
		return false, fmt.Errorf("backfill %s: look up recent runs: %w", prov, err)
	}
	return skip, nil
}

// RequestBackfill records that an operator asked for a backfill of prov
// now: the scheduled job waiting for prov then starts a run even if a
// recent one completed (SkipScheduled).
func (q Runs) RequestBackfill(ctx context.Context, db DB, prov string) error {
	if _, err := db.Exec(ctx, `INSERT INTO `+q.s.in()+`.backfill_request AS r (provider, requested_at) VALUES ($1, now())
		ON CONFLICT (provider) DO UPDATE SET requested_at = greatest(r.requested_at, excluded.requested_at)`, prov); err != nil {
		return fmt.Errorf("request a backfill of %s: %w", prov, err)
	}
	return nil
}

// Start starts a run of prov in tx, begun at startedAt by job jobID. A run
// of prov still marked running has lost its chain (its last job was
// discarded or cancelled): it can never complete, and is marked failed.
func (q Runs) Start(ctx context.Context, tx pgx.Tx, prov string, startedAt time.Time, jobID int64) (*Run, error) {
	return q.StartFor(ctx, tx, prov, startedAt, jobID, nil)
}

// StartFor is Start for a run started by users run usersRun (an
// organizations run; nil for none).
func (q Runs) StartFor(ctx context.Context, tx pgx.Tx, prov string, startedAt time.Time, jobID int64, usersRun *int64) (*Run, error) {
	is := q.s.in()
	if _, err := tx.Exec(ctx, `UPDATE `+is+`.backfill_run SET status = $2, finished_at = now(), updated_at = now(),
		last_error = coalesce(last_error, 'abandoned: superseded by a new run') WHERE provider = $1 AND status = $3 AND `+q.kindCond(""),
		prov, RunFailed, RunRunning); err != nil {
		return nil, fmt.Errorf("backfill %s: close abandoned runs: %w", prov, err)
	}
	r := &Run{Provider: prov, Status: RunRunning, StartedAt: startedAt, Kind: q.runKind(), UsersRun: usersRun}
	if err := tx.QueryRow(ctx, `INSERT INTO `+is+`.backfill_run (provider, status, started_at, started_by_job, kind, users_run)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		prov, RunRunning, startedAt, jobID, r.Kind, usersRun).Scan(&r.ID); err != nil {
		return nil, fmt.Errorf("backfill %s: start run: %w", prov, err)
	}
	return r, nil
}

// Page is one committed page of a run.
type Page struct {
	// Listed and Written count the page's users and the rows it changed.
	Listed, Written int
	// Next is the cursor of the next page ("" after the last).
	Next string
	// Recent are the page's last users, newest last.
	Recent []string
	// Restarted says the run listed again from the start for this page.
	Restarted bool
}

// RecordPage adds page p to run id's progress in tx and returns how many
// users the run has listed in all.
func (q Runs) RecordPage(ctx context.Context, tx pgx.Tx, id int64, p Page) (int64, error) {
	restarts := 0
	if p.Restarted {
		restarts = 1
	}
	recent := p.Recent
	if recent == nil {
		recent = []string{}
	}
	var listed int64
	if err := tx.QueryRow(ctx, `UPDATE `+q.s.in()+`.backfill_run SET pages = pages + 1,
		users_listed = users_listed + $2, users_written = users_written + $3,
		next_cursor = $4,
		last_user_id = coalesce(($5::text[])[array_upper($5::text[], 1)], last_user_id),
		recent_user_ids = CASE WHEN cardinality($5::text[]) > 0 THEN $5::text[] ELSE recent_user_ids END,
		restarts = restarts + $6, last_error = NULL, updated_at = now()
		WHERE id = $1 RETURNING users_listed`, id, p.Listed, p.Written, p.Next, recent, restarts).Scan(&listed); err != nil {
		return 0, fmt.Errorf("record progress of backfill run %d: %w", id, err)
	}
	return listed, nil
}

// RecordError records a failed page fetch on running run id (shown by
// status); final ends the run failed.
func (q Runs) RecordError(ctx context.Context, db DB, id int64, msg string, final bool) error {
	status := RunRunning
	if final {
		status = RunFailed
	}
	if _, err := db.Exec(ctx, `UPDATE `+q.s.in()+`.backfill_run SET last_error = $2, status = $3,
		finished_at = CASE WHEN $3 = $4 THEN now() END, updated_at = now() WHERE id = $1 AND status = $5`,
		id, msg, status, RunFailed, RunRunning); err != nil {
		return fmt.Errorf("record error of backfill run %d: %w", id, err)
	}
	return nil
}

// Hold ends run id held in tx: it would have marked would of live users
// deleted, and deleted nothing.
func (q Runs) Hold(ctx context.Context, tx pgx.Tx, id, would, live int64) error {
	if _, err := tx.Exec(ctx, `UPDATE `+q.s.in()+`.backfill_run SET status = $4, finished_at = now(),
		held_deletions = $2, held_live = $3, updated_at = now() WHERE id = $1`, id, would, live, RunHeld); err != nil {
		return fmt.Errorf("hold backfill run %d: %w", id, err)
	}
	return nil
}

// Complete ends run id completed in tx, having marked deleted users deleted.
func (q Runs) Complete(ctx context.Context, tx pgx.Tx, id int64, deleted int) error {
	if _, err := tx.Exec(ctx, `UPDATE `+q.s.in()+`.backfill_run SET status = $3, finished_at = now(),
		users_deleted = $2, updated_at = now() WHERE id = $1`, id, deleted, RunCompleted); err != nil {
		return fmt.Errorf("complete backfill run %d: %w", id, err)
	}
	return nil
}

// Held returns prov's current held run: the newest held run with no
// complete run after it, or nil. In a transaction, lock takes the run's row
// lock (for ConfirmHeld).
func (q Runs) Held(ctx context.Context, db DB, prov string, lock bool) (*Run, error) {
	is := q.s.in()
	sql := `SELECT ` + runCols + ` FROM ` + is + `.backfill_run r
		WHERE r.provider = $1 AND r.status = $2 AND ` + q.kindCond("r.") + `
		  AND NOT EXISTS (SELECT 1 FROM ` + is + `.backfill_run c WHERE c.provider = r.provider AND c.status = $3 AND c.id > r.id
		    AND c.kind = r.kind)
		ORDER BY r.id DESC LIMIT 1`
	if lock {
		sql += ` FOR UPDATE`
	}
	r, err := scanRun(db.QueryRow(ctx, sql, prov, RunHeld, RunCompleted))
	if err != nil {
		return nil, fmt.Errorf("read the held backfill run of %s: %w", prov, err)
	}
	return r, nil
}

// ConfirmHeld marks held run id completed in tx, an operator having
// confirmed it, with deleted users marked deleted.
func (q Runs) ConfirmHeld(ctx context.Context, tx pgx.Tx, id int64, deleted int) error {
	if _, err := tx.Exec(ctx, `UPDATE `+q.s.in()+`.backfill_run SET status = $3, users_deleted = $2,
		confirmed_at = now(), updated_at = now() WHERE id = $1 AND status = $4`, id, deleted, RunCompleted, RunHeld); err != nil {
		return fmt.Errorf("confirm backfill run %d: %w", id, err)
	}
	return nil
}

// ForJob returns the run that backfill_page job jobID started or continues,
// or nil while there is none.
func (q Runs) ForJob(ctx context.Context, db DB, jobID int64) (*Run, error) {
	r, err := scanRun(db.QueryRow(ctx, `SELECT `+runCols+` FROM `+q.s.in()+`.backfill_run
		WHERE started_by_job = $1 OR id::text = (SELECT args->>'run_id' FROM `+q.s.riverJob()+` WHERE id = $1)
		ORDER BY id DESC LIMIT 1`, jobID))
	if err != nil {
		return nil, fmt.Errorf("read the backfill run of job %d: %w", jobID, err)
	}
	return r, nil
}

// StartedByJob reports whether job jobID started a run.
func (q Runs) StartedByJob(ctx context.Context, db DB, jobID int64) (bool, error) {
	var started bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+q.s.in()+`.backfill_run WHERE started_by_job = $1)`, jobID).Scan(&started); err != nil {
		return false, fmt.Errorf("read the backfill run of job %d: %w", jobID, err)
	}
	return started, nil
}

// LastCompleteAges returns, per provider, how many seconds ago its last
// complete run finished.
func (q Runs) LastCompleteAges(ctx context.Context, db Querier) (map[string]float64, error) {
	rows, err := db.Query(ctx, `SELECT provider, extract(epoch FROM now() - max(finished_at))::float8 FROM `+q.s.in()+`.backfill_run
		WHERE status = $1 AND `+q.kindCond("")+` GROUP BY provider`, RunCompleted)
	if err != nil {
		return nil, fmt.Errorf("read backfill ages: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var p string
		var age float64
		if err := rows.Scan(&p, &age); err != nil {
			return nil, fmt.Errorf("read backfill ages: %w", err)
		}
		out[p] = age
	}
	return out, rows.Err()
}

// ForUsersRun returns the organizations run that users run usersRun
// started, or nil while there is none.
func (q Runs) ForUsersRun(ctx context.Context, db DB, usersRun int64) (*Run, error) {
	r, err := scanRun(db.QueryRow(ctx, `SELECT `+runCols+` FROM `+q.s.in()+`.backfill_run
		WHERE users_run = $1 AND kind = $2 ORDER BY id DESC LIMIT 1`, usersRun, RunOrganizations))
	if err != nil {
		return nil, fmt.Errorf("read the organizations run of backfill run %d: %w", usersRun, err)
	}
	return r, nil
}
