package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
)

const secret = "0123456789abcdef0123456789abcdef"

func hs(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHS256Verifier(t *testing.T) {
	v, err := auth.NewVerifier(config.JWT{Secret: secret, Issuer: "xpeditis", Audience: "notify"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	good := jwt.MapClaims{"sub": "user-7", "organizationId": "org-42", "role": "ADMIN", "exp": exp, "iss": "xpeditis", "aud": "notify"}
	with := func(k string, val any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	c, err := v.Verify(hs(t, jwt.SigningMethodHS256, []byte(secret), good))
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "user-7" || c.OrganizationID != "org-42" || c.Role != "ADMIN" || c.ExpiresAt.Unix() != exp {
		t.Fatalf("claims %+v", c)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tc := range map[string]struct {
		token, reason string
	}{
		"empty":           {"", "missing token"},
		"alg none":        {none, "algorithm is not accepted"},
		"HS512":           {hs(t, jwt.SigningMethodHS512, []byte(secret), good), "algorithm is not accepted"},
		"RS256 (no JWKS)": {hs(t, jwt.SigningMethodRS256, rsaKey, good), "algorithm is not accepted"},
		"wrong secret":    {hs(t, jwt.SigningMethodHS256, []byte("x"+secret), good), "signature is invalid"},
		"expired":         {hs(t, jwt.SigningMethodHS256, []byte(secret), with("exp", time.Now().Add(-time.Hour).Unix())), "expired"},
		"no exp":          {hs(t, jwt.SigningMethodHS256, []byte(secret), with("exp", nil)), "required claim"},
		"no sub":          {hs(t, jwt.SigningMethodHS256, []byte(secret), with("sub", nil)), "sub is required"},
		"wrong issuer":    {hs(t, jwt.SigningMethodHS256, []byte(secret), with("iss", "evil")), "issuer"},
		"wrong audience":  {hs(t, jwt.SigningMethodHS256, []byte(secret), with("aud", "other")), "audience"},
		"malformed":       {"a.b", "malformed"},
	} {
		_, err := v.Verify(tc.token)
		if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %v, want ErrInvalidToken mentioning %q", name, err, tc.reason)
		}
	}
}

func TestMintRoundTrip(t *testing.T) {
	v, _ := auth.NewVerifier(config.JWT{Secret: secret}, nil)
	tok, err := auth.Mint(secret, auth.MintOptions{UserID: "u", OrganizationID: "o", Role: "MANAGER", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil || c.UserID != "u" || c.OrganizationID != "o" || c.Role != "MANAGER" {
		t.Fatalf("%+v %v", c, err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWKSVerifierAcceptsRS256AndES256AndPinsTheKeyType(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, err := ecKey.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := ecPub.Bytes() // 0x04 || X || Y
	keys := []map[string]string{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])},
	}
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches++
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	defer srv.Close()
	jwks, err := auth.NewJWKS(context.Background(), srv.URL, logx.Discard())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(config.JWT{JWKSURL: srv.URL}, jwks)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}
	sign := func(m jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(m, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := v.Verify(sign(jwt.SigningMethodRS256, "rsa-1", rsaKey)); err != nil {
		t.Errorf("RS256: %v", err)
	}
	if _, err := v.Verify(sign(jwt.SigningMethodES256, "ec-1", ecKey)); err != nil {
		t.Errorf("ES256: %v", err)
	}
	// HS256 signed with the RSA public key bytes: the classic confusion attack.
	if _, err := v.Verify(sign(jwt.SigningMethodHS256, "rsa-1", rsaKey.N.Bytes())); err == nil {
		t.Error("HS256 accepted by a JWKS verifier")
	}
	if _, err := v.Verify(sign(jwt.SigningMethodES256, "rsa-1", ecKey)); err == nil {
		t.Error("ES256 token accepted with an RSA key id")
	}
	before := fetches
	for range 5 {
		if _, err := v.Verify(sign(jwt.SigningMethodRS256, "unknown", rsaKey)); err == nil {
			t.Error("unknown kid accepted")
		}
	}
	if fetches-before > 0 {
		t.Errorf("unknown kids caused %d fetches within the refresh interval, want 0", fetches-before)
	}
}
