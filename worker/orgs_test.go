package worker_test

// Unit tests of the organizations' workers (USERSYNC_ORGANIZATIONS=on),
// worked one job at a time with rivertest as in rivertest_test.go. The
// provider's organizations are an in-memory imitation (memOrgs) whose
// answers each test controls; users come from the Stack Auth fake.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/usersync/usersync/internal/migrate"
	"github.com/usersync/usersync/internal/pgtest"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/worker"
)

// memOrgs is a provider's organizations in memory: lists are ordered by
// id, pageSize a page, the cursor being the last id of the previous page.
type memOrgs struct {
	mu       sync.Mutex
	orgs     map[string]provider.Organization
	members  map[string]map[string]provider.Membership
	pageSize int
	// failLists makes the next ListOrganizations calls answer HTTP 500.
	failLists int
	// beforeFetch runs ahead of each FetchOrganization.
	beforeFetch func(ctx context.Context)
	// strictCursor: a cursor naming an organization that no longer exists
	// does not resolve (as Stack Auth's cursors name a user).
	strictCursor bool
	// rateLimitMembers makes ListMemberships of these organizations answer
	// 429 once each.
	rateLimitMembers map[string]bool
}

func newMemOrgs(pageSize int) *memOrgs {
	return &memOrgs{orgs: map[string]provider.Organization{}, members: map[string]map[string]provider.Membership{}, pageSize: pageSize}
}

func (m *memOrgs) put(id, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, _ := json.Marshal(map[string]any{"id": id, "name": name})
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m.orgs[id] = provider.Organization{ID: id, Name: &name, CreatedAt: &created, Raw: raw}
	if m.members[id] == nil {
		m.members[id] = map[string]provider.Membership{}
	}
}

func (m *memOrgs) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.orgs, id)
	delete(m.members, id)
}

func (m *memOrgs) addMember(org, user, role string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, _ := json.Marshal(map[string]any{"organization_id": org, "user_id": user, "role": role})
	created := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	m.members[org][user] = provider.Membership{OrganizationID: org, UserID: user, Role: &role, CreatedAt: &created, Raw: raw}
}

func (m *memOrgs) removeMember(org, user string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members[org], user)
}

func (m *memOrgs) FetchOrganization(ctx context.Context, id string) (provider.Organization, error) {
	if m.beforeFetch != nil {
		m.beforeFetch(ctx)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orgs[id]
	if !ok {
		return o, fmt.Errorf("organization %s: %w", id, provider.ErrOrganizationNotFound)
	}
	return o, nil
}

// page returns the keys after cursor, at most size, and the next cursor.
func page[T any](m map[string]T, cursor string, size int) ([]T, string) {
	var keys []string
	for k := range m {
		if k > cursor {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	next := ""
	if len(keys) > size {
		keys = keys[:size]
		next = keys[size-1]
	}
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out, next
}

func (m *memOrgs) ListOrganizations(_ context.Context, cursor string) (provider.OrganizationPage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failLists > 0 {
		m.failLists--
		return provider.OrganizationPage{}, &provider.StatusError{StatusCode: 500}
	}
	if _, ok := m.orgs[cursor]; m.strictCursor && cursor != "" && !ok {
		return provider.OrganizationPage{}, fmt.Errorf("cursor %s: %w", cursor, provider.ErrCursorNotFound)
	}
	orgs, next := page(m.orgs, cursor, m.pageSize)
	return provider.OrganizationPage{Organizations: orgs, Next: next}, nil
}

func (m *memOrgs) ListMemberships(_ context.Context, org, cursor string) (provider.MembershipPage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rateLimitMembers[org] {
		delete(m.rateLimitMembers, org)
		return provider.MembershipPage{}, &provider.RateLimitedError{RetryAfter: 30 * time.Second}
	}
	ms, ok := m.members[org]
	if !ok {
		return provider.MembershipPage{}, fmt.Errorf("organization %s: %w", org, provider.ErrOrganizationNotFound)
	}
	list, next := page(ms, cursor, m.pageSize)
	return provider.MembershipPage{Memberships: list, Next: next}, nil
}

// orgProvider is the Stack Auth fake's client with memOrgs' organizations.
type orgProvider struct {
	provider.Provider
	*memOrgs
}

type orgUnit struct {
	*unit
	orgs *store.Orgs
	mem  *memOrgs
	fake *stackfake.Fake
}

// newOrgUnit is newUnit with organizations on: the tables migrated, the
// binding's Orgs set, memOrgs listing pageSize a page.
func newOrgUnit(t *testing.T, hard bool, pageSize int) *orgUnit {
	t.Helper()
	fake := stackfake.New(stackfake.Options{})
	t.Cleanup(fake.Close)
	mem := newMemOrgs(pageSize)
	p := orgProvider{Provider: fake.Provider(), memOrgs: mem}
	u := newUnit(t, p, hard)
	migrateOrganizations(t, u)
	orgs := store.NewOrgs(store.OrgsConfig{Provider: "stackauth", InternalSchema: "usersync", Schema: "neon_identity",
		OrganizationsChannel: "neon_identity_organizations_sync", MembershipsChannel: "neon_identity_memberships_sync", HardDelete: hard})
	u.deps.Bindings["stackauth"].Orgs = orgs
	return &orgUnit{unit: u, orgs: orgs, mem: mem, fake: fake}
}

// migrateOrganizations migrates u's database with organizations on.
func migrateOrganizations(t *testing.T, u *unit) {
	t.Helper()
	plan := migrate.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: schemaSQL(), Organizations: true}
	if err := migrate.Run(t.Context(), u.pool, plan, discard()); err != nil {
		t.Fatal(err)
	}
}

func (u *orgUnit) orgSyncWorker(tx pgx.Tx) *rivertest.Worker[jobs.SyncOrganizationArgs, pgx.Tx] {
	w, _ := worker.NewTestOrgWorkers(u.on(tx))
	return rivertest.NewWorker(u.t, riverpgxv5.New(nil), u.config(), w)
}

func (u *orgUnit) orgBackfillWorker(tx pgx.Tx) *rivertest.Worker[jobs.BackfillOrganizationsArgs, pgx.Tx] {
	_, w := worker.NewTestOrgWorkers(u.on(tx))
	return rivertest.NewWorker(u.t, riverpgxv5.New(nil), u.config(), w)
}

// syncOrg works one sync_organization job for id in tx.
func (u *orgUnit) syncOrg(tx pgx.Tx, id string, opts *river.InsertOpts) *rivertest.WorkResult {
	u.t.Helper()
	res, err := u.orgSyncWorker(tx).Work(u.t.Context(), u.t, tx, jobs.SyncOrganizationArgs{Provider: "stackauth", OrganizationID: id}, opts)
	if err != nil || res == nil {
		u.t.Fatalf("sync organization %s: %v", id, err)
	}
	wantKind(u.t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	return res
}

// membership is one memberships_sync row.
type membership struct {
	User    string
	Role    *string
	Deleted bool
}

func members(t *testing.T, db querier, org string) []membership {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT user_id, role, deleted_at IS NOT NULL FROM neon_identity.memberships_sync
		WHERE organization_id = $1 ORDER BY user_id`, org)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[membership])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func liveMembers(t *testing.T, db querier, org string) []string {
	t.Helper()
	var out []string
	for _, m := range members(t, db, org) {
		if !m.Deleted {
			out = append(out, m.User)
		}
	}
	return out
}

func orgName(t *testing.T, db querier, id string) (name string, deleted, exists bool) {
	t.Helper()
	var n *string
	err := db.QueryRow(t.Context(), `SELECT name, deleted_at IS NOT NULL FROM neon_identity.organizations_sync WHERE id = $1`, id).Scan(&n, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if n != nil {
		name = *n
	}
	return name, deleted, true
}

func waitingOrgSyncs(t *testing.T, db querier, org string) int {
	t.Helper()
	return count(t, db, `SELECT count(*) FROM usersync.river_job WHERE kind = 'sync_organization' AND state = 'available' AND args->>'organization_id' = $1`, org)
}

// A sync writes the organization and every membership, read across the
// provider's pages, with the job's completion.
func TestSyncOrganizationWritesOrganizationAndMembers(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 2)
	u.mem.put("org_1", "Acme")
	for _, user := range []string{"u1", "u2", "u3"} {
		u.mem.addMember("org_1", user, "org:member")
	}
	tx := u.begin()
	u.syncOrg(tx, "org_1", nil)
	if name, deleted, ok := orgName(t, tx, "org_1"); !ok || deleted || name != "Acme" {
		t.Fatalf("organization row: %q deleted=%v exists=%v; want live Acme", name, deleted, ok)
	}
	got := members(t, tx, "org_1")
	if len(got) != 3 {
		t.Fatalf("memberships %+v, want u1, u2, u3 (read across two pages)", got)
	}
	for _, m := range got {
		if m.Deleted || m.Role == nil || *m.Role != "org:member" {
			t.Errorf("membership %+v: want live with role org:member", m)
		}
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE raw_json->>'user_id' = user_id AND raw_json->>'organization_id' = organization_id`); n != 3 {
		t.Errorf("%d memberships keep the provider's object, want 3", n)
	}
}

// The provider's not-found marks the organization and all its memberships
// deleted (soft), or removes them (hard).
func TestSyncOrganizationNotFoundDeletesWithMembers(t *testing.T) {
	t.Parallel()
	for _, hard := range []bool{false, true} {
		t.Run(map[bool]string{false: "soft", true: "hard"}[hard], func(t *testing.T) {
			t.Parallel()
			u := newOrgUnit(t, hard, 10)
			u.mem.put("org_1", "Acme")
			u.mem.addMember("org_1", "u1", "admin")
			u.mem.addMember("org_1", "u2", "member")
			tx := u.begin()
			u.syncOrg(tx, "org_1", nil)
			u.mem.remove("org_1")
			u.syncOrg(tx, "org_1", nil)
			_, deleted, exists := orgName(t, tx, "org_1")
			got := members(t, tx, "org_1")
			if hard {
				if exists || len(got) != 0 {
					t.Fatalf("hard mode: organization exists=%v, memberships %+v; want all removed", exists, got)
				}
				return
			}
			if !exists || !deleted {
				t.Fatalf("soft mode: organization exists=%v deleted=%v; want marked deleted", exists, deleted)
			}
			if len(got) != 2 || !got[0].Deleted || !got[1].Deleted {
				t.Fatalf("soft mode: memberships %+v; want both marked deleted", got)
			}
			if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE deleted_at IS NOT NULL AND updated_at >= deleted_at`); n != 1 {
				t.Errorf("the deleted organization's updated_at is not the deletion's time")
			}
		})
	}
}

// A membership the provider no longer lists is marked deleted; the others
// are not rewritten (their updated_at stays); a member who comes back is
// restored.
func TestSyncOrganizationMembershipRemoved(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.mem.put("org_1", "Acme")
	u.mem.addMember("org_1", "u1", "admin")
	u.mem.addMember("org_1", "u2", "member")
	tx := u.begin()
	u.syncOrg(tx, "org_1", nil)
	var before time.Time
	if err := tx.QueryRow(t.Context(), `SELECT updated_at FROM neon_identity.memberships_sync WHERE user_id = 'u1'`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	u.mem.removeMember("org_1", "u2")
	u.syncOrg(tx, "org_1", nil)
	if got := liveMembers(t, tx, "org_1"); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("live members %v, want [u1]", got)
	}
	if got := members(t, tx, "org_1"); len(got) != 2 || !got[1].Deleted {
		t.Fatalf("memberships %+v: want u2 kept, marked deleted", got)
	}
	var after time.Time
	if err := tx.QueryRow(t.Context(), `SELECT updated_at FROM neon_identity.memberships_sync WHERE user_id = 'u1'`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !after.Equal(before) {
		t.Errorf("u1's unchanged membership was rewritten (updated_at %s → %s)", before, after)
	}
	u.mem.addMember("org_1", "u2", "member")
	u.syncOrg(tx, "org_1", nil)
	if got := liveMembers(t, tx, "org_1"); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("live members %v after u2 rejoined, want [u1 u2]", got)
	}
}

// Two syncs of one organization whose fetches overlap, the older finishing
// last: the older one's data is not written (no stale overwrite), and as
// nothing orders them it asks for a fresh sync.
func TestSyncOrganizationStaleFetchNotApplied(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.mem.put("org_1", "Old name")
	u.mem.addMember("org_1", "u1", "member")
	tx := u.begin()
	// The older sync: its attempt began a minute ago, and it read the old
	// state; before it writes, a newer sync stores the new state.
	var newerErr error
	u.mem.beforeFetch = func(ctx context.Context) {
		u.mem.beforeFetch = nil
		u.mem.put("org_1", "New name")
		u.mem.addMember("org_1", "u2", "member")
		u.clock = nil
		_, newerErr = u.orgSyncWorker(tx).Work(ctx, t, tx, jobs.SyncOrganizationArgs{Provider: "stackauth", OrganizationID: "org_1"}, nil)
		u.mem.put("org_1", "Old name")
		u.mem.removeMember("org_1", "u2")
	}
	u.clock = offsetClock{-time.Minute}
	res, err := u.orgSyncWorker(tx).Work(t.Context(), t, tx, jobs.SyncOrganizationArgs{Provider: "stackauth", OrganizationID: "org_1"}, nil)
	if err != nil || newerErr != nil {
		t.Fatalf("older sync: %v; newer sync: %v", err, newerErr)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	if name, _, _ := orgName(t, tx, "org_1"); name != "New name" {
		t.Fatalf("organization name %q after the older fetch finished last, want the newer fetch's", name)
	}
	if got := liveMembers(t, tx, "org_1"); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("live members %v, want the newer fetch's [u1 u2]", got)
	}
	if n := waitingOrgSyncs(t, tx, "org_1"); n != 1 {
		t.Errorf("%d fresh syncs enqueued, want 1 (the older write could not be ordered)", n)
	}
}

// A job dirtied while it ran (an event for its organization coalesced into
// it) enqueues one follow-up sync.
func TestSyncOrganizationDirtyEnqueuesFollowUp(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.mem.put("org_1", "Acme")
	var tx pgx.Tx
	var marked int
	var markErr error
	u.mem.beforeFetch = func(ctx context.Context) {
		marked, markErr = jobs.EnqueueOrganizationSyncs(ctx, tx, u.inserter, "usersync", []jobs.OrgRef{{Provider: "stackauth", OrganizationID: "org_1"}})
	}
	u.clock = offsetClock{-time.Minute}
	tx = u.begin()
	job, err := u.inserter.InsertTx(t.Context(), tx, jobs.SyncOrganizationArgs{Provider: "stackauth", OrganizationID: "org_1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := u.orgSyncWorker(tx).WorkJob(t.Context(), t, tx, job.Job)
	if err != nil || markErr != nil || marked != 1 {
		t.Fatalf("work: %v; the event during the fetch marked %d jobs (%v), want 1", err, marked, markErr)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	if n := waitingOrgSyncs(t, tx, "org_1"); n != 1 {
		t.Fatalf("%d follow-up syncs, want 1", n)
	}
}

// A user the provider no longer has: sync_user marks the row deleted and,
// in the same transaction, every membership of the user, and asks for a
// fresh sync of each organization the user belonged to.
func TestUserDeletionDeletesMemberships(t *testing.T) {
	t.Parallel()
	for _, hard := range []bool{false, true} {
		t.Run(map[bool]string{false: "soft", true: "hard"}[hard], func(t *testing.T) {
			t.Parallel()
			u := newOrgUnit(t, hard, 10)
			id := u.fake.CreateUser()
			keep := u.fake.CreateUser()
			for _, org := range []string{"org_1", "org_2"} {
				u.mem.put(org, org)
				u.mem.addMember(org, id, "member")
				u.mem.addMember(org, keep, "member")
			}
			tx := u.begin()
			u.syncOrg(tx, "org_1", nil)
			u.syncOrg(tx, "org_2", nil)
			if _, err := u.sync(tx, id, nil); err != nil {
				t.Fatal(err)
			}
			// (The user's first sync asked for its organizations' syncs.)
			if _, err := tx.Exec(t.Context(), `DELETE FROM usersync.river_job WHERE kind = 'sync_organization'`); err != nil {
				t.Fatal(err)
			}
			u.fake.DeleteUser(id)
			res, err := u.sync(tx, id, deletedEvent)
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			for _, org := range []string{"org_1", "org_2"} {
				if got := liveMembers(t, tx, org); !slices.Equal(got, []string{keep}) {
					t.Errorf("%s: live members %v, want only the remaining user", org, got)
				}
				wantRows := 2
				if hard {
					wantRows = 1
				}
				if got := members(t, tx, org); len(got) != wantRows {
					t.Errorf("%s: %d membership rows, want %d", org, len(got), wantRows)
				}
				if n := waitingOrgSyncs(t, tx, org); n != 1 {
					t.Errorf("%s: %d syncs enqueued, want 1", org, n)
				}
			}
			// An organization sync whose fetch began before the deletion
			// (and still lists the user) cannot bring the membership back.
			u.clock = offsetClock{-time.Minute}
			u.syncOrg(tx, "org_1", nil)
			if got := liveMembers(t, tx, "org_1"); slices.Contains(got, id) {
				t.Errorf("an organization fetch older than the user's deletion brought the membership back: %v", got)
			}
		})
	}
}

// orgBackfill works first, then each backfill_organizations job it
// enqueues in turn, calling before (if set) ahead of each further page. A
// page that fails stops the loop: its result is last, and err is its error.
func (u *orgUnit) orgBackfill(tx pgx.Tx, first *rivertype.JobRow, firstArgs jobs.BackfillOrganizationsArgs, before func(jobs.BackfillOrganizationsArgs)) ([]*rivertest.WorkResult, error) {
	u.t.Helper()
	ctx := u.t.Context()
	w := u.orgBackfillWorker(tx)
	var res *rivertest.WorkResult
	var err error
	if first != nil {
		res, err = w.WorkJob(ctx, u.t, tx, first)
	} else {
		res, err = w.Work(ctx, u.t, tx, firstArgs, nil)
	}
	out := []*rivertest.WorkResult{res}
	if err != nil {
		return out, err
	}
	for len(out) < 50 {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM usersync.river_job WHERE kind = 'backfill_organizations' AND state = 'available' ORDER BY id LIMIT 1`).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return out, nil
		}
		if err != nil {
			u.t.Fatal(err)
		}
		job, err := u.inserter.JobGetTx(ctx, tx, id)
		if err != nil {
			u.t.Fatal(err)
		}
		if before != nil {
			var a jobs.BackfillOrganizationsArgs
			if err := json.Unmarshal(job.EncodedArgs, &a); err != nil {
				u.t.Fatal(err)
			}
			before(a)
		}
		res, err := w.WorkJob(ctx, u.t, tx, job)
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	u.t.Fatal("the backfill did not end within 50 pages")
	return nil, nil
}

func (u *orgUnit) orgRuns(tx pgx.Tx) []store.Run {
	u.t.Helper()
	runs, err := store.New(u.store.Schemas()).Runs.Kind(store.RunOrganizations).All(u.t.Context(), tx, "stackauth")
	if err != nil {
		u.t.Fatal(err)
	}
	return runs
}

// An organizations run lists every page, each organization with all its
// members; the last page of the complete run marks deleted the
// organizations it never listed, with their memberships. A users run
// starts it.
func TestBackfillOrganizationsPagesAndInference(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 2)
	for i := range 5 {
		org := fmt.Sprintf("org_%d", i)
		u.mem.put(org, org)
		u.mem.addMember(org, "u1", "member")
		u.mem.addMember(org, fmt.Sprintf("u%d", i+2), "admin")
	}
	tx := u.begin()
	// The users run's first page enqueues the organizations chain.
	u.backfill(tx, jobs.BackfillPageArgs{Provider: "stackauth", Force: true}, nil)
	usersRun := u.latestRun(tx)
	var first int64
	if err := tx.QueryRow(t.Context(), `SELECT id FROM usersync.river_job WHERE kind = 'backfill_organizations' AND state = 'available'
		AND (args->>'users_run_id')::bigint = $1`, usersRun.ID).Scan(&first); err != nil {
		t.Fatalf("the users run enqueued no organizations run: %v", err)
	}
	job, err := u.inserter.JobGetTx(t.Context(), tx, first)
	if err != nil {
		t.Fatal(err)
	}
	results, err := u.orgBackfill(tx, job, jobs.BackfillOrganizationsArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 {
		t.Fatalf("%d pages, want 3 (5 organizations, 2 a page)", len(results))
	}
	runs := u.orgRuns(tx)
	if len(runs) != 1 || runs[0].Status != store.RunCompleted || runs[0].Listed != 5 || runs[0].UsersRun == nil || *runs[0].UsersRun != usersRun.ID {
		t.Fatalf("organizations runs %+v: want one completed run of 5 started by users run %d", runs, usersRun.ID)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE deleted_at IS NULL`); n != 10 {
		t.Fatalf("%d live memberships, want 10", n)
	}
	// org_3 is deleted at the provider without any event: the next complete
	// run infers it.
	u.mem.remove("org_3")
	if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, deleted, _ := orgName(t, tx, "org_3"); !deleted {
		t.Errorf("org_3, absent from a complete run, is not marked deleted")
	}
	if got := liveMembers(t, tx, "org_3"); len(got) != 0 {
		t.Errorf("org_3's memberships %v stay live", got)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE deleted_at IS NULL`); n != 4 {
		t.Errorf("%d live organizations, want 4", n)
	}
	if runs := u.orgRuns(tx); runs[len(runs)-1].Deleted != 1 {
		t.Errorf("run deleted %d, want 1", runs[len(runs)-1].Deleted)
	}
}

// A page that fails leaves the run running with its error and infers
// nothing; the retried page resumes from the same cursor and the run
// completes.
func TestBackfillOrganizationsResumesAfterAFailedPage(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 2)
	for i := range 4 {
		u.mem.put(fmt.Sprintf("org_%d", i), "x")
	}
	tx := u.begin()
	// org_gone was stored before the run; the provider no longer has it.
	if _, err := u.orgs.Write(t.Context(), tx, []store.OrgSet{{ID: "org_gone", Org: &provider.Organization{ID: "org_gone", Raw: json.RawMessage(`{"id":"org_gone"}`)}}},
		time.Now().Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	results, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, func(jobs.BackfillOrganizationsArgs) {
		u.mem.mu.Lock()
		u.mem.failLists = 1
		u.mem.mu.Unlock()
	})
	if err == nil || len(results) != 2 {
		t.Fatalf("pages %d, err %v: want the second page to fail", len(results), err)
	}
	failed := results[1].Job
	if (failed.State != rivertype.JobStateRetryable && failed.State != rivertype.JobStateAvailable) || len(failed.Errors) != 1 {
		t.Fatalf("failed page: state %s, errors %v; want to be retried", failed.State, failed.Errors)
	}
	runs := u.orgRuns(tx)
	if len(runs) != 1 || runs[0].Status != store.RunRunning || runs[0].LastError == nil {
		t.Fatalf("runs %+v: want one running run with the page's error", runs)
	}
	if _, deleted, _ := orgName(t, tx, "org_gone"); deleted {
		t.Fatal("an incomplete run inferred a deletion")
	}
	// The retry of the same job.
	if _, err := tx.Exec(t.Context(), `UPDATE usersync.river_job SET state = 'available', scheduled_at = now() WHERE id = $1`, failed.ID); err != nil {
		t.Fatal(err)
	}
	job, err := u.inserter.JobGetTx(t.Context(), tx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.orgBackfill(tx, job, jobs.BackfillOrganizationsArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	runs = u.orgRuns(tx)
	if len(runs) != 1 || runs[0].Status != store.RunCompleted || runs[0].Listed != 4 || runs[0].Deleted != 1 {
		t.Fatalf("runs %+v: want the run completed, 4 listed, 1 deleted", runs)
	}
	if _, deleted, _ := orgName(t, tx, "org_gone"); !deleted {
		t.Error("org_gone is not marked deleted by the complete run")
	}
}

// Each change sends one notification per row on its table's channel, in
// the change's transaction; a sync that changes nothing sends none.
func TestOrganizationNotifications(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	conn, err := u.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `LISTEN neon_identity_organizations_sync; LISTEN neon_identity_memberships_sync`); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		var p struct{ ID, Op string }
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			t.Fatalf("payload %q: %v", n.Payload, err)
		}
		return n.Channel + " " + p.ID + " " + p.Op
	}
	// drain reads the notifications up to a marker sent after the syncs.
	drain := func() []string {
		t.Helper()
		if _, err := u.pool.Exec(t.Context(), `SELECT pg_notify('neon_identity_memberships_sync', '{"id":"marker","op":"marker"}')`); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			s := next()
			if s == "neon_identity_memberships_sync marker marker" {
				slices.Sort(got)
				return got
			}
			got = append(got, s)
		}
	}
	syncCommitted := func() {
		t.Helper()
		tx := u.begin()
		u.syncOrg(tx, "org_1", nil)
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	u.mem.put("org_1", "Acme")
	u.mem.addMember("org_1", "u1", "admin")
	u.mem.addMember("org_1", "u2", "member")
	syncCommitted()
	want := []string{
		"neon_identity_memberships_sync org_1:u1 insert",
		"neon_identity_memberships_sync org_1:u2 insert",
		"neon_identity_organizations_sync org_1 insert",
	}
	if got := drain(); !slices.Equal(got, want) {
		t.Fatalf("notifications %q, want %q", got, want)
	}
	syncCommitted()
	if got := drain(); len(got) != 0 {
		t.Fatalf("a sync that changed nothing notified %q", got)
	}
	u.mem.put("org_1", "Acme Corp")
	u.mem.removeMember("org_1", "u2")
	syncCommitted()
	want = []string{"neon_identity_memberships_sync org_1:u2 delete", "neon_identity_organizations_sync org_1 update"}
	if got := drain(); !slices.Equal(got, want) {
		t.Fatalf("notifications %q, want %q", got, want)
	}
	u.mem.remove("org_1")
	syncCommitted()
	want = []string{"neon_identity_memberships_sync org_1:u1 delete", "neon_identity_organizations_sync org_1 delete"}
	if got := drain(); !slices.Equal(got, want) {
		t.Fatalf("notifications %q, want %q", got, want)
	}
}

// Migrate creates organizations_sync and memberships_sync (with the index
// on user_id) only when organizations are on, idempotently; the check
// requires them then.
func TestMigrateOrganizationTables(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t), 2)
	ctx := t.Context()
	plan := migrate.Plan{InternalSchema: "usersync", TargetSchemas: []string{"neon_identity"}, SchemaSQL: schemaSQL()}
	tables := func() int {
		return count(t, pool, `SELECT count(*) FROM pg_tables WHERE schemaname = 'neon_identity' AND tablename IN ('organizations_sync', 'memberships_sync')`)
	}
	if err := migrate.Run(ctx, pool, plan, discard()); err != nil {
		t.Fatal(err)
	}
	if n := tables(); n != 0 {
		t.Fatalf("organizations off: %d organization tables created, want 0", n)
	}
	plan.Organizations = true
	var nm *migrate.NotMigratedError
	if err := migrate.Check(ctx, pool, plan); !errors.As(err, &nm) {
		t.Fatalf("check with organizations on, before migrating them: %v; want NotMigratedError", err)
	}
	for range 2 {
		if err := migrate.Run(ctx, pool, plan, discard()); err != nil {
			t.Fatal(err)
		}
	}
	if n := tables(); n != 2 {
		t.Fatalf("organizations on: %d organization tables, want 2", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'neon_identity' AND tablename = 'memberships_sync' AND indexdef LIKE '%(user_id)%'`); n != 1 {
		t.Errorf("memberships_sync has no index on user_id")
	}
	if err := migrate.Check(ctx, pool, plan); err != nil {
		t.Fatalf("check after migrate: %v", err)
	}
	// A users run and an organizations run of one provider may run at
	// once, also while migrate runs again; two of one kind may not.
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.backfill_run (provider, status, started_at, kind)
		VALUES ('stackauth', 'running', now(), 'users'), ('stackauth', 'running', now(), 'organizations')`); err != nil {
		t.Fatalf("a users run beside an organizations run: %v", err)
	}
	if err := migrate.Run(ctx, pool, plan, discard()); err != nil {
		t.Fatalf("migrate with both kinds running: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO usersync.backfill_run (provider, status, started_at, kind)
		VALUES ('stackauth', 'running', now(), 'organizations')`); err == nil {
		t.Fatal("two organizations runs of one provider running at once")
	}
}

// prune_user_state also removes the recorded deletions of organizations
// without a row (ids the provider never had) past the horizon, and keeps
// the state of a soft-deleted organization whose row remains.
func TestPruneRemovesOrganizationTombstones(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.mem.put("org_deleted", "x")
	tx := u.begin()
	u.syncOrg(tx, "org_deleted", nil)
	u.mem.remove("org_deleted")
	u.syncOrg(tx, "org_deleted", nil)
	u.syncOrg(tx, "org_never", nil)
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, exists := orgName(t, u.pool, "org_never"); exists {
		t.Fatal("an organization the provider never had got a row")
	}
	const horizon = 10 * time.Millisecond
	for count(t, u.pool, `SELECT count(*) FROM usersync.organization_state WHERE fetched_until > clock_timestamp() - $1::interval`, horizon) > 0 {
		time.Sleep(time.Millisecond)
	}
	state := `SELECT count(*) FROM usersync.organization_state WHERE organization_id = $1`
	tx = u.begin()
	u.deps.TombstoneHorizon = horizon
	res, err := u.pruneWorker(tx).Work(t.Context(), t, tx, jobs.PruneUserStateArgs{Provider: "stackauth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	if n := count(t, tx, state, "org_never"); n != 0 {
		t.Errorf("the tombstone of an organization without a row survived the horizon")
	}
	if n := count(t, tx, state, "org_deleted"); n != 1 {
		t.Errorf("a soft-deleted organization's state was pruned with its row still there")
	}
}

// A user that a complete users run infers deleted leaves every
// organization in the same transaction.
func TestUserInferredDeletedLeavesOrganizations(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.fake.CreateUser()
	tx := u.begin()
	u.seedRows(tx, "ghost-a")
	raw := json.RawMessage(`{"user_id":"ghost-a"}`)
	if _, err := u.orgs.Write(t.Context(), tx, []store.OrgSet{{ID: "org_1", Org: &provider.Organization{ID: "org_1", Raw: json.RawMessage(`{"id":"org_1"}`)},
		Memberships: []provider.Membership{{OrganizationID: "org_1", UserID: "ghost-a", Raw: raw}}}}, time.Now().Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	u.backfill(tx, jobs.BackfillPageArgs{Provider: "stackauth", Force: true}, nil)
	if r := u.latestRun(tx); r.Status != store.RunCompleted || r.Deleted != 1 {
		t.Fatalf("users run %s, %d deleted; want completed, 1", r.Status, r.Deleted)
	}
	if got := liveMembers(t, tx, "org_1"); len(got) != 0 {
		t.Fatalf("live members %v after their user was inferred deleted, want none", got)
	}
	if n := waitingOrgSyncs(t, tx, "org_1"); n != 1 {
		t.Errorf("%d syncs of the organization enqueued, want 1", n)
	}
}

// The sync path's deletion breaker covers organizations: once the
// provider's unexpected not-found answers reached the limit, an
// organization not found without its deletion event is not deleted (the
// job waits); after the organization's deletion event it is.
func TestSyncOrganizationDeletionBreaker(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	for _, org := range []string{"org_1", "org_2"} {
		u.mem.put(org, org)
		u.mem.addMember(org, "u1", "member")
	}
	tx := u.begin()
	u.syncOrg(tx, "org_1", nil)
	u.syncOrg(tx, "org_2", nil)
	u.mem.remove("org_1")
	u.mem.remove("org_2")
	if _, err := tx.Exec(t.Context(), `INSERT INTO usersync.deletion_breaker (provider, unexpected_not_found) VALUES ('stackauth', $1)`,
		worker.DeleteGuardMinRows); err != nil {
		t.Fatal(err)
	}
	res, err := u.orgSyncWorker(tx).Work(t.Context(), t, tx, jobs.SyncOrganizationArgs{Provider: "stackauth", OrganizationID: "org_1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, res, river.EventKindJobSnoozed, rivertype.JobStateScheduled)
	if _, deleted, _ := orgName(t, tx, "org_1"); deleted {
		t.Fatal("an unexpected not-found past the breaker's limit deleted the organization")
	}
	if n := count(t, tx, `SELECT count(*) FROM usersync.deletion_breaker WHERE paused_at IS NOT NULL`); n != 1 {
		t.Fatal("deletions were not paused")
	}
	u.syncOrg(tx, "org_2", deletedEvent)
	if _, deleted, _ := orgName(t, tx, "org_2"); !deleted {
		t.Fatal("the organization's own deletion event did not let its not-found delete it")
	}
	if got := liveMembers(t, tx, "org_2"); len(got) != 0 {
		t.Fatalf("live members %v of a deleted organization", got)
	}
}

// A run that would infer more organizations deleted than the guard allows
// is held and deletes nothing.
func TestBackfillOrganizationsOverTheGuardIsHeld(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.mem.put("org_kept", "x")
	tx := u.begin()
	gone := ghosts(worker.DeleteGuardMinRows + 1)
	for _, id := range gone {
		if _, err := u.orgs.Write(t.Context(), tx, []store.OrgSet{{ID: id, Org: &provider.Organization{ID: id, Raw: json.RawMessage(`{}`)}}},
			time.Now().Add(-time.Hour), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, nil); err != nil {
		t.Fatal(err)
	}
	runs := u.orgRuns(tx)
	r := runs[len(runs)-1]
	if r.Status != store.RunHeld || r.HeldDeletions == nil || *r.HeldDeletions != int64(len(gone)) || r.Deleted != 0 {
		t.Fatalf("run %s, held %v, deleted %d; want held with %d", r.Status, r.HeldDeletions, r.Deleted, len(gone))
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE deleted_at IS NULL`); n != len(gone)+1 {
		t.Errorf("%d live organizations, want %d (nothing deleted)", n, len(gone)+1)
	}
}

// A cursor that no longer resolves (the organization it names was deleted
// between pages) lists again from the start: the run still completes, never
// early, and infers the deleted organization.
func TestBackfillOrganizationsLostCursorRestarts(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 2)
	u.mem.strictCursor = true
	for i := range 5 {
		u.mem.put(fmt.Sprintf("org_%d", i), "x")
	}
	tx := u.begin()
	if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, nil); err != nil {
		t.Fatal(err)
	}
	removed := false
	if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, func(a jobs.BackfillOrganizationsArgs) {
		if !removed {
			removed = true
			u.mem.remove(a.Cursor)
		}
	}); err != nil {
		t.Fatal(err)
	}
	runs := u.orgRuns(tx)
	r := runs[len(runs)-1]
	// The run listed the organization before it was deleted: it is not
	// this run's to infer, but the next one's.
	if r.Status != store.RunCompleted || r.Restarts != 1 || r.Deleted != 0 {
		t.Fatalf("run %s, %d restarts, %d deleted; want completed, 1, 0", r.Status, r.Restarts, r.Deleted)
	}
	if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE deleted_at IS NULL`); n != 4 {
		t.Errorf("%d live organizations after the next run, want 4", n)
	}
}

// A page whose memberships take longer than the page budget to read is
// written in parts, each job continuing after the last organization the
// previous one wrote: the run still lists every organization exactly once
// and completes.
func TestBackfillOrganizationsPageInParts(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 20)
	u.deps.OrganizationPageBudget = time.Nanosecond
	for i := range 20 {
		org := fmt.Sprintf("org_%02d", i)
		u.mem.put(org, org)
		u.mem.addMember(org, "u1", "member")
	}
	tx := u.begin()
	var afters []string
	results, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, func(a jobs.BackfillOrganizationsArgs) {
		afters = append(afters, a.After)
	})
	if err != nil {
		t.Fatal(err)
	}
	// 8 organizations a part (one batch of fetchers each).
	if len(results) != 3 || !slices.Equal(afters, []string{"org_07", "org_15"}) {
		t.Fatalf("%d jobs continuing after %v; want 3, after org_07 and org_15", len(results), afters)
	}
	runs := u.orgRuns(tx)
	if r := runs[len(runs)-1]; r.Status != store.RunCompleted || r.Listed != 20 {
		t.Fatalf("run %s, %d listed; want completed, 20", r.Status, r.Listed)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE deleted_at IS NULL`); n != 20 {
		t.Errorf("%d live memberships, want 20", n)
	}
}

// A 429 on one organization's memberships keeps what the page read before
// it: written, and the next job goes on from there, so a rate-limited
// provider cannot make a page start over forever. A 429 with nothing read
// snoozes the job.
func TestBackfillOrganizationsRateLimitKeepsProgress(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 20)
	for i := range 20 {
		org := fmt.Sprintf("org_%02d", i)
		u.mem.put(org, org)
		u.mem.addMember(org, "u1", "member")
	}
	u.mem.rateLimitMembers = map[string]bool{"org_03": true}
	tx := u.begin()
	var afters []string
	results, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, func(a jobs.BackfillOrganizationsArgs) {
		afters = append(afters, a.After)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(afters) == 0 || afters[0] != "org_02" {
		t.Fatalf("continuations after %v; want the first after org_02 (the organizations read before the 429)", afters)
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE organization_id < 'org_03' AND deleted_at IS NULL`); n != 3 {
		t.Errorf("%d memberships of org_00..org_02 written; want 3", n)
	}
	runs := u.orgRuns(tx)
	if r := runs[len(runs)-1]; r.Status != store.RunCompleted || r.Listed != 20 || len(results) < 2 {
		t.Fatalf("run %s, %d listed, %d jobs; want completed, 20 listed, in more than one job", r.Status, r.Listed, len(results))
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE deleted_at IS NULL`); n != 20 {
		t.Errorf("%d live memberships, want 20", n)
	}

	// A 429 on the first organization read: nothing to keep, the job snoozes.
	u.mem.mu.Lock()
	u.mem.rateLimitMembers = map[string]bool{"org_00": true}
	u.mem.mu.Unlock()
	results, err = u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth"}, nil)
	if len(results) == 0 {
		t.Fatalf("no job worked (err %v)", err)
	}
	if st := results[0].Job.State; st != rivertype.JobStateScheduled {
		t.Errorf("first page after a 429 with nothing read: state %s, want scheduled (snoozed); err %v", st, err)
	}
}

// One organizations chain at a time: a first page that finds another run's
// chain going neither starts a run nor abandons the running one, which
// completes. An older users run's page that ran late (rate-limited) does
// nothing; a newer users run's page waits (snoozes) and starts its run
// after. A running run whose chain ended is superseded.
func TestBackfillOrganizationsOneChainAtATime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		running, late int64
	}{{"older page late", 2, 1}, {"newer page", 1, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			u := newOrgUnit(t, false, 2)
			for i := range 4 {
				u.mem.put(fmt.Sprintf("org_%d", i), "x")
			}
			tx := u.begin()
			w := u.orgBackfillWorker(tx)
			if _, err := w.Work(t.Context(), t, tx, jobs.BackfillOrganizationsArgs{Provider: "stackauth", UsersRunID: tc.running}, nil); err != nil {
				t.Fatal(err)
			}
			res, err := w.Work(t.Context(), t, tx, jobs.BackfillOrganizationsArgs{Provider: "stackauth", UsersRunID: tc.late}, nil)
			if err != nil {
				t.Fatal(err)
			}
			newer := tc.late > tc.running
			if newer {
				// A short snooze leaves the job available, due later.
				if res.EventKind != river.EventKindJobSnoozed || !res.Job.ScheduledAt.After(time.Now()) {
					t.Fatalf("job worked: event %s, state %s, due %s; want snoozed, due later", res.EventKind, res.Job.State, res.Job.ScheduledAt)
				}
			} else {
				wantKind(t, res, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			}
			runs := u.orgRuns(tx)
			if len(runs) != 1 || runs[0].Status != store.RunRunning || runs[0].UsersRun == nil || *runs[0].UsersRun != tc.running {
				t.Fatalf("runs %+v: want only the first chain's run, still running", runs)
			}
			var id int64
			if err := tx.QueryRow(t.Context(), `SELECT id FROM usersync.river_job WHERE kind = 'backfill_organizations' AND state = 'available' ORDER BY id LIMIT 1`).Scan(&id); err != nil {
				t.Fatal(err)
			}
			next, err := u.inserter.JobGetTx(t.Context(), tx, id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.orgBackfill(tx, next, jobs.BackfillOrganizationsArgs{}, nil); err != nil {
				t.Fatal(err)
			}
			// The chain goes on (and the waiting page, worked after it, starts
			// its own run).
			runs = u.orgRuns(tx)
			if runs[0].Status != store.RunCompleted || runs[0].Listed != 4 {
				t.Fatalf("runs %+v: want the first chain's run completed with 4 listed", runs)
			}
			if !newer {
				if len(runs) != 1 {
					t.Fatalf("runs %+v: want one", runs)
				}
				return
			}
			if len(runs) != 2 || runs[1].Status != store.RunCompleted || runs[1].UsersRun == nil || *runs[1].UsersRun != tc.late ||
				runs[1].Listed != 4 || runs[1].StartedAt.Before(*runs[0].FinishedAt) {
				t.Fatalf("runs %+v: want the waiting page's own run, started after the first ended, completed with 4 listed", runs)
			}
		})
	}
	t.Run("dead chain superseded", func(t *testing.T) {
		u := newOrgUnit(t, false, 2)
		for i := range 4 {
			u.mem.put(fmt.Sprintf("org_%d", i), "x")
		}
		tx := u.begin()
		w := u.orgBackfillWorker(tx)
		if _, err := w.Work(t.Context(), t, tx, jobs.BackfillOrganizationsArgs{Provider: "stackauth", UsersRunID: 1}, nil); err != nil {
			t.Fatal(err)
		}
		// The chain's next page was discarded: the run is left running.
		if _, err := tx.Exec(t.Context(), `UPDATE usersync.river_job SET state = 'discarded', finalized_at = now() WHERE kind = 'backfill_organizations' AND state = 'available'`); err != nil {
			t.Fatal(err)
		}
		if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: "stackauth", UsersRunID: 2}, nil); err != nil {
			t.Fatal(err)
		}
		runs := u.orgRuns(tx)
		if len(runs) != 2 || runs[0].Status != store.RunFailed || runs[1].Status != store.RunCompleted || runs[1].Listed != 4 {
			t.Fatalf("runs %+v: want the dead run failed and a new one completed", runs)
		}
	})
}

// USERSYNC_REDACT drops its keys from organizations' and memberships'
// raw_json too; the columns still come from the full objects.
func TestOrganizationRedaction(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	u.orgs = store.NewOrgs(store.OrgsConfig{Provider: "stackauth", InternalSchema: "usersync", Schema: "neon_identity", Redact: []string{"name", "role"}})
	u.deps.Bindings["stackauth"].Orgs = u.orgs
	u.mem.put("org_1", "Acme")
	u.mem.addMember("org_1", "u1", "admin")
	tx := u.begin()
	u.syncOrg(tx, "org_1", nil)
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE name = 'Acme' AND NOT raw_json ? 'name' AND raw_json ? 'id'`); n != 1 {
		t.Error("organization: want the name column from the full object and no name key in raw_json")
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE role = 'admin' AND NOT raw_json ? 'role' AND raw_json ? 'user_id'`); n != 1 {
		t.Error("membership: want the role column from the full object and no role key in raw_json")
	}
}

// A user whose profile changed has each organization they belong to synced
// again (membership objects embed their user at Clerk and WorkOS); a sync
// that changes nothing enqueues nothing.
func TestUserChangeRefreshesMemberships(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, false, 10)
	id := u.fake.CreateUser()
	for _, org := range []string{"org_1", "org_2"} {
		u.mem.put(org, org)
		u.mem.addMember(org, id, "member")
	}
	u.mem.put("org_3", "org_3")
	tx := u.begin()
	for _, org := range []string{"org_1", "org_2", "org_3"} {
		u.syncOrg(tx, org, nil)
	}
	if _, err := u.sync(tx, id, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `DELETE FROM usersync.river_job WHERE kind = 'sync_organization' AND state = 'available'`); err != nil {
		t.Fatal(err)
	}
	if _, err := u.sync(tx, id, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tx, `SELECT count(*) FROM usersync.river_job WHERE kind = 'sync_organization' AND state = 'available'`); n != 0 {
		t.Fatalf("%d organization syncs after a user sync that changed nothing, want 0", n)
	}
	u.fake.UpdateUser(id)
	if _, err := u.sync(tx, id, nil); err != nil {
		t.Fatal(err)
	}
	for org, want := range map[string]int{"org_1": 1, "org_2": 1, "org_3": 0} {
		if n := waitingOrgSyncs(t, tx, org); n != want {
			t.Errorf("%s: %d syncs after its member changed, want %d", org, n, want)
		}
	}
}

// A backfill page whose fetch overlaps a sync_organization's (the sync
// began first and read the organization's old name; the page read the new
// one and found the sync's data stored when it wrote) cannot order the two
// and does not apply its write. The run reads that organization again
// before it finishes: when it reports complete, every organization it
// listed holds what the provider had after the run began. With one
// organization a page the next page reads it again; with one page, a job
// after the last page does.
func TestBackfillOrganizationsRereadsOverlappedOrganization(t *testing.T) {
	t.Parallel()
	for _, pageSize := range []int{1, 10} {
		t.Run(fmt.Sprintf("page size %d", pageSize), func(t *testing.T) {
			u := newOrgUnit(t, true, pageSize)
			u.mem.put("org_0", "Old name")
			u.mem.addMember("org_0", "u1", "member")
			u.mem.put("org_1", "Other")
			tx := u.begin()
			// The sync's fetch began a minute ago; it stores the old name
			// (its interval ends at the transaction's now()).
			u.clock = offsetClock{-time.Minute}
			u.syncOrg(tx, "org_0", nil)
			if _, err := tx.Exec(t.Context(), `DELETE FROM usersync.river_job WHERE kind = 'sync_organization'`); err != nil {
				t.Fatal(err)
			}
			// The rename; the run's first page began after the sync's fetch
			// and before its data was stored.
			u.mem.put("org_0", "New name")
			u.mem.addMember("org_0", "u2", "admin")
			u.clock = offsetClock{-30 * time.Second}
			first, err := u.orgBackfillWorker(tx).Work(t.Context(), t, tx, jobs.BackfillOrganizationsArgs{Provider: "stackauth", UsersRunID: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, first, river.EventKindJobCompleted, rivertype.JobStateCompleted)
			// The run's further jobs begin now.
			u.clock = nil
			redo := runRestOfOrgBackfill(t, u, tx)
			runs := u.orgRuns(tx)
			if len(runs) != 1 || runs[0].Status != store.RunCompleted || runs[0].Listed != 2 {
				t.Fatalf("runs %+v: want one completed run that listed 2", runs)
			}
			if name, _, _ := orgName(t, tx, "org_0"); name != "New name" {
				t.Errorf("org_0 is named %q after a complete run that listed it renamed; want %q", name, "New name")
			}
			if got := liveMembers(t, tx, "org_0"); !slices.Equal(got, []string{"u1", "u2"}) {
				t.Errorf("org_0's live members %v after the complete run; want [u1 u2]", got)
			}
			if !slices.ContainsFunc(redo, func(ids []string) bool { return slices.Equal(ids, []string{"org_0"}) }) {
				t.Errorf("the run's later jobs read again %v; want org_0 read again once", redo)
			}
		})
	}
}

// runRestOfOrgBackfill works the run's waiting backfill_organizations jobs
// in tx (the chain after its first page) and returns the Redo of each.
func runRestOfOrgBackfill(t *testing.T, u *orgUnit, tx pgx.Tx) [][]string {
	t.Helper()
	var redo [][]string
	if next := waitingOrgBackfill(t, u, tx); next != nil {
		var a jobs.BackfillOrganizationsArgs
		if err := json.Unmarshal(next.EncodedArgs, &a); err != nil {
			t.Fatal(err)
		}
		redo = append(redo, a.Redo)
		if _, err := u.orgBackfill(tx, next, jobs.BackfillOrganizationsArgs{}, func(a jobs.BackfillOrganizationsArgs) {
			redo = append(redo, a.Redo)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return redo
}

// waitingOrgBackfill returns the backfill_organizations job waiting in tx,
// or nil.
func waitingOrgBackfill(t *testing.T, u *orgUnit, tx pgx.Tx) *rivertype.JobRow {
	t.Helper()
	var id int64
	err := tx.QueryRow(t.Context(), `SELECT id FROM usersync.river_job WHERE kind = 'backfill_organizations' AND state = 'available' ORDER BY id LIMIT 1`).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	job, err := u.inserter.JobGetTx(t.Context(), tx, id)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// An organization the run never lists (deleted at the provider, its event
// lost) whose stored data a fetch overlapping the run's start wrote cannot
// be inferred deleted by the run (that fetch may be the later read). The
// run reads it again before it finishes: when it reports complete, the
// organization is gone.
func TestBackfillOrganizationsRereadsOverlappedDeletion(t *testing.T) {
	t.Parallel()
	u := newOrgUnit(t, true, 10)
	u.mem.put("org_0", "Stays")
	u.mem.put("org_gone", "Gone")
	u.mem.addMember("org_gone", "u1", "member")
	tx := u.begin()
	// A sync whose fetch began a minute ago stores org_gone; its interval
	// ends at the transaction's now(), after the run's start below.
	u.clock = offsetClock{-time.Minute}
	u.syncOrg(tx, "org_gone", nil)
	if _, err := tx.Exec(t.Context(), `DELETE FROM usersync.river_job WHERE kind = 'sync_organization'`); err != nil {
		t.Fatal(err)
	}
	u.mem.remove("org_gone")
	u.clock = offsetClock{-30 * time.Second}
	first, err := u.orgBackfillWorker(tx).Work(t.Context(), t, tx, jobs.BackfillOrganizationsArgs{Provider: "stackauth", UsersRunID: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, first, river.EventKindJobCompleted, rivertype.JobStateCompleted)
	u.clock = nil
	redo := runRestOfOrgBackfill(t, u, tx)
	runs := u.orgRuns(tx)
	if len(runs) != 1 || runs[0].Status != store.RunCompleted {
		t.Fatalf("runs %+v: want one completed run", runs)
	}
	if _, _, exists := orgName(t, tx, "org_gone"); exists {
		t.Error("org_gone, deleted at the provider before the run began, is still stored after the run completed")
	}
	if got := members(t, tx, "org_gone"); len(got) != 0 {
		t.Errorf("org_gone's memberships %v remain after the complete run", got)
	}
	if !slices.ContainsFunc(redo, func(ids []string) bool { return slices.Equal(ids, []string{"org_gone"}) }) {
		t.Errorf("the run's later jobs read again %v; want org_gone read again", redo)
	}
}
