package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
)

// A token answered from the cache of verified tokens is refused from the
// moment the parser would refuse it, and only verified tokens are kept.
func TestVerifiedTokensExpireAsTheParserSays(t *testing.T) {
	const leeway = 2 * time.Second
	v, err := auth.NewVerifier(config.JWT{Secret: secret, Leeway: leeway}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Second)
	now := t0
	auth.SetClock(v, func() time.Time { return now })
	tok := hs(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u", "exp": t0.Add(10 * time.Second).Unix(), "iat": t0.Unix()})

	for _, at := range []time.Duration{0, 5 * time.Second, 10*time.Second + leeway - time.Nanosecond} {
		now = t0.Add(at)
		c, err := v.Verify(tok)
		if err != nil || c.UserID != "u" || !c.ExpiresAt.Equal(t0.Add(10*time.Second)) {
			t.Fatalf("at +%s: %+v, %v", at, c, err)
		}
	}
	if n := auth.Verified(v); n != 1 {
		t.Fatalf("%d tokens remembered, want 1", n)
	}
	now = t0.Add(10*time.Second + leeway)
	if _, err := v.Verify(tok); err == nil || !strings.Contains(err.Error(), "token is expired") {
		t.Fatalf("at exp + leeway: %v, want token is expired", err)
	}
	if n := auth.Verified(v); n != 0 {
		t.Fatalf("%d tokens remembered after expiry, want 0", n)
	}

	// Refused tokens are not remembered, and are refused every time.
	now = t0
	forged := tok[:strings.LastIndexByte(tok, '.')+1] + "AAAA"
	for range 2 {
		if _, err := v.Verify(forged); err == nil {
			t.Fatal("a forged signature was accepted")
		}
	}
	notYet := hs(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u", "exp": t0.Add(time.Hour).Unix(), "iat": t0.Add(time.Minute).Unix()})
	if _, err := v.Verify(notYet); err == nil {
		t.Fatal("a token issued in the future was accepted")
	}
	if n := auth.Verified(v); n != 0 {
		t.Fatalf("%d refused tokens remembered", n)
	}
}

// A long-lived token is verified again after at most a minute (a key
// removed from the JWKS stops being honoured), and the cache is bounded.
func TestVerifiedTokensAreBoundedInAgeAndNumber(t *testing.T) {
	v, err := auth.NewVerifier(config.JWT{Secret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	now := t0
	auth.SetClock(v, func() time.Time { return now })
	auth.SetMaxVerified(v, 3)
	var toks []string
	for i := range 5 {
		toks = append(toks, hs(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u" + string(rune('a'+i)), "exp": t0.Add(time.Hour).Unix()}))
	}
	for i, tok := range toks {
		c, err := v.Verify(tok)
		if err != nil || c.UserID != "u"+string(rune('a'+i)) {
			t.Fatalf("token %d: %+v, %v", i, c, err)
		}
		if n := auth.Verified(v); n > 3 {
			t.Fatalf("%d tokens remembered, at most 3", n)
		}
	}
	// Past a minute every entry is stale: each token is verified again
	// (and still valid), replacing its entry.
	now = t0.Add(time.Minute + time.Second)
	for i, tok := range toks[:3] {
		if c, err := v.Verify(tok); err != nil || c.UserID != "u"+string(rune('a'+i)) {
			t.Fatalf("token %d after a minute: %+v, %v", i, c, err)
		}
	}
}

// A long token is verified every time, not remembered.
func TestLongTokensAreNotRemembered(t *testing.T) {
	v, err := auth.NewVerifier(config.JWT{Secret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := hs(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix(), "pad": strings.Repeat("x", 4096)})
	if c, err := v.Verify(tok); err != nil || c.UserID != "u" {
		t.Fatalf("%+v, %v", c, err)
	}
	if n := auth.Verified(v); n != 0 {
		t.Fatalf("a %d-byte token was remembered", len(tok))
	}
}
