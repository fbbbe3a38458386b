package webhook

import "time"

// SetBodyReadTimeout shortens a handler's body read timeout for tests.
func SetBodyReadTimeout(h *Handler, d time.Duration) { h.bodyTimeout = d }
