package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RateLimits holds the statements on rate_limit: each provider's API
// request budget, shared by every usersync process on the database (see
// docs/limits.md). Times are the database's clock (clock_timestamp()), so
// the processes' own clocks need not agree; the answers are offsets from it.
type RateLimits struct{ s Schemas }

// RateLimits returns the statements on rate_limit.
func (s *Store) RateLimits() RateLimits { return RateLimits{s.Schemas} }

// RateLimitRecovery is how long a budget's effective rate takes to climb
// from 0 back to its limit after a 429 slowed it down.
const RateLimitRecovery = time.Minute

// Budget is how a provider's budget is spent: its configured limit, how it
// slows down after a 429 and how it recovers.
type Budget struct {
	// Limit is the most requests per second (> 0).
	Limit float64
	// Burst is how many requests may go at once after a quiet time (≥ 1).
	Burst float64
	// Recover is how long the effective rate takes to climb from 0 back to
	// Limit after a slowdown (it climbs linearly).
	Recover time.Duration
}

// effective is the SQL expression of the effective rate of row r at n.now
// for limit $2 and recovery seconds $3.
const effective = `least($2::float8, CASE WHEN r.slowed_at IS NULL OR r.slowed_rate IS NULL THEN $2::float8
	ELSE greatest(r.slowed_rate, r.slowed_rate + $2::float8 * extract(epoch FROM n.now - r.slowed_at)::float8 / $3::float8) END)`

// Reservation is a run of request slots granted to one process.
type Reservation struct {
	// First is when the first slot begins, as an offset from the database's
	// clock when it was granted (negative: it is already due).
	First time.Duration
	// Interval separates consecutive slots.
	Interval time.Duration
	// Rate is the effective rate (requests/s) the slots were spaced at.
	Rate float64
}

// Reserve grants n request slots of prov's budget b, creating its row when
// there is none. The slots follow the ones granted before (to any process),
// spaced 1/rate apart at the effective rate, except that up to b.Burst of
// them may be due at once after a quiet time.
func (q RateLimits) Reserve(ctx context.Context, db DB, prov string, b Budget, n int) (Reservation, error) {
	if n < 1 || b.Limit <= 0 || b.Burst < 1 || b.Recover <= 0 {
		return Reservation{}, fmt.Errorf("rate limit of %s: bad reservation (n=%d, limit=%v, burst=%v, recover=%s)", prov, n, b.Limit, b.Burst, b.Recover)
	}
	for range 2 {
		var first, rate float64
		err := db.QueryRow(ctx, `UPDATE `+q.s.in()+`.rate_limit r SET
	limit_rps = $2::float8,
	tat = greatest(r.tat, n.now - make_interval(secs => ($5::float8 - 1) / `+effective+`))
	      + make_interval(secs => $4::int / `+effective+`),
	granted = r.granted + $4::int,
	minute_start = date_trunc('minute', n.now),
	minute_granted = CASE WHEN r.minute_start = date_trunc('minute', n.now) THEN r.minute_granted + $4::int ELSE $4::int END,
	last_minute_granted = CASE WHEN r.minute_start = date_trunc('minute', n.now) THEN r.last_minute_granted
	                           WHEN r.minute_start = date_trunc('minute', n.now) - interval '1 minute' THEN r.minute_granted
	                           ELSE 0 END,
	updated_at = n.now
FROM (SELECT clock_timestamp() AS now) n
WHERE r.provider = $1
RETURNING extract(epoch FROM r.tat - n.now)::float8 - $4::int / `+effective+`, `+effective,
			prov, b.Limit, b.Recover.Seconds(), n, b.Burst).Scan(&first, &rate)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := db.Exec(ctx, `INSERT INTO `+q.s.in()+`.rate_limit (provider, limit_rps) VALUES ($1, $2) ON CONFLICT (provider) DO NOTHING`,
				prov, b.Limit); err != nil {
				return Reservation{}, fmt.Errorf("rate limit of %s: create: %w", prov, err)
			}
			continue
		}
		if err != nil {
			return Reservation{}, fmt.Errorf("rate limit of %s: reserve %d requests: %w", prov, n, err)
		}
		return Reservation{First: seconds(first), Interval: seconds(1 / rate), Rate: rate}, nil
	}
	return Reservation{}, fmt.Errorf("rate limit of %s: its row disappears", prov)
}

// Throttle records a 429 answered to a request of prov: no slot is granted
// before retryAfter from now, and, unless the budget slowed down within the
// last minGap already (the other requests in flight then are answered 429
// too), the effective rate is multiplied by factor (at least floor). It
// reports whether the budget slowed down, and the effective rate now.
func (q RateLimits) Throttle(ctx context.Context, db DB, prov string, b Budget, retryAfter, minGap time.Duration, factor, floor float64) (slowed bool, rate float64, err error) {
	err = db.QueryRow(ctx, `WITH old AS (
	SELECT r.slowed_at IS NOT NULL AND r.slowed_at > n.now - make_interval(secs => $5::float8) AS recent, `+effective+` AS eff
	FROM `+q.s.in()+`.rate_limit r, (SELECT clock_timestamp() AS now) n WHERE r.provider = $1 FOR UPDATE OF r)
UPDATE `+q.s.in()+`.rate_limit r SET
	throttled = r.throttled + 1,
	last_throttled_at = n.now,
	tat = greatest(r.tat, n.now + make_interval(secs => $4::float8)),
	slowed_rate = CASE WHEN old.recent THEN r.slowed_rate ELSE greatest($7::float8, old.eff * $6::float8) END,
	slowed_at = CASE WHEN old.recent THEN r.slowed_at ELSE n.now END,
	slowdowns = r.slowdowns + CASE WHEN old.recent THEN 0 ELSE 1 END,
	updated_at = n.now
FROM old, (SELECT clock_timestamp() AS now) n
WHERE r.provider = $1
RETURNING NOT old.recent, `+effective,
		prov, b.Limit, b.Recover.Seconds(), retryAfter.Seconds(), minGap.Seconds(), factor, floor).Scan(&slowed, &rate)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, b.Limit, nil // no request was granted yet: nothing to slow
	}
	if err != nil {
		return false, 0, fmt.Errorf("rate limit of %s: record a 429: %w", prov, err)
	}
	return slowed, rate, nil
}

// RateLimitReport is a provider's request budget in `usersync status`.
type RateLimitReport struct {
	// Limit is the configured most requests per second.
	Limit float64 `json:"limit_per_second"`
	// Effective is the rate granted now: Limit, or less while it recovers
	// from a 429.
	Effective float64 `json:"effective_per_second"`
	// LastMinute is how many requests were granted in the last whole
	// minute, CurrentMinute in the minute under way.
	LastMinute    int64 `json:"granted_last_minute"`
	CurrentMinute int64 `json:"granted_this_minute"`
	// Granted counts every request granted; Throttled the 429s answered,
	// Slowdowns those that slowed the budget.
	Granted   int64 `json:"granted_total"`
	Throttled int64 `json:"throttled_total"`
	Slowdowns int64 `json:"slowdowns_total"`
	// Backlog is how far ahead of now the budget is reserved: requests
	// asked for now wait about this long.
	Backlog         time.Duration `json:"backlog_ns"`
	LastThrottledAt *time.Time    `json:"last_throttled_at,omitempty"`
}

// Get reads prov's budget (nil when no request was granted yet), with its
// effective rate computed for recovery r.
func (q RateLimits) Get(ctx context.Context, db DB, prov string, recover time.Duration) (*RateLimitReport, error) {
	var rep RateLimitReport
	var backlog float64
	err := db.QueryRow(ctx, `SELECT r.limit_rps,
	least(r.limit_rps, CASE WHEN r.slowed_at IS NULL OR r.slowed_rate IS NULL THEN r.limit_rps
		ELSE greatest(r.slowed_rate, r.slowed_rate + r.limit_rps * extract(epoch FROM n.now - r.slowed_at)::float8 / $2::float8) END),
	CASE WHEN r.minute_start = date_trunc('minute', n.now) THEN r.last_minute_granted
	     WHEN r.minute_start = date_trunc('minute', n.now) - interval '1 minute' THEN r.minute_granted ELSE 0 END,
	CASE WHEN r.minute_start = date_trunc('minute', n.now) THEN r.minute_granted ELSE 0 END,
	r.granted, r.throttled, r.slowdowns,
	greatest(0, extract(epoch FROM r.tat - n.now))::float8, r.last_throttled_at
FROM `+q.s.in()+`.rate_limit r, (SELECT clock_timestamp() AS now) n WHERE r.provider = $1`, prov, recover.Seconds()).Scan(
		&rep.Limit, &rep.Effective, &rep.LastMinute, &rep.CurrentMinute, &rep.Granted, &rep.Throttled, &rep.Slowdowns,
		&backlog, &rep.LastThrottledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rate limit of %s: %w", prov, err)
	}
	rep.Backlog = seconds(backlog)
	return &rep, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
