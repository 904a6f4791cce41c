// Package config reads configuration from environment variables. Each
// service declares one struct and fills it through an Env, which collects
// every problem so that a bad start-up names them all at once.
package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads typed values from a lookup function and remembers what was wrong.
type Env struct {
	lookup      func(string) (string, bool)
	errs        []error
	development bool
}

// FromOS reads the process environment.
func FromOS() *Env { return &Env{lookup: os.LookupEnv} }

// WithDefaults returns an Env that falls back to defaults for variables the
// environment does not set (notifyd's development settings).
func (e *Env) WithDefaults(defaults map[string]string) *Env {
	lookup := e.lookup
	return &Env{lookup: func(k string) (string, bool) {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			return v, true
		}
		v, ok := defaults[k]
		return v, ok
	}}
}

// ForDevelopment marks e as notifyd's development mode, where the public
// development JWT secret is accepted. Nothing else marks an Env: every
// service binary, and notifyd in production mode, holds JWT_SECRET to the
// production rules (CheckJWTSecret).
func (e *Env) ForDevelopment() *Env {
	e.development = true
	return e
}

// FromMap reads a fixed map (tests).
func FromMap(m map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func (e *Env) raw(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// String returns the variable or def.
func (e *Env) String(name, def string) string {
	if v, ok := e.raw(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset.
func (e *Env) Required(name string) string {
	v, ok := e.raw(name)
	if !ok {
		e.errs = append(e.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// Int returns the variable as an int or def.
func (e *Env) Int(name string, def int) int {
	return parse(e, name, def, "an integer", strconv.Atoi)
}

// Int64 returns the variable as an int64 or def.
func (e *Env) Int64(name string, def int64) int64 {
	return parse(e, name, def, "an integer", func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
}

// Duration returns the variable as a Go duration ("10s", "2m") or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	return parse(e, name, def, "a duration such as 10s or 2m", time.ParseDuration)
}

// Bool returns the variable as a bool or def.
func (e *Env) Bool(name string, def bool) bool {
	return parse(e, name, def, "true or false", strconv.ParseBool)
}

// parse reads one variable with fn, recording an error that says what kind
// of value was expected.
func parse[T any](e *Env, name string, def T, kind string, fn func(string) (T, error)) T {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	out, err := fn(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not %s", name, v, kind))
		return def
	}
	return out
}

// List returns a comma-separated variable or def.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.raw(name)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Origins returns a comma-separated list of browser origins
// (scheme://host[:port], or "*" for any), recording an error for an entry
// that is not one: a path or a trailing slash would never equal the Origin
// header a browser sends.
func (e *Env) Origins(name string) []string {
	list := e.List(name, nil)
	for _, o := range list {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			e.errs = append(e.errs, fmt.Errorf("%s: %q is not an origin such as https://app.example.com or http://localhost:3000 (or * for any)", name, o))
		}
	}
	return list
}

// Check records err, if any (for rules across variables).
func (e *Env) Check(err error) {
	if err != nil {
		e.errs = append(e.errs, err)
	}
}

// Err returns every problem found so far, joined.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Common is the configuration every binary shares.
type Common struct {
	DatabaseURL string // DATABASE_URL
	NATSURL     string // NATS_URL
	NATSAuth    NATSAuth
	HTTPAddr    string // HTTP_ADDR
	LogLevel    string // LOG_LEVEL
	// APIAllowedOrigins are the browser origins, besides the API's own,
	// whose pages may call the REST APIs (API_ALLOWED_ORIGINS; "*" for any).
	APIAllowedOrigins []string
	Streams           Streams
	JWT               JWT
	HTTP              HTTP
}

// HTTP bounds how long a client may take over each part of a request.
type HTTP struct {
	ReadHeaderTimeout time.Duration // HTTP_READ_HEADER_TIMEOUT
	BodyTimeout       time.Duration // HTTP_BODY_TIMEOUT: for any body, plus its size over BodyMinRate
	BodyMinRate       int           // HTTP_BODY_MIN_RATE: bytes per second
	WriteTimeout      time.Duration // HTTP_WRITE_TIMEOUT: from the end of the headers to the end of the response
	IdleTimeout       time.Duration // HTTP_IDLE_TIMEOUT: a kept-alive connection between requests
}

// DefaultHTTP are the HTTP limits of a process that sets none.
func DefaultHTTP() HTTP {
	return HTTP{
		ReadHeaderTimeout: 10 * time.Second,
		BodyTimeout:       10 * time.Second,
		BodyMinRate:       16 << 10,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

func readHTTP(e *Env) HTTP {
	d := DefaultHTTP()
	h := HTTP{
		ReadHeaderTimeout: e.Duration("HTTP_READ_HEADER_TIMEOUT", d.ReadHeaderTimeout),
		BodyTimeout:       e.Duration("HTTP_BODY_TIMEOUT", d.BodyTimeout),
		BodyMinRate:       e.Int("HTTP_BODY_MIN_RATE", d.BodyMinRate),
		WriteTimeout:      e.Duration("HTTP_WRITE_TIMEOUT", d.WriteTimeout),
		IdleTimeout:       e.Duration("HTTP_IDLE_TIMEOUT", d.IdleTimeout),
	}
	for name, v := range map[string]time.Duration{
		"HTTP_READ_HEADER_TIMEOUT": h.ReadHeaderTimeout, "HTTP_BODY_TIMEOUT": h.BodyTimeout,
		"HTTP_WRITE_TIMEOUT": h.WriteTimeout, "HTTP_IDLE_TIMEOUT": h.IdleTimeout,
	} {
		if v <= 0 {
			e.Check(fmt.Errorf("%s must be positive", name))
		}
	}
	if h.BodyMinRate < 1 {
		e.Check(errors.New("HTTP_BODY_MIN_RATE must be at least 1 (bytes per second)"))
	}
	return h
}

// Streams is the retention of the JetStream streams.
type Streams struct {
	EventsMaxAge            time.Duration // EVENTS_MAX_AGE
	NotifyMaxAge            time.Duration // NOTIFY_MAX_AGE
	NotifyMaxMsgsPerSubject int64         // NOTIFY_MAX_MSGS_PER_USER
	Replicas                int           // STREAM_REPLICAS
}

// JWT configures token verification.
type JWT struct {
	Secret   string        // JWT_SECRET (HS256)
	JWKSURL  string        // JWT_JWKS_URL (RS256/ES256)
	Issuer   string        // JWT_ISSUER, checked when set
	Audience string        // JWT_AUDIENCE, checked when set
	Leeway   time.Duration // JWT_LEEWAY
}

// ReadCommon fills Common with its defaults. needDB and needNATS say whether
// the binary requires DATABASE_URL and NATS_URL.
func ReadCommon(e *Env, needDB, needNATS bool) Common {
	c := Common{
		HTTPAddr:          e.String("HTTP_ADDR", ":8080"),
		LogLevel:          e.String("LOG_LEVEL", "info"),
		APIAllowedOrigins: e.Origins("API_ALLOWED_ORIGINS"),
		Streams: Streams{
			EventsMaxAge:            e.Duration("EVENTS_MAX_AGE", 7*24*time.Hour),
			NotifyMaxAge:            e.Duration("NOTIFY_MAX_AGE", 24*time.Hour),
			NotifyMaxMsgsPerSubject: e.Int64("NOTIFY_MAX_MSGS_PER_USER", 1000),
			Replicas:                e.Int("STREAM_REPLICAS", 1),
		},
		JWT: JWT{
			Secret:   e.String("JWT_SECRET", ""),
			JWKSURL:  e.String("JWT_JWKS_URL", ""),
			Issuer:   e.String("JWT_ISSUER", ""),
			Audience: e.String("JWT_AUDIENCE", ""),
			Leeway:   e.Duration("JWT_LEEWAY", 30*time.Second),
		},
		HTTP: readHTTP(e),
	}
	if needDB {
		c.DatabaseURL = e.Required("DATABASE_URL")
	} else {
		c.DatabaseURL = e.String("DATABASE_URL", "")
	}
	if needNATS {
		c.NATSURL = e.Required("NATS_URL")
	} else {
		c.NATSURL = e.String("NATS_URL", "")
	}
	c.NATSAuth = ReadNATSAuth(e)
	if c.JWT.Secret == "" && c.JWT.JWKSURL == "" {
		e.Check(errors.New("JWT_SECRET or JWT_JWKS_URL is required"))
	}
	if c.JWT.Secret != "" {
		e.Check(checkJWTSecret(c.JWT.Secret, e.development))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		e.Check(fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	return c
}

// DevJWTSecret is the HS256 secret notifyd and notifyctl use in development
// mode when JWT_SECRET is not set. It is public: production refuses it.
const DevJWTSecret = "xpeditis-notify-development-secret-do-not-use-in-production"

// Rules of a production JWT_SECRET. The entropy estimate is the secret's
// length times the Shannon entropy of its own characters: it catches one
// character repeated, a tiny alphabet or a word padded out, while 32 random
// hex characters (the weakest secret the length rule lets through, 128 real
// bits) never estimate below about 92 bits.
const (
	MinJWTSecretBytes       = 32
	MinJWTSecretEntropyBits = 80
)

// CheckJWTSecret applies the production rules to an HS256 secret: at least
// MinJWTSecretBytes bytes, not the public development secret, not a shorter
// pattern repeated, and an estimated entropy of at least
// MinJWTSecretEntropyBits. The error says which rule failed, never the
// secret, and how to make a good one.
func CheckJWTSecret(secret string) error { return checkJWTSecret(secret, false) }

func checkJWTSecret(secret string, development bool) error {
	const howTo = "; make one with `openssl rand -base64 48`"
	switch {
	case len(secret) < MinJWTSecretBytes:
		return fmt.Errorf("JWT_SECRET must be at least %d bytes (it has %d)%s", MinJWTSecretBytes, len(secret), howTo)
	case development:
		return nil
	case secret == DevJWTSecret:
		return errors.New("JWT_SECRET is the public development secret, with which anyone can mint tokens" + howTo)
	}
	if p := period(secret); p > 0 {
		return fmt.Errorf("JWT_SECRET is a %d-byte pattern repeated%s", p, howTo)
	}
	if bits := entropyBits(secret); bits < MinJWTSecretEntropyBits {
		return fmt.Errorf("JWT_SECRET has too little entropy (about %.0f bits estimated from its characters, at least %d needed)%s", bits, MinJWTSecretEntropyBits, howTo)
	}
	return nil
}

// period returns the length of the shortest pattern whose repetition (the
// last one possibly cut short) makes s, when it repeats at least twice, else 0.
func period(s string) int {
	for p := 1; p <= len(s)/2; p++ {
		if s[p:] == s[:len(s)-p] {
			return p
		}
	}
	return 0
}

// entropyBits estimates the entropy of s as its length times the Shannon
// entropy of its byte distribution.
func entropyBits(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	perByte := 0.0
	for _, n := range counts {
		if n > 0 {
			p := float64(n) / float64(len(s))
			perByte -= p * math.Log2(p)
		}
	}
	return perByte * float64(len(s))
}
