package webhook

import "time"

// SetBeforeSend makes every Submit of b call f just before it hands its
// request to the writers.
func SetBeforeSend(b *Batcher, f func()) { b.beforeSend = f }

// SetBodyReadTimeout shortens a handler's body read timeout for tests.
func SetBodyReadTimeout(h *Handler, d time.Duration) { h.bodyTimeout = d }
