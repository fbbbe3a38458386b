package webhook

// SetBeforeSend makes every Submit of b call f just before it hands its
// request to the writers.
func SetBeforeSend(b *Batcher, f func()) { b.beforeSend = f }
