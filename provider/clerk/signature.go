package clerk

import (
	"net/http"

	"github.com/usersync/usersync/provider"
)

var _ provider.SignatureChecker = (*Client)(nil)

// HasSignatureHeaders reports whether h has the Svix signature headers
// (svix-id, svix-timestamp, svix-signature) that every Clerk delivery
// carries; the receiver refuses a request without them before reading its
// body.
func (c *Client) HasSignatureHeaders(h http.Header) bool { return provider.HasSvixHeaders(h) }
