-- usersync's own state, in the internal schema (USERSYNC_INTERNAL_SCHEMA),
-- beside River's tables. Run with search_path set to that schema.

-- One row per (provider, user): what usersync knows about the row it keeps.
CREATE TABLE IF NOT EXISTS user_state (
  provider   text        NOT NULL,
  user_id    text        NOT NULL,
  -- when the data now in users_sync began to be fetched (database clock);
  -- a write of data fetched earlier than this is stale and skipped.
  fetched_at timestamptz NOT NULL DEFAULT '-infinity',
  -- when the transaction that stored that data ran: the data was read by
  -- the provider somewhere between fetched_at and fetched_until.
  fetched_until timestamptz NOT NULL DEFAULT '-infinity',
  -- set by the last write when its fetch overlapped the stored one's, so
  -- neither is provably newer: a fresh sync settles it. (Written by version
  -- 1 only; kept so that processes of that version work during an upgrade.)
  resync     boolean     NOT NULL DEFAULT false,
  -- the last backfill run whose pages listed this user.
  seen_run   bigint,
  PRIMARY KEY (provider, user_id)
);

-- Version 2: what orders writes whose fetches overlap (see the README,
-- "Fetch intervals"), and tombstones of ids without a users_sync row.
-- Rows of version 1 had none of this: the defaults make every overlapping
-- write against them ambiguous (not applied; a fresh sync decides), and mark
-- them all for one check by the tombstone cleanup.
ALTER TABLE user_state
  -- the provider's own updated_at of the stored profile (NULL: it has none,
  -- or the stored state is a deletion).
  ADD COLUMN IF NOT EXISTS p_updated_at timestamptz,
  -- sha256 of the stored raw_json (after redaction): two fetches that read
  -- the same content need no ordering. NULL for a deletion.
  ADD COLUMN IF NOT EXISTS content_hash bytea,
  -- the stored state is a deletion (the provider said not found, or a
  -- complete backfill run did not list the user).
  ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false,
  -- a deletion that the cleanup has not yet checked: once no fetch begun
  -- before it can still commit, the row is removed if the user has no
  -- users_sync row, or unmarked if it has one.
  ADD COLUMN IF NOT EXISTS tombstone boolean NOT NULL DEFAULT true,
  -- the outcome of the last write, read back by the writing statement:
  -- 'applied', 'same' (same content), 'stale' (provably older) or
  -- 'ambiguous' (not ordered: not applied, a fresh sync decides).
  ADD COLUMN IF NOT EXISTS verdict text NOT NULL DEFAULT 'applied';
ALTER TABLE user_state ALTER COLUMN tombstone SET DEFAULT false;
CREATE INDEX IF NOT EXISTS user_state_tombstone_idx ON user_state (provider, fetched_until) WHERE tombstone;

-- One row per backfill run (a chain of backfill_page jobs).
CREATE TABLE IF NOT EXISTS backfill_run (
  id           bigserial   PRIMARY KEY,
  provider     text        NOT NULL,
  status       text        NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'held')),
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  pages        integer     NOT NULL DEFAULT 0,
  users_listed bigint      NOT NULL DEFAULT 0,
  users_written bigint     NOT NULL DEFAULT 0,
  users_deleted bigint     NOT NULL DEFAULT 0,
  next_cursor  text,
  last_user_id text,
  -- the last few users of the last committed page, newest last: where to
  -- resume when the next cursor no longer resolves.
  recent_user_ids text[] NOT NULL DEFAULT '{}',
  restarts     integer     NOT NULL DEFAULT 0,
  started_by_job bigint,   -- the backfill_page job that started the run
  last_error   text
);
-- (At most one running run per provider and kind: backfill_run_one_running_kind, version 4.)
CREATE INDEX IF NOT EXISTS backfill_run_provider_idx ON backfill_run (provider, id DESC);

-- What an operator asks first, per provider (usersync status).
CREATE TABLE IF NOT EXISTS provider_status (
  provider          text PRIMARY KEY,
  last_webhook_at   timestamptz,
  last_sync_at      timestamptz,
  last_error        text,
  last_error_at     timestamptz,
  bad_credentials_at timestamptz,
  credentials_ok_at timestamptz
);

CREATE TABLE IF NOT EXISTS usersync_migration (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- Deletion guard (version 2). A backfill run that would infer too many users
-- deleted ends 'held' instead of 'completed', deleting nothing, until an
-- operator confirms it: held_deletions is how many live rows it would have
-- marked deleted, held_live how many live rows there were.
ALTER TABLE backfill_run ADD COLUMN IF NOT EXISTS held_deletions bigint;
ALTER TABLE backfill_run ADD COLUMN IF NOT EXISTS held_live bigint;
ALTER TABLE backfill_run ADD COLUMN IF NOT EXISTS confirmed_at timestamptz;
DO $$
BEGIN
  -- Databases migrated before version 2 have a status check without 'held'.
  IF EXISTS (SELECT 1 FROM pg_constraint
             WHERE conrelid = 'backfill_run'::regclass AND conname = 'backfill_run_status_check'
               AND pg_get_constraintdef(oid) NOT LIKE '%held%') THEN
    ALTER TABLE backfill_run DROP CONSTRAINT backfill_run_status_check;
    ALTER TABLE backfill_run ADD CONSTRAINT backfill_run_status_check
      CHECK (status IN ('running', 'completed', 'failed', 'held'));
  END IF;
END $$;

-- The sync path's deletion breaker, one row per provider: how many sync_user
-- jobs in a row found their user missing at the provider although the
-- user's latest event was not a deletion. Past the limit, deletions by such
-- jobs pause (paused_at) until an operator resumes them; a successful fetch
-- of an existing user resets the count.
CREATE TABLE IF NOT EXISTS deletion_breaker (
  provider             text PRIMARY KEY,
  unexpected_not_found integer     NOT NULL DEFAULT 0,
  paused_at            timestamptz,
  -- the user whose sync tripped the breaker
  paused_user_id       text,
  resumed_at           timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Version 3: an operator's request for a backfill (`usersync backfill`),
-- one row per provider. A scheduled backfill job that finds a complete run
-- started recently still starts a run when a request came after that run
-- started: the operator asked for a backfill while that job was waiting.
CREATE TABLE IF NOT EXISTS backfill_request (
  provider     text PRIMARY KEY,
  requested_at timestamptz NOT NULL
);

-- Version 4 (rate limits): each provider's API request budget, shared by
-- every usersync process on the database (docs/limits.md). A generic cell
-- rate algorithm: tat is the theoretical arrival time of the next request;
-- a process reserves a few request slots at once by moving it forward by
-- one interval (1 / effective rate) per slot. A 429 from the provider halves
-- the effective rate (slowed_rate, slowed_at), which then recovers linearly
-- to limit_rps, and pushes tat past the provider's Retry-After.
CREATE TABLE IF NOT EXISTS rate_limit (
  provider    text             PRIMARY KEY,
  -- the limit the last reserving process was configured with (requests/s)
  limit_rps   double precision NOT NULL,
  tat         timestamptz      NOT NULL DEFAULT '-infinity',
  -- the effective rate right after the last slowdown (NULL: never slowed)
  slowed_rate double precision,
  slowed_at   timestamptz,
  -- requests granted in all, in the current minute and in the one before
  granted     bigint           NOT NULL DEFAULT 0,
  minute_start timestamptz     NOT NULL DEFAULT '-infinity',
  minute_granted bigint        NOT NULL DEFAULT 0,
  last_minute_granted bigint   NOT NULL DEFAULT 0,
  -- 429s the provider answered, and how many of them slowed the budget
  throttled   bigint           NOT NULL DEFAULT 0,
  slowdowns   bigint           NOT NULL DEFAULT 0,
  last_throttled_at timestamptz,
  updated_at  timestamptz      NOT NULL DEFAULT now()
);

-- Version 5 (organizations): with USERSYNC_ORGANIZATIONS=on, usersync also
-- keeps organizations_sync and memberships_sync (docs/data-model.md,
-- "Organizations").
-- One row per (provider, organization): the fetch interval of the data
-- organizations_sync and memberships_sync hold for the organization. An
-- organization and its membership set are fetched together and written
-- together, so one state orders both (user_state's rules; content_hash
-- covers the organization and its memberships; p_updated_at stays NULL, as
-- a membership set has no provider updated_at).
CREATE TABLE IF NOT EXISTS organization_state (
  provider        text        NOT NULL,
  organization_id text        NOT NULL,
  fetched_at      timestamptz NOT NULL DEFAULT '-infinity',
  fetched_until   timestamptz NOT NULL DEFAULT '-infinity',
  -- the last organizations backfill run whose pages listed this organization
  seen_run        bigint,
  p_updated_at    timestamptz,
  content_hash    bytea,
  deleted         boolean     NOT NULL DEFAULT false,
  tombstone       boolean     NOT NULL DEFAULT false,
  verdict         text        NOT NULL DEFAULT 'applied',
  PRIMARY KEY (provider, organization_id)
);
CREATE INDEX IF NOT EXISTS organization_state_tombstone_idx ON organization_state (provider, fetched_until) WHERE tombstone;
-- Backfill runs have a kind: 'users' (backfill_page chains) or
-- 'organizations' (backfill_organizations chains); one of each may run per
-- provider. users_run is the users run that started an organizations run.
ALTER TABLE backfill_run ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'users';
ALTER TABLE backfill_run ADD COLUMN IF NOT EXISTS users_run bigint;
CREATE UNIQUE INDEX IF NOT EXISTS backfill_run_one_running_kind ON backfill_run (provider, kind) WHERE status = 'running';
-- versions 1 to 3: one running run per provider
DROP INDEX IF EXISTS backfill_run_one_running;
CREATE INDEX IF NOT EXISTS backfill_run_users_run_idx ON backfill_run (users_run) WHERE users_run IS NOT NULL;
