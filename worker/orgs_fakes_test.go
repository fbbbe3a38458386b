package worker_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/internal/store"
	"github.com/usersync/usersync/jobs"
	"github.com/usersync/usersync/provider/clerk/clerkfake"
	"github.com/usersync/usersync/provider/fakekit"
	"github.com/usersync/usersync/provider/stackauth/stackfake"
	"github.com/usersync/usersync/provider/workos/workosfake"
)

// newFakeOrgUnit is newOrgUnit over fake's own client and organizations.
func newFakeOrgUnit(t *testing.T, fake fakekit.OrganizationsFake) *orgUnit {
	t.Helper()
	p := fake.Provider()
	u := newUnit(t, p, false)
	migrateOrganizations(t, u)
	orgs := store.NewOrgs(store.OrgsConfig{Provider: p.Name(), InternalSchema: "usersync", Schema: "neon_identity",
		OrganizationsChannel: "neon_identity_organizations_sync", MembershipsChannel: "neon_identity_memberships_sync"})
	u.deps.Bindings[p.Name()].Orgs = orgs
	return &orgUnit{unit: u, orgs: orgs}
}

// wantSnapshots fails unless the live rows of both tables are exactly the
// fake's organizations and memberships, each row's raw_json the provider's
// object.
func wantSnapshots(t *testing.T, tx pgx.Tx, fake fakekit.OrganizationsFake) {
	t.Helper()
	orgs, mems := fake.OrganizationsSnapshot(), fake.MembershipsSnapshot()
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE deleted_at IS NULL`); n != len(orgs) {
		t.Errorf("%d live organizations, want the provider's %d", n, len(orgs))
	}
	for id, raw := range orgs {
		if n := count(t, tx, `SELECT count(*) FROM neon_identity.organizations_sync WHERE id = $1 AND raw_json = $2::jsonb AND deleted_at IS NULL`, id, string(raw)); n != 1 {
			t.Errorf("organization %s: no live row holding the provider's object", id)
		}
	}
	if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE deleted_at IS NULL`); n != len(mems) {
		t.Errorf("%d live memberships, want the provider's %d", n, len(mems))
	}
	for key, raw := range mems {
		org, user, _ := strings.Cut(key, ":")
		if n := count(t, tx, `SELECT count(*) FROM neon_identity.memberships_sync WHERE organization_id = $1 AND user_id = $2
			AND raw_json = $3::jsonb AND deleted_at IS NULL`, org, user, string(raw)); n != 1 {
			t.Errorf("membership %s: no live row holding the provider's object", key)
		}
	}
}

// Against each provider's fake: sync_organization and the organizations
// backfill write exactly the provider's organizations and memberships (the
// creator's membership too), an organization change reaches its
// memberships where they embed it, and a deleted organization is inferred
// deleted by a complete run, with its memberships.
func TestOrganizationsAgainstEachFake(t *testing.T) {
	t.Parallel()
	for name, newFake := range map[string]func() fakekit.OrganizationsFake{
		"stackauth": func() fakekit.OrganizationsFake { return stackfake.New(stackfake.Options{}) },
		"clerk":     func() fakekit.OrganizationsFake { return clerkfake.New(clerkfake.Options{}) },
		"workos":    func() fakekit.OrganizationsFake { return workosfake.New(workosfake.Options{}) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := newFake()
			t.Cleanup(fake.Close)
			users := fake.Seed(4)
			org1 := fake.CreateOrganization(users[0])
			fake.AddMember(org1, users[1], "")
			org2 := fake.CreateOrganization(users[2])
			fake.AddMember(org2, users[3], "")
			u := newFakeOrgUnit(t, fake)
			tx := u.begin()
			res, err := u.orgSyncWorker(tx).Work(t.Context(), t, tx, jobs.SyncOrganizationArgs{Provider: name, OrganizationID: org1}, nil)
			if err != nil || len(res.Job.Errors) > 0 {
				t.Fatalf("sync_organization: %v %v", err, res.Job.Errors)
			}
			if got := liveMembers(t, tx, org1); len(got) != 2 {
				t.Fatalf("%s's live members %v, want the creator and the added member", org1, got)
			}
			if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: name}, nil); err != nil {
				t.Fatal(err)
			}
			wantSnapshots(t, tx, fake)
			fake.UpdateOrganization(org1)
			fake.DeleteOrganization(org2)
			if _, err := u.orgSyncWorker(tx).Work(t.Context(), t, tx, jobs.SyncOrganizationArgs{Provider: name, OrganizationID: org1}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := u.orgBackfill(tx, nil, jobs.BackfillOrganizationsArgs{Provider: name}, nil); err != nil {
				t.Fatal(err)
			}
			wantSnapshots(t, tx, fake)
			if _, deleted, _ := orgName(t, tx, org2); !deleted {
				t.Errorf("%s, deleted at the provider, is not marked deleted by the complete run", org2)
			}
		})
	}
}
