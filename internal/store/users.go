package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// Target is one users_sync table and how usersync writes it.
type Target struct {
	// Schema is the table's schema.
	Schema string
	// NotifyChannel receives a pg_notify per change ("" = off).
	NotifyChannel string
	// Columns present in the table that usersync may write; generated
	// columns (Neon's table) and absent ones are left out.
	writable map[string]bool
}

// targetColumns are users_sync's columns (docs/data-model.md).
var targetColumns = []string{"raw_json", "id", "name", "email", "created_at", "updated_at", "deleted_at"}

// UsersConfig says where and how a Users writes.
type UsersConfig struct {
	Provider       string
	InternalSchema string
	// RiverSchema holds River's tables; "" means InternalSchema.
	RiverSchema string
	Target      *Target
	// HardDelete removes rows instead of setting deleted_at.
	HardDelete bool
	// Redact lists top-level raw_json keys dropped before storing.
	Redact []string
}

// Users performs usersync's transactional writes of one provider's users
// (users_sync and user_state), and counts its deletion breaker. It is safe
// for concurrent use.
type Users struct {
	UsersConfig
	upsertSQL, deleteStateSQL, deleteOneSQL, inferSQL, adoptSQL, pruneSQL string
}

// NewUsers prepares the statements for cfg.
func NewUsers(cfg UsersConfig) *Users {
	s := &Users{UsersConfig: cfg}
	if s.Redact == nil {
		s.Redact = []string{}
	}
	s.prepare()
	return s
}

// LoadTarget inspects schema.users_sync and prepares the statements that
// write it. It fails if the table is missing or lacks raw_json or id.
func LoadTarget(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, schema, notifyChannel string) (*Target, error) {
	rows, err := db.Query(ctx, `SELECT column_name::text, is_generated::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'users_sync'`, schema)
	if err != nil {
		return nil, fmt.Errorf("inspect %s.users_sync: %w", schema, err)
	}
	cols := map[string]string{}
	for rows.Next() {
		var name, gen string
		if err := rows.Scan(&name, &gen); err != nil {
			return nil, fmt.Errorf("inspect %s.users_sync: %w", schema, err)
		}
		cols[name] = gen
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect %s.users_sync: %w", schema, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s.users_sync does not exist: run `usersync migrate`", schema)
	}
	for _, c := range []string{"raw_json", "id"} {
		if _, ok := cols[c]; !ok {
			return nil, fmt.Errorf("table %s.users_sync has no %s column", schema, c)
		}
	}
	if cols["raw_json"] == "ALWAYS" {
		return nil, fmt.Errorf("table %s.users_sync: raw_json must not be a generated column", schema)
	}
	t := &Target{Schema: schema, NotifyChannel: notifyChannel, writable: map[string]bool{}}
	for _, c := range targetColumns {
		if gen, ok := cols[c]; ok && gen != "ALWAYS" {
			t.writable[c] = true
		}
	}
	return t, nil
}

// Generated reports whether the table computes column c itself (Neon).
func (t *Target) Generated(c string) bool { return !t.writable[c] }

func (s *Users) prepare() {
	t := s.Target
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	tbl := pgx.Identifier{t.Schema, "users_sync"}.Sanitize()

	// Column lists for the upsert: only the columns the table lets us write.
	exprs := map[string]string{
		"raw_json":   "i.doc",
		"id":         "i.id",
		"name":       "i.name",
		"email":      "i.email",
		"created_at": "i.created_at",
		"updated_at": "coalesce(i.p_updated_at, now())",
		"deleted_at": "NULL::timestamptz",
	}
	var cols, vals, sets, olds, news []string
	for _, c := range targetColumns {
		if !t.writable[c] {
			continue
		}
		cols = append(cols, c)
		vals = append(vals, exprs[c])
		if c != "id" {
			sets = append(sets, c+" = excluded."+c)
		}
		// Content comparison: everything but updated_at (which records the change).
		if c != "id" && c != "updated_at" {
			olds = append(olds, "u."+c)
			news = append(news, "excluded."+c)
		}
	}
	// The notification channel is always the statement's last parameter.
	notify := notifyExpr("$11", "up.id", "CASE WHEN up.inserted THEN 'insert' ELSE 'update' END")

	// $1 provider, $2 ids, $3 raws, $4 names, $5 emails, $6 created, $7 redact,
	// $8 provider updated_at, $9 fetch tokens (one per user), $10 run id
	// (NULL for sync_user),
	// $11 notification channel.
	s.upsertSQL = fmt.Sprintf(`WITH input AS (
  SELECT i.id, i.raw::jsonb - $7::text[] AS doc, i.name, i.email, i.created_at, i.p_updated_at, i.token
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $8::timestamptz[], $9::timestamptz[])
    AS i(id, raw, name, email, created_at, p_updated_at, token)
), st AS (
  INSERT INTO %[1]s.user_state AS s (provider, user_id, fetched_at, fetched_until, seen_run,
    p_updated_at, content_hash, deleted, tombstone, verdict)
  SELECT $1, id, token, now(), $10, p_updated_at, sha256(convert_to(doc::text, 'UTF8')), false, false, 'applied'
  FROM input ORDER BY id
  ON CONFLICT (provider, user_id) DO UPDATE SET `+stateUpdate+`,
        seen_run = coalesce(excluded.seen_run, s.seen_run)
  RETURNING s.user_id, s.verdict
), up AS (
  INSERT INTO %[2]s AS u (%[3]s)
  SELECT %[4]s FROM input i JOIN st ON st.user_id = i.id AND st.verdict = 'applied'
  ORDER BY i.id
  ON CONFLICT (id) DO UPDATE SET %[5]s
  WHERE (%[6]s) IS DISTINCT FROM (%[7]s)
  RETURNING u.id, (u.xmax = 0) AS inserted
)
SELECT up.id, CASE WHEN up.inserted THEN 'insert' ELSE 'update' END, %[8]s FROM up
UNION ALL
SELECT st.user_id, 'stale', NULL FROM st WHERE st.verdict IN ('stale', 'ambiguous')
UNION ALL
SELECT st.user_id, 'resync', NULL FROM st WHERE st.verdict = 'ambiguous'`,
		is, tbl, strings.Join(cols, ", "), strings.Join(vals, ", "), strings.Join(sets, ", "),
		strings.Join(olds, ", "), strings.Join(news, ", "), notify)

	// Marking one user deleted takes two statements. The first records the
	// fetch in user_state, waiting for the user's row lock if a concurrent
	// write (a backfill page) holds it; the second, with a snapshot taken
	// after that wait, changes users_sync. In one statement the change
	// would not see a row the concurrent write inserted while it waited.
	// $1 provider, $2 user id, $3 fetch token.
	s.deleteStateSQL = fmt.Sprintf(`INSERT INTO %[1]s.user_state AS s (provider, user_id, fetched_at, fetched_until,
    p_updated_at, content_hash, deleted, tombstone, verdict)
VALUES ($1, $2, $3, now(), NULL, NULL, true, true, 'applied')
ON CONFLICT (provider, user_id) DO UPDATE SET `+stateUpdate+`
RETURNING s.verdict`, is)
	delNotify := notifyExpr("$2", "d.id", "'delete'")
	// $1 user id, $2 notification channel.
	if s.HardDelete {
		s.deleteOneSQL = fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s u WHERE u.id = $1 RETURNING u.id)
SELECT d.id, 'delete', %[2]s FROM d`, tbl, delNotify)
	} else if t.writable["deleted_at"] {
		upd := "deleted_at = now()"
		if t.writable["updated_at"] {
			upd += ", updated_at = now()"
		}
		s.deleteOneSQL = fmt.Sprintf(`WITH d AS (UPDATE %[1]s u SET %[3]s WHERE u.id = $1 AND u.deleted_at IS NULL RETURNING u.id)
SELECT d.id, 'delete', %[2]s FROM d`, tbl, delNotify, upd)
	}

	// Deletion inference at the end of a complete run: $1 provider, $2 run id,
	// $3 run start, $4 notification channel. Users the run never listed, not
	// already recorded deleted, and whose stored data was fetched before the
	// run started. The run read the provider's list between its start and
	// now, so the deletion is applied where the stored data's transaction ran
	// before the run started; where it ran after, the two cannot be ordered:
	// nothing changes and the user is reported for a fresh sync. FOR UPDATE
	// re-checks the condition against concurrent syncs.
	inferNotify := notifyExpr("$4", "d.id", "'delete'")
	gone := fmt.Sprintf(`WITH gone AS (
  SELECT user_id, fetched_until <= $3 AS newer FROM %[1]s.user_state
  WHERE provider = $1 AND seen_run IS DISTINCT FROM $2 AND fetched_at < $3 AND NOT deleted
  ORDER BY user_id FOR UPDATE
), st AS (
  UPDATE %[1]s.user_state s SET fetched_at = $3, fetched_until = now(), p_updated_at = NULL,
    content_hash = NULL, deleted = true, tombstone = true, verdict = 'applied'
  FROM gone WHERE s.provider = $1 AND s.user_id = gone.user_id AND gone.newer
  RETURNING s.user_id
)`, is)
	ambiguous := `
UNION ALL
SELECT gone.user_id, 'stale', NULL FROM gone WHERE NOT gone.newer
UNION ALL
SELECT gone.user_id, 'resync', NULL FROM gone WHERE NOT gone.newer`
	if s.HardDelete {
		s.inferSQL = gone + fmt.Sprintf(`, d AS (
  DELETE FROM %[1]s u USING st WHERE u.id = st.user_id RETURNING u.id
)
SELECT d.id, 'delete', %[2]s FROM d`, tbl, inferNotify) + ambiguous
	} else {
		upd := "deleted_at = now()"
		if t.writable["updated_at"] {
			upd += ", updated_at = now()"
		}
		s.inferSQL = gone + fmt.Sprintf(`, d AS (
  UPDATE %[1]s u SET %[3]s FROM st WHERE u.id = st.user_id AND u.deleted_at IS NULL RETURNING u.id
)
SELECT d.id, 'delete', %[2]s FROM d`, tbl, inferNotify, upd) + ambiguous
	}
	// Rows that predate usersync (e.g. Neon's) get a state row so a complete
	// run can infer their deletion too. $1 provider.
	s.adoptSQL = fmt.Sprintf(`INSERT INTO %[1]s.user_state (provider, user_id)
SELECT $1, u.id FROM %[2]s u
WHERE NOT EXISTS (SELECT 1 FROM %[1]s.user_state s WHERE s.provider = $1 AND s.user_id = u.id)
ON CONFLICT DO NOTHING`, is, tbl)

	// Tombstone cleanup: $1 provider, $2 horizon in seconds, $3 batch size.
	// Deletions recorded before the horizon, locked without waiting (a row
	// being written now is left for the next round): removed when the user
	// has no users_sync row, else unmarked.
	s.pruneSQL = fmt.Sprintf(`WITH c AS (
  SELECT s.user_id, EXISTS (SELECT 1 FROM %[2]s u WHERE u.id = s.user_id) AS has_row
  FROM %[1]s.user_state s
  WHERE s.provider = $1 AND s.tombstone AND s.fetched_until < now() - make_interval(secs => $2)
  ORDER BY s.fetched_until LIMIT $3
  FOR UPDATE OF s SKIP LOCKED
), del AS (
  DELETE FROM %[1]s.user_state s USING c
  WHERE s.provider = $1 AND s.user_id = c.user_id AND NOT c.has_row RETURNING 1
), kept AS (
  UPDATE %[1]s.user_state s SET tombstone = false FROM c
  WHERE s.provider = $1 AND s.user_id = c.user_id AND c.has_row RETURNING 1
)
SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM kept)`, is, tbl)
}

// stateUpdate orders a write against the state of the data users_sync holds
// for the user. user_state keeps that data's fetch interval [fetched_at,
// fetched_until] = [when its fetch began, when the transaction storing it
// ran]: the provider was read somewhere inside. A write (excluded.*) is
//
//   - applied if its fetch began after that transaction ran (it read the
//     provider later), or, when the intervals overlap, if both are profiles
//     with the provider's own updated_at and the write's is strictly newer;
//   - 'same' if it holds what is stored (both deletions, or the same
//     content): nothing to do, whichever read was later;
//   - 'stale' if the provider's updated_at proves it older;
//   - otherwise 'ambiguous': it began before the stored fetch (skipped, as
//     its read may still be the later one) or overlaps it with nothing to
//     order them. It is not applied and the caller enqueues a fresh sync,
//     begun after both, which decides.
//
// fetched_at records the latest fetch start seen either way: a write that
// is not applied began before data at least as new as its own is stored, or
// has a fresh sync pending. (In the SET list, s.* are the old values.)
const (
	stateNewer = `(excluded.fetched_at >= s.fetched_at AND (excluded.fetched_at >= s.fetched_until
        OR (NOT s.deleted AND NOT excluded.deleted AND coalesce(excluded.p_updated_at > s.p_updated_at, false))))`
	stateSame = `coalesce((s.deleted AND excluded.deleted)
        OR (NOT s.deleted AND NOT excluded.deleted AND s.content_hash = excluded.content_hash), false)`
	stateOlder = `coalesce(NOT s.deleted AND NOT excluded.deleted AND excluded.p_updated_at < s.p_updated_at, false)`

	stateUpdate = `fetched_at = greatest(s.fetched_at, excluded.fetched_at),
        fetched_until = CASE WHEN ` + stateNewer + ` THEN excluded.fetched_until ELSE s.fetched_until END,
        p_updated_at = CASE WHEN ` + stateNewer + ` THEN excluded.p_updated_at ELSE s.p_updated_at END,
        content_hash = CASE WHEN ` + stateNewer + ` THEN excluded.content_hash ELSE s.content_hash END,
        deleted = CASE WHEN ` + stateNewer + ` THEN excluded.deleted ELSE s.deleted END,
        tombstone = CASE WHEN ` + stateNewer + ` THEN excluded.tombstone ELSE s.tombstone END,
        verdict = CASE WHEN ` + stateNewer + ` THEN 'applied' WHEN ` + stateSame + ` THEN 'same'
          WHEN ` + stateOlder + ` THEN 'stale' ELSE 'ambiguous' END`
)

// notifyExpr is the SQL that sends the change notification of one row, on
// the channel bound to parameter param (empty: none). The channel is a bind
// parameter, never spliced into the SQL text.
func notifyExpr(param, idExpr, opExpr string) string {
	return fmt.Sprintf("CASE WHEN %[1]s::text <> '' THEN pg_notify(%[1]s::text, json_build_object('id', %[2]s, 'op', %[3]s)::text)::text END",
		param, idExpr, opExpr)
}

// Result counts what a write changed.
type Result struct {
	Inserted, Updated, Deleted int
	// Stale counts users whose write was not applied because the stored
	// data is newer, or may be (they are also in Resync).
	Stale int
	// Resync lists users whose write could not be ordered against the
	// stored data (their fetches overlapped and the provider gave nothing
	// to order them by): it was not applied, and they need another sync.
	Resync []string
	// DeletedIDs lists the rows counted in Deleted (users_sync writes).
	DeletedIDs []string
}

// Changed is the number of rows that changed.
func (r Result) Changed() int { return r.Inserted + r.Updated + r.Deleted }

func (r *Result) add(id, op string) {
	switch op {
	case "insert":
		r.Inserted++
	case "update":
		r.Updated++
	case "delete":
		r.Deleted++
		r.DeletedIDs = append(r.DeletedIDs, id)
	case "stale":
		r.Stale++
	case "resync":
		r.Resync = append(r.Resync, id)
	}
}

func collect(rows pgx.Rows) (Result, error) {
	var r Result
	for rows.Next() {
		var id, op string
		var n *string
		if err := rows.Scan(&id, &op, &n); err != nil {
			return r, err
		}
		r.add(id, op)
	}
	return r, rows.Err()
}

// Upsert writes users fetched at token (the database time at which the fetch
// began) in one statement, each only if it is newer than the stored data
// (see stateUpdate; a user whose write cannot be ordered is left alone and
// listed in Result.Resync), unchanged rows are not rewritten, and a user
// marked deleted is restored because the provider says it exists. runID,
// when non-nil, records that a backfill run listed these users.
func (s *Users) Upsert(ctx context.Context, tx pgx.Tx, users []provider.User, token time.Time, runID *int64) (Result, error) {
	tokens := make([]time.Time, len(users))
	for i := range tokens {
		tokens[i] = token
	}
	r, _, err := s.upsert(ctx, tx, users, tokens, runID)
	return r, err
}

// UpsertFetched is Upsert for users fetched by separate syncs, users[i] at
// tokens[i] (no two with the same id). It also returns what happened to each
// user by id: "insert", "update" or "stale" (a user that is not there was
// unchanged).
func (s *Users) UpsertFetched(ctx context.Context, tx pgx.Tx, users []provider.User, tokens []time.Time) (Result, map[string]string, error) {
	if len(tokens) != len(users) {
		return Result{}, nil, fmt.Errorf("upsert %d users with %d fetch tokens", len(users), len(tokens))
	}
	return s.upsert(ctx, tx, users, tokens, nil)
}

func (s *Users) upsert(ctx context.Context, tx pgx.Tx, users []provider.User, tokens []time.Time, runID *int64) (Result, map[string]string, error) {
	n := len(users)
	ids, raws := make([]string, n), make([]string, n)
	names, emails := make([]*string, n), make([]*string, n)
	created, updated := make([]*time.Time, n), make([]*time.Time, n)
	for i, u := range users {
		ids[i], raws[i], names[i], emails[i], created[i], updated[i] = u.ID, string(u.Raw), u.Name, u.Email, u.CreatedAt, u.UpdatedAt
	}
	rows, err := tx.Query(ctx, s.upsertSQL, s.Provider, ids, raws, names, emails, created, s.Redact, updated, tokens, runID, s.Target.NotifyChannel)
	if err != nil {
		return Result{}, nil, fmt.Errorf("upsert %d users into %s.users_sync: %w", n, s.Target.Schema, err)
	}
	var r Result
	ops := map[string]string{}
	for rows.Next() {
		var id, op string
		var notified *string
		if err := rows.Scan(&id, &op, &notified); err != nil {
			rows.Close()
			return r, nil, fmt.Errorf("upsert %d users into %s.users_sync: %w", n, s.Target.Schema, err)
		}
		r.add(id, op)
		if op != "resync" {
			ops[id] = op
		}
	}
	if err := rows.Err(); err != nil {
		return r, nil, fmt.Errorf("upsert %d users into %s.users_sync: %w", n, s.Target.Schema, err)
	}
	return r, ops, nil
}

// MarkDeleted records that the provider said, in a fetch begun at token,
// that the user does not exist: the row gets deleted_at (or is removed in
// hard mode) if the fetch is newer than the stored data's (a deletion
// carries no provider updated_at, so an overlapping one is not applied and
// the user is listed in Result.Resync). The deletion is recorded in
// user_state even for a user without a row (a tombstone, so that an older
// fetch still running cannot insert the user); Prune removes it later.
func (s *Users) MarkDeleted(ctx context.Context, tx pgx.Tx, userID string, token time.Time) (Result, error) {
	if s.deleteOneSQL == "" {
		return Result{}, fmt.Errorf("table %s.users_sync has no writable deleted_at column: set USERSYNC_DELETE_MODE=hard", s.Target.Schema)
	}
	var verdict string
	if err := tx.QueryRow(ctx, s.deleteStateSQL, s.Provider, userID, token).Scan(&verdict); err != nil {
		return Result{}, fmt.Errorf("mark user %s deleted: %w", userID, err)
	}
	var r Result
	switch verdict {
	case "applied":
	case "same":
		return r, nil
	case "ambiguous":
		r.Resync = []string{userID}
		fallthrough
	default:
		r.Stale = 1
		return r, nil
	}
	rows, err := tx.Query(ctx, s.deleteOneSQL, userID, s.Target.NotifyChannel)
	if err != nil {
		return Result{}, fmt.Errorf("mark user %s deleted: %w", userID, err)
	}
	d, err := collect(rows)
	if err != nil {
		return r, fmt.Errorf("mark user %s deleted: %w", userID, err)
	}
	r.Deleted = d.Deleted
	return r, nil
}

// InferDeletions marks deleted every user of the provider that run runID
// never listed and that was not written since the run started. A user whose
// stored data was written while the run was listing cannot be ordered
// against the run: it is left alone and listed in Result.Resync. Call it
// only when the run has completed.
func (s *Users) InferDeletions(ctx context.Context, tx pgx.Tx, runID int64, startedAt time.Time) (Result, error) {
	if !s.HardDelete && !s.Target.writable["deleted_at"] {
		return Result{}, fmt.Errorf("table %s.users_sync has no writable deleted_at column: set USERSYNC_DELETE_MODE=hard", s.Target.Schema)
	}
	rows, err := tx.Query(ctx, s.inferSQL, s.Provider, runID, startedAt, s.Target.NotifyChannel)
	if err != nil {
		return Result{}, fmt.Errorf("infer deletions of run %d: %w", runID, err)
	}
	r, err := collect(rows)
	if err != nil {
		return r, fmt.Errorf("infer deletions of run %d: %w", runID, err)
	}
	return r, nil
}

// Adopt gives every users_sync row without a state row one, so that rows
// written before usersync (Neon's) take part in deletion inference.
func (s *Users) Adopt(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, s.adoptSQL, s.Provider); err != nil {
		return fmt.Errorf("adopt existing rows of %s.users_sync: %w", s.Target.Schema, err)
	}
	return nil
}

// DefaultTombstoneHorizon is how long a recorded deletion of a user without
// a users_sync row is kept. It only has to outlive every fetch that began
// before the deletion was recorded: a job attempt is cancelled after 20 s
// and a stuck one rescued after 25 s, so five minutes is a wide margin.
const DefaultTombstoneHorizon = 5 * time.Minute

// pruneBatch is how many state rows one Prune statement handles.
const pruneBatch = 5000

// Prune removes the state rows of deletions recorded more than horizon ago
// for users that have no users_sync row (ids the provider never had, and
// hard-deleted users), and unmarks those of users that have one. Rows being
// written concurrently are skipped, not waited for. It returns how many
// rows it removed.
func (s *Users) Prune(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, horizon time.Duration) (int64, error) {
	var removed int64
	for {
		var del, kept int64
		if err := db.QueryRow(ctx, s.pruneSQL, s.Provider, horizon.Seconds(), pruneBatch).Scan(&del, &kept); err != nil {
			return removed, fmt.Errorf("prune user_state of %s: %w", s.Provider, err)
		}
		removed += del
		if del+kept < pruneBatch {
			return removed, nil
		}
	}
}

// Schemas are the schemas s works in.
func (s *Users) Schemas() Schemas {
	return Schemas{Internal: s.InternalSchema, River: s.RiverSchema}.withDefaults()
}

// Inferable counts, without changing anything, the live users_sync rows that
// InferDeletions(runID, startedAt) would mark deleted now (would), and the
// table's live rows (live: not marked deleted). Its conditions are
// InferDeletions': users the run never listed whose stored data was fetched
// and stored before the run started (data stored while the run listed is
// resynced, not deleted), not already recorded as deleted.
func (s *Users) Inferable(ctx context.Context, tx pgx.Tx, runID int64, startedAt time.Time) (would, live int64, err error) {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	tbl := pgx.Identifier{s.Target.Schema, "users_sync"}.Sanitize()
	liveCond := "true"
	if s.Target.writable["deleted_at"] {
		liveCond = "u.deleted_at IS NULL"
	}
	err = tx.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM `+tbl+` u WHERE `+liveCond+`),
  (SELECT count(*) FROM `+is+`.user_state s JOIN `+tbl+` u ON u.id = s.user_id
   WHERE s.provider = $1 AND s.seen_run IS DISTINCT FROM $2 AND s.fetched_at < $3
     AND s.fetched_until <= $3 AND NOT s.deleted AND `+liveCond+`)`,
		s.Provider, runID, startedAt).Scan(&live, &would)
	if err != nil {
		return 0, 0, fmt.Errorf("count deletions run %d would infer: %w", runID, err)
	}
	return would, live, nil
}

// FetchedAtMany returns user_state.fetched_at of each of userIDs (users
// without state are absent): the start, on the database clock, of the
// latest fetch of the user whose write was decided. Either the stored data
// is at least as new as the provider's state at that time, or that write
// was not applied because it could not be ordered ('ambiguous') and a sync
// enqueued in its transaction, created after it, is pending.
func (s *Users) FetchedAtMany(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, userIDs []string) (map[string]time.Time, error) {
	// Planned for these ids on every read (no cached prepared statement):
	// in a first drain, where user_state starts empty and grows, the cached
	// statement took about 4 ms a read (several times the rest of the sync's
	// database time), planned each time well under 1 ms.
	rows, err := db.Query(ctx, `SELECT user_id, fetched_at FROM `+pgx.Identifier{s.InternalSchema}.Sanitize()+
		`.user_state WHERE provider = $1 AND user_id = ANY($2) AND isfinite(fetched_at)`, pgx.QueryExecModeExec, s.Provider, userIDs)
	if err != nil {
		return nil, fmt.Errorf("read the fetch times of %d users: %w", len(userIDs), err)
	}
	defer rows.Close()
	out := make(map[string]time.Time, len(userIDs))
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("read the fetch times of %d users: %w", len(userIDs), err)
		}
		out[id] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the fetch times of %d users: %w", len(userIDs), err)
	}
	return out, nil
}

// Known reports whether usersync keeps anything of userID: a users_sync row
// or a per-user state row.
func (s *Users) Known(ctx context.Context, tx pgx.Tx, userID string) (bool, error) {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	tbl := pgx.Identifier{s.Target.Schema, "users_sync"}.Sanitize()
	var known bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+is+`.user_state WHERE provider = $1 AND user_id = $2)
  OR EXISTS (SELECT 1 FROM `+tbl+` WHERE id = $2)`, s.Provider, userID).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("look up user %s: %w", userID, err)
	}
	return known, nil
}

// HasLiveRow reports whether users_sync has a live (not deleted) row for
// userID: only then can a not-found delete anything.
func (s *Users) HasLiveRow(ctx context.Context, tx pgx.Tx, userID string) (bool, error) {
	cond := ""
	if s.Target.writable["deleted_at"] {
		cond = " AND deleted_at IS NULL"
	}
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{s.Target.Schema, "users_sync"}.Sanitize()+
		` WHERE id = $1`+cond+`)`, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("deletion breaker of %s: look up user %s: %w", s.Provider, userID, err)
	}
	return ok, nil
}

// CountUnexpectedNotFound counts one unexpected not-found of the provider
// in tx (Breakers.Count).
func (s *Users) CountUnexpectedNotFound(ctx context.Context, tx pgx.Tx, limit int) (bool, error) {
	return Breakers{s.Schemas()}.Count(ctx, tx, s.Provider, limit)
}

// ResetUnexpectedNotFound resets the provider's count in tx
// (Breakers.Reset).
func (s *Users) ResetUnexpectedNotFound(ctx context.Context, tx pgx.Tx) error {
	return Breakers{s.Schemas()}.Reset(ctx, tx, s.Provider)
}

// PauseDeletions pauses deletions by sync (if they are not already) and
// marks job jobID as waiting for them (PausedKey). Each statement commits on
// its own, outside the job's transaction. It reports whether this call
// paused them.
func (s *Users) PauseDeletions(ctx context.Context, db DB, userID string, jobID int64) (bool, error) {
	paused, err := Breakers{s.Schemas()}.Pause(ctx, db, s.Provider, userID)
	if err != nil {
		return false, err
	}
	if err := (Jobs{s.Schemas()}).MarkPaused(ctx, db, jobID); err != nil {
		return false, err
	}
	return paused, nil
}
