// Package auth verifies the access tokens issued by the Xpeditis backend:
// HS256 with a shared secret, or RS256/ES256 keys from a JWKS URL. The
// algorithm is pinned to what the configured key can verify; "none" and every
// other algorithm are refused, and "exp" is required.
package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/xpeditis/notify/pkg/config"
)

// Claims are what the services use of a token.
type Claims struct {
	UserID         string    // sub
	OrganizationID string    // organizationId
	Role           string    // role
	ExpiresAt      time.Time // exp
}

// tokenClaims is the JSON form of a token's claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	OrganizationID string `json:"organizationId,omitempty"`
	Role           string `json:"role,omitempty"`
}

// ErrInvalidToken wraps every reason a token is refused.
var ErrInvalidToken = errors.New("invalid token")

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	parser   *jwt.Parser
	keyfunc  jwt.Keyfunc
	leeway   time.Duration
	clock    func() time.Time // time.Now; tests move it
	verified verifiedTokens
}

// NewVerifier builds a verifier from configuration: HS256 when a secret is
// set, otherwise RS256/ES256 with keys from the JWKS URL.
func NewVerifier(cfg config.JWT, jwks *JWKS) (*Verifier, error) {
	opts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v := &Verifier{leeway: cfg.Leeway, clock: time.Now}
	v.verified.init(maxVerified)
	// The parser and the cache of verified tokens read the same clock.
	opts = append(opts, jwt.WithTimeFunc(func() time.Time { return v.clock() }))
	switch {
	case cfg.Secret != "":
		secret := []byte(cfg.Secret)
		v.keyfunc = pinned([]string{jwt.SigningMethodHS256.Alg()}, func(*jwt.Token) (any, error) { return secret, nil })
	case jwks != nil:
		v.keyfunc = pinned([]string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}, jwks.Keyfunc)
	default:
		return nil, errors.New("auth: a JWT secret or a JWKS is required")
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// errAlgorithm refuses a token whose alg is not one the key can verify.
var errAlgorithm = errors.New("algorithm not accepted")

// pinned accepts only the listed algorithms, before any key is looked up.
// (The parser's own method list would do the same but reports a refused
// algorithm as a bad signature, which misleads whoever debugs a token.)
func pinned(algs []string, next jwt.Keyfunc) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if !slices.Contains(algs, t.Method.Alg()) {
			return nil, fmt.Errorf("%w: %s", errAlgorithm, t.Method.Alg())
		}
		return next(t)
	}
}

// Verify parses and validates a token. A token verified before, byte for
// byte, is answered from the cache of verified tokens until it expires.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, fmt.Errorf("%w: missing token", ErrInvalidToken)
	}
	now := v.clock()
	if c, ok := v.verified.get(token, now); ok {
		return c, nil
	}
	c, err := v.verify(token)
	if err != nil {
		return Claims{}, err
	}
	until := c.ExpiresAt.Add(v.leeway) // the parser's own bound: valid before exp + leeway
	if limit := now.Add(maxVerifiedAge); limit.Before(until) {
		until = limit
	}
	v.verified.put(token, c, until)
	return c, nil
}

func (v *Verifier) verify(token string) (Claims, error) {
	var tc tokenClaims
	if _, err := v.parser.ParseWithClaims(token, &tc, v.keyfunc); err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	if tc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: sub is required", ErrInvalidToken)
	}
	return Claims{
		UserID:         tc.Subject,
		OrganizationID: tc.OrganizationID,
		Role:           tc.Role,
		ExpiresAt:      tc.ExpiresAt.Time,
	}, nil
}

// reason turns a parser error into a short phrase safe to show a client.
func reason(err error) string {
	switch {
	case errors.Is(err, errAlgorithm):
		return "algorithm is not accepted"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token is expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature is invalid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token cannot be verified (algorithm or key not accepted)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "audience is not accepted"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	default:
		return "token is not valid"
	}
}

// DevSecret is the HS256 secret notifyd and notifyctl use in development
// mode when JWT_SECRET is not set. It is public: production refuses it.
const DevSecret = config.DevJWTSecret

// MintOptions describe a development token.
type MintOptions struct {
	UserID, OrganizationID, Role string
	TTL                          time.Duration
	Issuer, Audience             string
}

// Mint signs an HS256 token; notifyctl and tests use it. Production tokens
// come from the Xpeditis backend.
func Mint(secret string, o MintOptions) (string, error) {
	now := time.Now()
	tc := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   o.UserID,
			Issuer:    o.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(o.TTL)),
		},
		OrganizationID: o.OrganizationID,
		Role:           o.Role,
	}
	if o.Audience != "" {
		tc.Audience = jwt.ClaimStrings{o.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString([]byte(secret))
}

type claimsKey struct{}

// WithClaims stores claims in a context.
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims stored by WithClaims.
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}
