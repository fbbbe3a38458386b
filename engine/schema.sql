-- users_sync: the auth provider's users, kept in step by usersync (docs/data-model.md).
-- Run with search_path set to the target schema (USERSYNC_SCHEMA, default
-- neon_identity); every statement is idempotent. An existing table, such as
-- the one Neon created with GENERATED ALWAYS ... STORED columns, is left as it
-- is: usersync detects generated columns and writes only the others.
CREATE TABLE IF NOT EXISTS users_sync (
  raw_json   jsonb NOT NULL,       -- the provider's full user object (minus USERSYNC_REDACT keys)
  id         text  NOT NULL,       -- the provider's user id
  name       text,                 -- display name
  email      text,                 -- primary email
  created_at timestamptz,          -- when the user signed up, at the provider
  updated_at timestamptz,          -- when this row's content last changed
  deleted_at timestamptz,          -- set when the user is deleted at the provider
  CONSTRAINT users_sync_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS users_sync_deleted_at_idx ON users_sync (deleted_at);
