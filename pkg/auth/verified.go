package auth

import (
	"sync"
	"time"
)

// A client sends the same token with every request until it refreshes it,
// and verifying it (base64, JSON, HMAC or RSA/ECDSA, the claims) was the
// largest cost of a list request after the query and the response (issue
// 13). The verifier therefore remembers the tokens it has verified, by
// their exact text, with their claims: the same bytes verify the same way
// under the same key, so only the time-dependent checks could change, and
// an entry lives no longer than its token's expiry (with the leeway, as
// the parser allows). Only tokens that passed every check are remembered,
// so a client cannot fill the cache with tokens it made up.
//
// An entry also lives at most maxVerifiedAge: a key removed from the JWKS
// stops being honoured for tokens already seen within that time, well
// within the JWKS refresh interval (10 minutes) during which the removed
// key is honoured anyway. nbf and iat were in the past when the token was
// verified, and stay there.
const (
	maxVerified    = 10_000 // entries, of at most maxVerifiedLen bytes: 20 MB at worst, 4 MB with tokens of 400 bytes
	maxVerifiedLen = 2048   // longer tokens are verified every time
	maxVerifiedAge = time.Minute
)

type verifiedTokens struct {
	mu      sync.Mutex
	max     int
	entries map[string]verifiedToken
}

type verifiedToken struct {
	claims Claims
	until  time.Time // valid before this instant
}

func (c *verifiedTokens) init(max int) {
	c.max = max
	c.entries = make(map[string]verifiedToken)
}

func (c *verifiedTokens) get(token string, now time.Time) (Claims, bool) {
	if len(token) > maxVerifiedLen {
		return Claims{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if !ok {
		return Claims{}, false
	}
	if !now.Before(e.until) {
		delete(c.entries, token)
		return Claims{}, false
	}
	return e.claims, true
}

func (c *verifiedTokens) put(token string, claims Claims, until time.Time) {
	if len(token) > maxVerifiedLen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Full: drop one entry, an arbitrary one (map iteration starts at
		// a random place), rather than keep a recency order on every hit.
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[token] = verifiedToken{claims: claims, until: until}
}
