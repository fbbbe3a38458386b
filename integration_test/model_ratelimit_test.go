package integration_test

import (
	"math/rand/v2"
	"strconv"
)

// modelRateLimit is a seed's provider rate limit (docs/guarantees.md §11 in the model's
// mix): for half the seeds, the fake enforces perSecond requests with
// bursts of burst (429 with Retry-After beyond), and usersync's
// *_RATE_LIMIT is set at, below or above it (above: the 429s that follow
// must slow the shared budget down and still converge). It draws from its
// own generator, so the rest of a seed's choices are what they were.
type modelRateLimit struct {
	perSecond float64
	burst     int
	budget    float64 // usersync's *_RATE_LIMIT
}

func newModelRateLimit(seed int) *modelRateLimit {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x726174656c696d))
	if rng.IntN(2) == 0 {
		return nil
	}
	rl := &modelRateLimit{perSecond: []float64{20, 50, 100}[rng.IntN(3)]}
	rl.burst = []int{1, int(rl.perSecond / 5)}[rng.IntN(2)]
	rl.budget = rl.perSecond * []float64{1, 0.5, 2}[rng.IntN(3)]
	return rl
}

// env adds the budget variable of prov to extra.
func (rl *modelRateLimit) env(prov string, extra map[string]string) {
	if rl != nil {
		extra[rateLimitVar[prov]] = strconv.FormatFloat(rl.budget, 'f', -1, 64)
	}
}

// apply sets the fake's rate limit and logs the choice.
func (rl *modelRateLimit) apply(m *modelRun) {
	if rl == nil {
		return
	}
	m.s.Fake.SetRateLimit(rl.perSecond, rl.burst)
	m.mix["rate_limited_seed"]++
	m.t.Logf("seed %d: fake rate limit %v/s (burst %d), %s=%v", m.seed, rl.perSecond, rl.burst, rateLimitVar[m.cfg.Provider], rl.budget)
	m.t.Cleanup(func() {
		m.t.Logf("seed %d: the fake's rate limit answered %d requests 429", m.seed, m.s.Fake.RateLimited())
	})
}
