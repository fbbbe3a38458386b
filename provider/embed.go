package provider

// MembershipsEmbedUsers is implemented by an [Organizations] reader whose
// membership objects embed data of the member's user (Clerk's
// public_user_data, WorkOS's user): a change to a user changes their
// memberships at the provider without any membership event, so usersync
// syncs the user's organizations again when the user's row changes
// (docs/data-model.md, "Organizations").
type MembershipsEmbedUsers interface {
	// MembershipsEmbedUsers reports whether membership objects embed the
	// member's user data.
	MembershipsEmbedUsers() bool
}
