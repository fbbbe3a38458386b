package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// OrgsConfig says where and how an Orgs writes.
type OrgsConfig struct {
	Provider       string
	InternalSchema string
	// RiverSchema holds River's tables; "" means InternalSchema.
	RiverSchema string
	// Schema is the target schema holding organizations_sync and
	// memberships_sync.
	Schema string
	// OrganizationsChannel and MembershipsChannel receive a pg_notify per
	// change of each table ("" = off).
	OrganizationsChannel, MembershipsChannel string
	// HardDelete removes rows instead of setting deleted_at.
	HardDelete bool
	// Redact lists top-level raw_json keys dropped before storing
	// (USERSYNC_REDACT, as for users); the columns are derived from the
	// full objects.
	Redact []string
}

// Orgs performs usersync's transactional writes of one provider's
// organizations and memberships (organizations_sync, memberships_sync and
// organization_state). An organization and its whole membership set are
// written together, from one fetch, ordered by organization_state exactly
// as users are by user_state (see stateUpdate). It is safe for concurrent
// use.
type Orgs struct {
	OrgsConfig
	stateSQL, upsertOrgSQL, membersSQL, deleteOrgsSQL, deleteAllMembersSQL string
	userStateSQL, userMembersSQL, inferSQL, inferableSQL, pruneSQL         string
}

// OrgSet is one organization as one fetch read it: the organization and
// all its memberships, or (Org nil) the provider's word that it does not
// exist.
type OrgSet struct {
	ID          string
	Org         *provider.Organization
	Memberships []provider.Membership
}

// NewOrgs prepares the statements for cfg.
func NewOrgs(cfg OrgsConfig) *Orgs {
	s := &Orgs{OrgsConfig: cfg}
	s.prepare()
	return s
}

// Schemas are the schemas s works in.
func (s *Orgs) Schemas() Schemas {
	return Schemas{Internal: s.InternalSchema, River: s.RiverSchema}.withDefaults()
}

func (s *Orgs) prepare() {
	is := pgx.Identifier{s.InternalSchema}.Sanitize()
	orgs := pgx.Identifier{s.Schema, "organizations_sync"}.Sanitize()
	mems := pgx.Identifier{s.Schema, "memberships_sync"}.Sanitize()

	// $1 provider, $2 organization id, $3 fetch token, $4 run id, $5 content
	// hash (NULL for a deletion), $6 deleted.
	s.stateSQL = fmt.Sprintf(`INSERT INTO %[1]s.organization_state AS s (provider, organization_id, fetched_at, fetched_until,
    seen_run, p_updated_at, content_hash, deleted, tombstone, verdict)
VALUES ($1, $2, $3, now(), $4, NULL, $5, $6, $6, 'applied')
ON CONFLICT (provider, organization_id) DO UPDATE SET `+stateUpdate+`,
    seen_run = coalesce(excluded.seen_run, s.seen_run)
RETURNING s.verdict`, is)

	// $1 id, $2 raw, $3 name, $4 created_at, $5 provider updated_at, $6 channel.
	s.upsertOrgSQL = fmt.Sprintf(`WITH up AS (
  INSERT INTO %[1]s AS o (raw_json, id, name, created_at, updated_at, deleted_at)
  VALUES ($2::jsonb, $1, $3, $4, coalesce($5, now()), NULL)
  ON CONFLICT (id) DO UPDATE SET raw_json = excluded.raw_json, name = excluded.name,
    created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL
  WHERE (o.raw_json, o.name, o.created_at, o.deleted_at) IS DISTINCT FROM
    (excluded.raw_json, excluded.name, excluded.created_at, excluded.deleted_at)
  RETURNING o.id, (o.xmax = 0) AS inserted
)
SELECT up.id, CASE WHEN up.inserted THEN 'insert' ELSE 'update' END, %[2]s FROM up`,
		orgs, notifyExpr("$6", "up.id", "CASE WHEN up.inserted THEN 'insert' ELSE 'update' END"))

	// The membership set of one organization, written whole: the listed
	// memberships upserted, the others marked deleted (or removed).
	// $1 organization id, $2 user ids, $3 raws, $4 roles, $5 created_at,
	// $6 provider updated_at, $7 channel.
	memID := "$1 || ':' || %s"
	var gone string
	if s.HardDelete {
		gone = fmt.Sprintf(`DELETE FROM %[1]s m WHERE m.organization_id = $1 AND NOT (m.user_id = ANY($2::text[]))
  RETURNING m.user_id`, mems)
	} else {
		gone = fmt.Sprintf(`UPDATE %[1]s m SET deleted_at = now(), updated_at = now()
  WHERE m.organization_id = $1 AND m.deleted_at IS NULL AND NOT (m.user_id = ANY($2::text[]))
  RETURNING m.user_id`, mems)
	}
	s.membersSQL = fmt.Sprintf(`WITH input AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
    AS i(user_id, raw, role, created_at, p_updated_at)
), up AS (
  INSERT INTO %[1]s AS m (raw_json, organization_id, user_id, role, created_at, updated_at, deleted_at)
  SELECT i.raw::jsonb, $1, i.user_id, i.role, i.created_at, coalesce(i.p_updated_at, now()), NULL
  FROM input i ORDER BY i.user_id
  ON CONFLICT (organization_id, user_id) DO UPDATE SET raw_json = excluded.raw_json, role = excluded.role,
    created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL
  WHERE (m.raw_json, m.role, m.created_at, m.deleted_at) IS DISTINCT FROM
    (excluded.raw_json, excluded.role, excluded.created_at, excluded.deleted_at)
  RETURNING m.user_id, (m.xmax = 0) AS inserted
), gone AS (
  %[2]s
)
SELECT up.user_id, CASE WHEN up.inserted THEN 'insert' ELSE 'update' END, %[3]s FROM up
UNION ALL
SELECT gone.user_id, 'delete', %[4]s FROM gone`, mems, gone,
		notifyExpr("$7", fmt.Sprintf(memID, "up.user_id"), "CASE WHEN up.inserted THEN 'insert' ELSE 'update' END"),
		notifyExpr("$7", fmt.Sprintf(memID, "gone.user_id"), "'delete'"))

	// Organizations deleted, with all their memberships.
	// $1 organization ids, $2 channel.
	if s.HardDelete {
		s.deleteOrgsSQL = fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s o WHERE o.id = ANY($1::text[]) RETURNING o.id)
SELECT d.id, 'delete', %[2]s FROM d`, orgs, notifyExpr("$2", "d.id", "'delete'"))
		s.deleteAllMembersSQL = fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s m WHERE m.organization_id = ANY($1::text[])
  RETURNING m.organization_id, m.user_id)
SELECT d.user_id, 'delete', %[2]s FROM d`, mems, notifyExpr("$2", "d.organization_id || ':' || d.user_id", "'delete'"))
	} else {
		s.deleteOrgsSQL = fmt.Sprintf(`WITH d AS (UPDATE %[1]s o SET deleted_at = now(), updated_at = now()
  WHERE o.id = ANY($1::text[]) AND o.deleted_at IS NULL RETURNING o.id)
SELECT d.id, 'delete', %[2]s FROM d`, orgs, notifyExpr("$2", "d.id", "'delete'"))
		s.deleteAllMembersSQL = fmt.Sprintf(`WITH d AS (UPDATE %[1]s m SET deleted_at = now(), updated_at = now()
  WHERE m.organization_id = ANY($1::text[]) AND m.deleted_at IS NULL RETURNING m.organization_id, m.user_id)
SELECT d.user_id, 'delete', %[2]s FROM d`, mems, notifyExpr("$2", "d.organization_id || ':' || d.user_id", "'delete'"))
	}

	// A deleted user leaves every organization. First the states of the
	// organizations the user belongs to are locked (in a stable order) and
	// moved past this write: a membership-set write whose fetch began
	// before it cannot be ordered against it, and is not applied (a fresh
	// sync decides). $1 provider, $2 user ids, $3 fetch token.
	s.userStateSQL = fmt.Sprintf(`WITH o AS (
  SELECT s.organization_id FROM %[1]s.organization_state s
  WHERE s.provider = $1 AND s.organization_id IN (
    SELECT m.organization_id FROM %[2]s m WHERE m.user_id = ANY($2::text[]) AND m.deleted_at IS NULL)
  ORDER BY s.organization_id FOR UPDATE
)
UPDATE %[1]s.organization_state s SET fetched_at = greatest(s.fetched_at, $3), fetched_until = now(),
  p_updated_at = NULL, content_hash = NULL, verdict = 'applied'
FROM o WHERE s.provider = $1 AND s.organization_id = o.organization_id
RETURNING s.organization_id`, is, mems)
	// $1 user ids, $2 organization ids, $3 channel.
	memNotify := notifyExpr("$3", "d.organization_id || ':' || d.user_id", "'delete'")
	if s.HardDelete {
		s.userMembersSQL = fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s m WHERE m.user_id = ANY($1::text[]) AND m.organization_id = ANY($2::text[])
  RETURNING m.organization_id, m.user_id)
SELECT d.organization_id, 'delete', %[2]s FROM d`, mems, memNotify)
	} else {
		s.userMembersSQL = fmt.Sprintf(`WITH d AS (UPDATE %[1]s m SET deleted_at = now(), updated_at = now()
  WHERE m.user_id = ANY($1::text[]) AND m.organization_id = ANY($2::text[]) AND m.deleted_at IS NULL
  RETURNING m.organization_id, m.user_id)
SELECT d.organization_id, 'delete', %[2]s FROM d`, mems, memNotify)
	}

	// Deletion inference at the end of a complete organizations run, as
	// for users (Users.InferDeletions): $1 provider, $2 run id, $3 run
	// start. Returns the organizations recorded deleted ('delete') and
	// those that cannot be ordered against the run ('resync').
	s.inferSQL = fmt.Sprintf(`WITH gone AS (
  SELECT organization_id, fetched_until <= $3 AS newer FROM %[1]s.organization_state
  WHERE provider = $1 AND seen_run IS DISTINCT FROM $2 AND fetched_at < $3 AND NOT deleted
  ORDER BY organization_id FOR UPDATE
), st AS (
  UPDATE %[1]s.organization_state s SET fetched_at = $3, fetched_until = now(), p_updated_at = NULL,
    content_hash = NULL, deleted = true, tombstone = true, verdict = 'applied'
  FROM gone WHERE s.provider = $1 AND s.organization_id = gone.organization_id AND gone.newer
  RETURNING s.organization_id
)
SELECT organization_id, 'delete' FROM st
UNION ALL
SELECT organization_id, 'resync' FROM gone WHERE NOT gone.newer`, is)
	// Tombstone cleanup, as Users.Prune: $1 provider, $2 horizon in
	// seconds, $3 batch size.
	s.pruneSQL = fmt.Sprintf(`WITH c AS (
  SELECT s.organization_id, EXISTS (SELECT 1 FROM %[2]s o WHERE o.id = s.organization_id) AS has_row
  FROM %[1]s.organization_state s
  WHERE s.provider = $1 AND s.tombstone AND s.fetched_until < now() - make_interval(secs => $2)
  ORDER BY s.fetched_until LIMIT $3
  FOR UPDATE OF s SKIP LOCKED
), del AS (
  DELETE FROM %[1]s.organization_state s USING c
  WHERE s.provider = $1 AND s.organization_id = c.organization_id AND NOT c.has_row RETURNING 1
), kept AS (
  UPDATE %[1]s.organization_state s SET tombstone = false FROM c
  WHERE s.provider = $1 AND s.organization_id = c.organization_id AND c.has_row RETURNING 1
)
SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM kept)`, is, orgs)
	s.inferableSQL = fmt.Sprintf(`SELECT
  (SELECT count(*) FROM %[2]s o WHERE o.deleted_at IS NULL),
  (SELECT count(*) FROM %[1]s.organization_state s JOIN %[2]s o ON o.id = s.organization_id
   WHERE s.provider = $1 AND s.seen_run IS DISTINCT FROM $2 AND s.fetched_at < $3
     AND s.fetched_until <= $3 AND NOT s.deleted AND o.deleted_at IS NULL)`, is, orgs)
}

// Write writes organizations fetched at token (the database time at which
// the fetch began), each with its whole membership set: an organization
// is written only if its fetch is newer than the stored data's (see
// stateUpdate; one that cannot be ordered is left alone and listed in
// Result.Resync); its listed memberships are upserted and the others
// marked deleted (removed in hard mode); unchanged rows are not rewritten.
// A set with Org nil marks the organization and all its memberships
// deleted. runID, when non-nil, records that an organizations backfill run
// listed these organizations. Sets are written in id order.
func (s *Orgs) Write(ctx context.Context, tx pgx.Tx, sets []OrgSet, token time.Time, runID *int64) (Result, error) {
	sets = slices.Clone(sets)
	slices.SortFunc(sets, func(a, b OrgSet) int { return cmp.Compare(a.ID, b.ID) })
	var r Result
	for i, set := range sets {
		if i > 0 && set.ID == sets[i-1].ID {
			continue
		}
		if err := s.writeOne(ctx, tx, set, token, runID, &r); err != nil {
			return r, fmt.Errorf("write organization %s into %s: %w", set.ID, s.Schema, err)
		}
	}
	return r, nil
}

func (s *Orgs) writeOne(ctx context.Context, tx pgx.Tx, set OrgSet, token time.Time, runID *int64, r *Result) error {
	var hash []byte
	members := dedupMemberships(set.Memberships)
	if set.Org != nil {
		// What is stored: the objects re-encoded without the redacted keys.
		o := *set.Org
		var err error
		if o.Raw, err = s.clean(o.Raw); err != nil {
			return fmt.Errorf("organization object: %w", err)
		}
		set.Org = &o
		for i := range members {
			if members[i].Raw, err = s.clean(members[i].Raw); err != nil {
				return fmt.Errorf("membership of user %s: %w", members[i].UserID, err)
			}
		}
		if hash, err = contentHash(o, members); err != nil {
			return err
		}
	}
	var verdict string
	if err := tx.QueryRow(ctx, s.stateSQL, s.Provider, set.ID, token, runID, hash, set.Org == nil).Scan(&verdict); err != nil {
		return fmt.Errorf("organization state: %w", err)
	}
	switch verdict {
	case "applied":
	case "same":
		return nil
	case "ambiguous":
		r.Resync = append(r.Resync, set.ID)
		fallthrough
	default:
		r.Stale++
		return nil
	}
	if set.Org == nil {
		return s.deleteOrgs(ctx, tx, []string{set.ID}, r)
	}
	o := set.Org
	if err := addRows(tx.Query(ctx, s.upsertOrgSQL, set.ID, string(o.Raw), o.Name, o.CreatedAt, o.UpdatedAt, s.OrganizationsChannel))(r); err != nil {
		return fmt.Errorf("upsert organization: %w", err)
	}
	n := len(members)
	ids, raws, roles := make([]string, n), make([]string, n), make([]*string, n)
	created, updated := make([]*time.Time, n), make([]*time.Time, n)
	for i, m := range members {
		ids[i], raws[i], roles[i], created[i], updated[i] = m.UserID, string(m.Raw), m.Role, m.CreatedAt, m.UpdatedAt
	}
	if err := addRows(tx.Query(ctx, s.membersSQL, set.ID, ids, raws, roles, created, updated, s.MembershipsChannel))(r); err != nil {
		return fmt.Errorf("write %d memberships: %w", n, err)
	}
	return nil
}

// deleteOrgs marks organizations ids and all their memberships deleted
// (removes them in hard mode); their state is already recorded.
func (s *Orgs) deleteOrgs(ctx context.Context, tx pgx.Tx, ids []string, r *Result) error {
	if err := addRows(tx.Query(ctx, s.deleteOrgsSQL, ids, s.OrganizationsChannel))(r); err != nil {
		return fmt.Errorf("delete organizations: %w", err)
	}
	if err := addRows(tx.Query(ctx, s.deleteAllMembersSQL, ids, s.MembershipsChannel))(r); err != nil {
		return fmt.Errorf("delete memberships: %w", err)
	}
	return nil
}

// addRows adds the changes that a statement's rows report to r.
func addRows(rows pgx.Rows, err error) func(r *Result) error {
	return func(r *Result) error {
		if err != nil {
			return err
		}
		got, err := collect(rows)
		r.Inserted += got.Inserted
		r.Updated += got.Updated
		r.Deleted += got.Deleted
		return err
	}
}

// dedupMemberships keeps one membership per user (the last listed), as a
// provider listing one twice (its list shifting between pages) would
// otherwise fail the write.
func dedupMemberships(ms []provider.Membership) []provider.Membership {
	idx := make(map[string]int, len(ms))
	out := make([]provider.Membership, 0, len(ms))
	for _, m := range ms {
		if i, ok := idx[m.UserID]; ok {
			out[i] = m
			continue
		}
		idx[m.UserID] = len(out)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b provider.Membership) int { return cmp.Compare(a.UserID, b.UserID) })
	return out
}

// contentHash is the sha256 of what a write stores for an organization:
// its object and columns, and its memberships' (sorted by user). JSON is
// re-encoded first, so key order and spacing do not matter.
func contentHash(o provider.Organization, ms []provider.Membership) ([]byte, error) {
	type mem struct {
		UserID  string
		Role    *string
		Created *time.Time
		Raw     json.RawMessage
	}
	doc := struct {
		Raw     json.RawMessage
		Name    *string
		Created *time.Time
		Members []mem
	}{Name: o.Name, Created: o.CreatedAt}
	var err error
	if doc.Raw, err = canonical(o.Raw); err != nil {
		return nil, fmt.Errorf("organization object: %w", err)
	}
	for _, m := range ms {
		raw, err := canonical(m.Raw)
		if err != nil {
			return nil, fmt.Errorf("membership of user %s: %w", m.UserID, err)
		}
		doc.Members = append(doc.Members, mem{UserID: m.UserID, Role: m.Role, Created: m.CreatedAt, Raw: raw})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return h[:], nil
}

// canonical re-encodes a JSON value with sorted keys and no spacing.
func canonical(raw json.RawMessage) (json.RawMessage, error) {
	return canonicalWithout(raw, nil)
}

// canonicalWithout is canonical with the top-level keys drop removed from
// an object.
func canonicalWithout(raw json.RawMessage, drop []string) (json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if m, ok := v.(map[string]any); ok {
		for _, k := range drop {
			delete(m, k)
		}
	}
	return json.Marshal(v)
}

// clean is the raw_json stored for raw: re-encoded without the redacted
// keys.
func (s *Orgs) clean(raw json.RawMessage) (json.RawMessage, error) {
	return canonicalWithout(raw, s.Redact)
}

// DeleteUserMemberships marks every live membership of the users deleted
// (removes them in hard mode), the provider having said, in a fetch begun
// at token, that they do not exist. It returns the organizations whose
// memberships it changed: their membership sets were rewritten under their
// states' order, so the caller enqueues a fresh sync of each.
func (s *Orgs) DeleteUserMemberships(ctx context.Context, tx pgx.Tx, userIDs []string, token time.Time) ([]string, Result, error) {
	var r Result
	if len(userIDs) == 0 {
		return nil, r, nil
	}
	rows, err := tx.Query(ctx, s.userStateSQL, s.Provider, userIDs, token)
	if err != nil {
		return nil, r, fmt.Errorf("memberships of %d deleted users: %w", len(userIDs), err)
	}
	orgIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, r, fmt.Errorf("memberships of %d deleted users: %w", len(userIDs), err)
	}
	if len(orgIDs) == 0 {
		return nil, r, nil
	}
	if err := addRows(tx.Query(ctx, s.userMembersSQL, userIDs, orgIDs, s.MembershipsChannel))(&r); err != nil {
		return nil, r, fmt.Errorf("memberships of %d deleted users: %w", len(userIDs), err)
	}
	slices.Sort(orgIDs)
	return orgIDs, r, nil
}

// InferDeletions marks deleted, with all their memberships, the
// organizations of the provider that organizations run runID never listed
// and that were not written since the run started. An organization whose
// stored data was written while the run listed cannot be ordered against
// the run: it is left alone and listed in Result.Resync. Call it only when
// the run has completed. Result.Deleted counts rows of both tables; the
// second value is how many organizations it marked deleted.
func (s *Orgs) InferDeletions(ctx context.Context, tx pgx.Tx, runID int64, startedAt time.Time) (Result, int, error) {
	rows, err := tx.Query(ctx, s.inferSQL, s.Provider, runID, startedAt)
	if err != nil {
		return Result{}, 0, fmt.Errorf("infer organization deletions of run %d: %w", runID, err)
	}
	type row struct {
		ID, Op string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return Result{}, 0, fmt.Errorf("infer organization deletions of run %d: %w", runID, err)
	}
	var r Result
	var gone []string
	for _, g := range got {
		if g.Op == "resync" {
			r.Resync = append(r.Resync, g.ID)
			r.Stale++
		} else {
			gone = append(gone, g.ID)
		}
	}
	if len(gone) > 0 {
		if err := s.deleteOrgs(ctx, tx, gone, &r); err != nil {
			return r, 0, fmt.Errorf("infer organization deletions of run %d: %w", runID, err)
		}
	}
	return r, len(gone), nil
}

// Inferable counts, without changing anything, the live organizations that
// InferDeletions(runID, startedAt) would mark deleted now (would), and the
// live organizations (live).
func (s *Orgs) Inferable(ctx context.Context, tx pgx.Tx, runID int64, startedAt time.Time) (would, live int64, err error) {
	if err := tx.QueryRow(ctx, s.inferableSQL, s.Provider, runID, startedAt).Scan(&live, &would); err != nil {
		return 0, 0, fmt.Errorf("count organization deletions run %d would infer: %w", runID, err)
	}
	return would, live, nil
}

// CountOrganizations counts the live and deleted rows of
// schema.organizations_sync and the live rows of schema.memberships_sync.
func CountOrganizations(ctx context.Context, db DB, schema string) (live, deleted, memberships int64, err error) {
	if err := db.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM `+pgx.Identifier{schema, "organizations_sync"}.Sanitize()+` WHERE deleted_at IS NULL),
  (SELECT count(*) FROM `+pgx.Identifier{schema, "organizations_sync"}.Sanitize()+` WHERE deleted_at IS NOT NULL),
  (SELECT count(*) FROM `+pgx.Identifier{schema, "memberships_sync"}.Sanitize()+` WHERE deleted_at IS NULL)`).
		Scan(&live, &deleted, &memberships); err != nil {
		return 0, 0, 0, fmt.Errorf("count organizations in %s: %w", schema, err)
	}
	return live, deleted, memberships, nil
}

// Prune removes the state rows of organization deletions recorded more
// than horizon ago for organizations without an organizations_sync row
// (ids the provider never had, hard-deleted organizations), and unmarks
// those of organizations that have one, so that per-organization state is
// kept only for organizations the provider has or had. It returns how many
// rows it removed.
func (s *Orgs) Prune(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, horizon time.Duration) (int64, error) {
	var removed int64
	for {
		var del, kept int64
		if err := db.QueryRow(ctx, s.pruneSQL, s.Provider, horizon.Seconds(), pruneBatch).Scan(&del, &kept); err != nil {
			return removed, fmt.Errorf("prune organization_state of %s: %w", s.Provider, err)
		}
		removed += del
		if del+kept < pruneBatch {
			return removed, nil
		}
	}
}

// HasLiveRow reports whether organizations_sync has a live (not deleted)
// row for id: only then can a not-found delete anything.
func (s *Orgs) HasLiveRow(ctx context.Context, tx pgx.Tx, id string) (bool, error) {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{s.Schema, "organizations_sync"}.Sanitize()+
		` WHERE id = $1 AND deleted_at IS NULL)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("deletion breaker of %s: look up organization %s: %w", s.Provider, id, err)
	}
	return ok, nil
}

// OrganizationsOf returns the organizations in which userID has a live
// membership row, in id order.
func (s *Orgs) OrganizationsOf(ctx context.Context, tx pgx.Tx, userID string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT organization_id FROM `+pgx.Identifier{s.Schema, "memberships_sync"}.Sanitize()+`
		WHERE user_id = $1 AND deleted_at IS NULL ORDER BY organization_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("organizations of user %s: %w", userID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("organizations of user %s: %w", userID, err)
	}
	return ids, nil
}
