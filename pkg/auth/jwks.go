package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWKS keeps the public keys of a JWKS URL, refreshed periodically and on an
// unknown key id (at most once per minRefresh, so a flood of bad tokens
// cannot turn into a flood of fetches).
type JWKS struct {
	url        string
	client     *http.Client
	log        *slog.Logger
	minRefresh time.Duration

	mu        sync.RWMutex
	keys      map[string]any
	fetchedAt time.Time
}

// NewJWKS fetches the key set once and returns it.
func NewJWKS(ctx context.Context, url string, log *slog.Logger) (*JWKS, error) {
	j := &JWKS{url: url, client: &http.Client{Timeout: 10 * time.Second}, log: log, minRefresh: time.Minute}
	if err := j.refresh(ctx); err != nil {
		return nil, err
	}
	return j, nil
}

// Run refreshes the keys every interval until ctx ends.
func (j *JWKS) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.refresh(ctx); err != nil {
				j.log.Warn("jwks refresh failed", "err", err)
			}
		}
	}
}

// Keyfunc finds the key of a token by its "kid", checking that the key type
// matches the token's algorithm.
func (j *JWKS) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	key, ok := j.key(kid)
	if !ok {
		j.mu.RLock()
		stale := time.Since(j.fetchedAt) > j.minRefresh
		j.mu.RUnlock()
		if stale {
			if err := j.refresh(context.Background()); err != nil {
				j.log.Warn("jwks refresh failed", "err", err)
			}
			key, ok = j.key(kid)
		}
	}
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	switch key.(type) {
	case *rsa.PublicKey:
		if t.Method.Alg() != jwt.SigningMethodRS256.Alg() {
			return nil, errors.New("algorithm does not match key")
		}
	case *ecdsa.PublicKey:
		if t.Method.Alg() != jwt.SigningMethodES256.Alg() {
			return nil, errors.New("algorithm does not match key")
		}
	}
	return key, nil
}

func (j *JWKS) key(kid string) (any, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	k, ok := j.keys[kid]
	return k, ok
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (j *JWKS) refresh(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks: fetch: status %d", resp.StatusCode)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("jwks: decode: %w", err)
	}
	keys := make(map[string]any, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			j.log.Warn("jwks: key skipped", "kid", k.Kid, "err", err)
			continue
		}
		keys[k.Kid] = pub
	}
	j.mu.Lock()
	j.keys, j.fetchedAt = keys, time.Now()
	j.mu.Unlock()
	return nil
}

func (k jwk) publicKey() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64int(k.N)
		e, err2 := b64int(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if n.BitLen() < 2048 {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, fmt.Errorf("curve %q not supported", k.Crv)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("bad base64url: %w", err)
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New("P-256 coordinates must be 32 bytes")
		}
		// Parsing the uncompressed point also checks that it is on the curve.
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	default:
		return nil, fmt.Errorf("key type %q not supported", k.Kty)
	}
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad base64url: %w", err)
	}
	return new(big.Int).SetBytes(b), nil
}
