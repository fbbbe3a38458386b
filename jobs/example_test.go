package jobs_test

import (
	"encoding/json"
	"fmt"

	"github.com/usersync/usersync/jobs"
)

// The args as stored in river_job.args: what an operator inserts with SQL.
func ExampleSyncUserArgs() {
	args := jobs.SyncUserArgs{Provider: "stackauth", UserID: "5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"}
	b, _ := json.Marshal(args)
	fmt.Println(args.Kind(), args.InsertOpts().Queue)
	fmt.Println(string(b))
	// Output:
	// sync_user sync_stackauth
	// {"provider":"stackauth","user_id":"5c7bd3a1-0f38-4c8e-9d6a-1b2c3d4e5f60"}
}

// A run starts with an empty run_id and cursor; each page's job enqueues the
// next with the run's id and the provider's cursor.
func ExampleBackfillPageArgs() {
	first := jobs.BackfillPageArgs{Provider: "clerk"}
	b, _ := json.Marshal(first)
	fmt.Println(first.Kind(), first.InsertOpts().Queue)
	fmt.Println(string(b))
	// Output:
	// backfill_page backfill_clerk
	// {"provider":"clerk","run_id":"","cursor":""}
}
