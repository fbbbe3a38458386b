package worker

import "github.com/usersync/usersync/internal/store"

// The workers' writes are package store's (store.Users); these names are
// kept for the workers' callers.
type (
	// Store performs one provider's transactional writes (store.Users).
	Store = store.Users
	// StoreConfig says where and how a Store writes.
	StoreConfig = store.UsersConfig
	// Target is one users_sync table and how usersync writes it.
	Target = store.Target
	// Result counts what a write changed.
	Result = store.Result
)

// NewStore prepares the statements for cfg.
var NewStore = store.NewUsers

// LoadTarget inspects schema.users_sync (store.LoadTarget).
var LoadTarget = store.LoadTarget

// DefaultTombstoneHorizon is how long a recorded deletion of a user without
// a users_sync row is kept.
const DefaultTombstoneHorizon = store.DefaultTombstoneHorizon

// Run states of backfill_run.status.
const (
	RunRunning   = store.RunRunning
	RunCompleted = store.RunCompleted
	RunFailed    = store.RunFailed
	RunHeld      = store.RunHeld
)

// PausedKey is the metadata key set on a sync_user job that waits because
// deletions by sync are paused; resuming wakes exactly these jobs.
const PausedKey = store.PausedKey

// runs returns the statements on backfill runs of b's schemas.
func runs(b *Binding) store.Runs { return store.New(b.Store.Schemas()).Runs }
