package clerk

import (
	"context"

	"github.com/usersync/usersync/provider"
)

// LoaderQueued returns how many ids wait in c's loader to be sent.
func LoaderQueued(c *Client) int { return c.loader.queued() }

// LoaderIdle reports whether c's loader has nothing queued and no sender.
func LoaderIdle(c *Client) bool { return c.loader.idle() }

// SetLoaderLimits changes c's batch size and sending slots; call it before
// the first FetchUser. SetLoaderLimits(c, 1, n) turns batching off.
func SetLoaderLimits(c *Client, maxBatch, inFlight int) {
	c.loader.maxBatch, c.loader.maxInFlight = maxBatch, inFlight
}

// FetchOne is the single-user GET, bypassing the loader.
func FetchOne(ctx context.Context, c *Client, id string) (provider.User, error) {
	return c.fetchOne(ctx, id)
}
