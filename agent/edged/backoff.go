package edged

import (
	"math/rand/v2"
	"time"
)

// Backoff computes reconnection delays: exponential with full jitter. The n-th delay
// after a reset is uniform in [0, min(Cap, Base·2^(n-1))]. It is not safe for concurrent
// use.
type Backoff struct {
	// Base is the ceiling of the first delay.
	Base time.Duration
	// Cap bounds every delay.
	Cap time.Duration

	attempt int
	rnd     *rand.Rand
}

// NewBackoff returns a Backoff with its own random source seeded from the system's.
func NewBackoff(base, maxDelay time.Duration) *Backoff {
	return &Backoff{Base: base, Cap: maxDelay, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Ceiling returns the upper bound of the delay of attempt n (1 = first after a reset).
func (b *Backoff) Ceiling(n int) time.Duration {
	if n < 1 || b.Base <= 0 {
		return 0
	}
	c := b.Base
	for i := 1; i < n; i++ {
		if c >= b.Cap/2 {
			return b.Cap
		}
		c *= 2
	}
	return min(c, b.Cap)
}

// Next returns the next delay and counts the attempt.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	c := b.Ceiling(b.attempt)
	if c <= 0 {
		return 0
	}
	return time.Duration(b.rnd.Int64N(int64(c) + 1))
}

// Attempt returns how many delays Next has given since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts over from Base: called after a connection that lasted.
func (b *Backoff) Reset() { b.attempt = 0 }
