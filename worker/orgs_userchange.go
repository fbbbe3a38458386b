package worker

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/usersync/usersync/provider"
)

// refreshUserOrganizations is the organizations' side of a user's change
// (in the writing transaction): where the provider's membership objects
// embed the user (provider.MembershipsEmbedUsers), each organization the
// user belongs to is synced again, so that its memberships_sync rows follow
// the provider's objects. Like deleteUserMemberships, it enqueues without
// waiting for jobs already there.
func refreshUserOrganizations(ctx context.Context, tx pgx.Tx, b *Binding, userID string) error {
	if b.Orgs == nil {
		return nil
	}
	if e, ok := b.Provider.(provider.MembershipsEmbedUsers); !ok || !e.MembershipsEmbedUsers() {
		return nil
	}
	ids, err := b.Orgs.UserOrganizationIDs(ctx, tx, userID)
	if err != nil {
		return err
	}
	if err := enqueueOrgResyncs(ctx, tx, b.Provider.Name(), ids); err != nil {
		return fmt.Errorf("resync the organizations of user %s: %w", userID, err)
	}
	return nil
}
