package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/usersync/usersync/provider"
)

// neonDDL is users_sync exactly as Neon created it (docs/data-model.md): id,
// name, email and created_at are generated from raw_json.
const neonDDL = `
CREATE SCHEMA neon_auth;
CREATE TABLE neon_auth.users_sync (
    raw_json   jsonb NOT NULL,
    id         text GENERATED ALWAYS AS ((raw_json ->> 'id'::text)) STORED NOT NULL,
    name       text GENERATED ALWAYS AS ((raw_json ->> 'display_name'::text)) STORED,
    email      text GENERATED ALWAYS AS ((raw_json ->> 'primary_email'::text)) STORED,
    created_at timestamp with time zone GENERATED ALWAYS AS
               (to_timestamp((trunc((((raw_json ->> 'signed_up_at_millis'::text))::bigint)::double precision)
                              / (1000)::double precision))) STORED,
    updated_at timestamp with time zone,
    deleted_at timestamp with time zone
);
ALTER TABLE ONLY neon_auth.users_sync ADD CONSTRAINT users_sync_pkey PRIMARY KEY (id);
CREATE INDEX users_sync_deleted_at_idx ON neon_auth.users_sync USING btree (deleted_at);`

// TestNeonGeneratedTable (docs/data-model.md): usersync works unchanged against Neon's own
// users_sync (generated columns), created before `usersync migrate`: rows
// are written, updated and soft-deleted, and the generated columns hold
// what the provider says. Neon's table uses Stack Auth's keys, so this test
// is Stack Auth only.
func TestNeonGeneratedTable(t *testing.T) {
	t.Parallel()
	s := NewSystem(t, "stackauth", map[string]string{"_NO_MIGRATE": "1", "USERSYNC_SCHEMA": "neon_auth"})
	s.Exec(neonDDL)
	s.Migrate()
	var generated int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = 'neon_auth' AND table_name = 'users_sync' AND is_generated = 'ALWAYS'`).Scan(&generated); err != nil {
		t.Fatal(err)
	}
	if generated != 4 {
		t.Fatalf("after migrate, users_sync has %d generated columns, want Neon's 4 untouched", generated)
	}
	sv := s.Serve(nil)
	ids := s.Fake.Seed(20)
	s.SendAll(sv.Addr, provider.EventUserChanged, ids, 4)
	s.WaitConverged(15 * time.Second)
	for _, id := range ids[:5] {
		s.Fake.UpdateUser(id)
	}
	for _, id := range ids[5:8] {
		s.Fake.DeleteUser(id)
	}
	s.SendAll(sv.Addr, provider.EventUserChanged, ids[:5], 4)
	s.SendAll(sv.Addr, provider.EventUserDeleted, ids[5:8], 4)
	s.WaitConverged(15 * time.Second)

	p := s.Fake.Provider()
	rows := s.Rows()
	for _, id := range ids {
		r := rows[id]
		if r.UpdatedAt == nil {
			t.Errorf("%s: updated_at not set", id)
		}
		if r.DeletedAt != nil {
			continue
		}
		u, err := p.FetchUser(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if str(r.Name) != str(u.Name) || str(r.Email) != str(u.Email) {
			t.Errorf("%s: generated name/email %q/%q, want %q/%q", id, str(r.Name), str(r.Email), str(u.Name), str(u.Email))
		}
		if r.CreatedAt == nil || u.CreatedAt == nil || !r.CreatedAt.Equal(*u.CreatedAt) {
			t.Errorf("%s: generated created_at %v, want %v", id, r.CreatedAt, u.CreatedAt)
		}
	}
	for _, id := range ids[5:8] {
		if r, ok := rows[id]; !ok || r.DeletedAt == nil {
			t.Errorf("deleted user %s not soft-deleted in Neon's table", id)
		}
	}
}
