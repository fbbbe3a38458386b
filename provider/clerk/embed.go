package clerk

// MembershipsEmbedUsers implements provider.MembershipsEmbedUsers: a Clerk
// organization membership embeds the member's public_user_data (names,
// image, identifier).
func (c *Client) MembershipsEmbedUsers() bool { return true }
