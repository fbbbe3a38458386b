package workos

// MembershipsEmbedUsers implements provider.MembershipsEmbedUsers: a WorkOS
// organization membership, as the API returns it, embeds the whole user.
func (c *Client) MembershipsEmbedUsers() bool { return true }
