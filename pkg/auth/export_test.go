package auth

import "time"

// SetClock makes v read the time from now (the parser and the cache of
// verified tokens).
func SetClock(v *Verifier, now func() time.Time) { v.clock = now }

// Verified is the number of tokens v remembers.
func Verified(v *Verifier) int {
	v.verified.mu.Lock()
	defer v.verified.mu.Unlock()
	return len(v.verified.entries)
}

// SetMaxVerified bounds the tokens v remembers.
func SetMaxVerified(v *Verifier, n int) { v.verified.max = n }
