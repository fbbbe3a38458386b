package ratelimit

// Sleeping is how many queued requests of b wait for their slot's time.
func Sleeping(b *Budget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sleepers)
}
