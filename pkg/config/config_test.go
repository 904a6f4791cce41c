package config_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/config"
)

func TestReadCommonDefaultsAndErrors(t *testing.T) {
	e := config.FromMap(map[string]string{"JWT_SECRET": goodSecret, "DATABASE_URL": "postgres://x"})
	c := config.ReadCommon(e, true, false)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.Streams.EventsMaxAge != 7*24*time.Hour || c.Streams.NotifyMaxAge != 24*time.Hour || c.JWT.Leeway != 30*time.Second {
		t.Fatalf("defaults %+v", c)
	}

	e = config.FromMap(map[string]string{"JWT_SECRET": "short", "EVENTS_MAX_AGE": "a week", "LOG_LEVEL": "loud", "STREAM_REPLICAS": "x"})
	config.ReadCommon(e, true, true)
	err := e.Err()
	for _, want := range []string{"DATABASE_URL is required", "NATS_URL is required", "JWT_SECRET must be at least 32 bytes", "EVENTS_MAX_AGE", "LOG_LEVEL", "STREAM_REPLICAS"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}

func TestWithDefaultsFallsBackOnlyWhenUnset(t *testing.T) {
	e := config.FromMap(map[string]string{"A": "set", "B": " "}).WithDefaults(map[string]string{"A": "default", "B": "default-b", "C": "default-c"})
	if e.String("A", "") != "set" || e.String("B", "") != "default-b" || e.String("C", "") != "default-c" || e.String("D", "d") != "d" {
		t.Fatal("defaults applied wrongly")
	}
	if got := e.List("C", nil); len(got) != 1 {
		t.Fatal(got)
	}
}

// goodSecret is what `openssl rand -base64 48` printed once.
const goodSecret = "q0V9m2kQ7c0yH1mXWw4o3uYp+7Jt5bX6lq2Zr8VfK1sNn3dGe4hAiBjC5oDpEq6F"

func TestProductionRefusesWeakJWTSecretsSayingWhy(t *testing.T) {
	for name, tc := range map[string]struct{ secret, why string }{
		"the development secret": {config.DevJWTSecret, "public development secret"},
		"31 bytes":               {goodSecret[:31], "at least 32 bytes (it has 31)"},
		"one character":          {strings.Repeat("s", 48), "1-byte pattern repeated"},
		"a short pattern":        {strings.Repeat("abc123", 8), "6-byte pattern repeated"},
		"a pattern cut short":    {strings.Repeat("another-secret-", 3) + "anoth", "15-byte pattern repeated"},
		"almost one character":   {strings.Repeat("a", 40) + "b", "too little entropy"},
		"two characters":         {strings.Repeat("ab", 20) + "ba" + strings.Repeat("ab", 10), "too little entropy"},
	} {
		e := config.FromMap(map[string]string{"JWT_SECRET": tc.secret, "DATABASE_URL": "postgres://x"})
		config.ReadCommon(e, true, false)
		err := e.Err()
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "openssl rand -base64 48") {
			t.Errorf("%s: error %v, want one naming %q and how to make a secret", name, err, tc.why)
			continue
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%s: the error prints the secret: %v", name, err)
		}
	}
}

func TestProductionAcceptsRandomJWTSecrets(t *testing.T) {
	secrets := []string{
		goodSecret,
		"9f86d081884c7d659a2feaa0c55ad015", // openssl rand -hex 16: 32 bytes, the weakest the rules must let through
		"test-secret-0123456789-0123456789-abcdef",
	}
	for i := range 200 {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, hex.EncodeToString(b))
		if i%2 == 0 {
			secrets = append(secrets, base64.StdEncoding.EncodeToString(append(b, b[:8]...)))
		}
	}
	for _, s := range secrets {
		if err := config.CheckJWTSecret(s); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
}

func TestDevelopmentModeAcceptsTheDevelopmentSecretButNotAShortOne(t *testing.T) {
	e := config.FromMap(map[string]string{"DATABASE_URL": "postgres://x"}).WithDefaults(map[string]string{"JWT_SECRET": config.DevJWTSecret}).ForDevelopment()
	if c := config.ReadCommon(e, true, false); e.Err() != nil || c.JWT.Secret != config.DevJWTSecret {
		t.Fatalf("development: %v", e.Err())
	}
	e = config.FromMap(map[string]string{"DATABASE_URL": "postgres://x", "JWT_SECRET": "short"}).ForDevelopment()
	config.ReadCommon(e, true, false)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("development with a short secret: %v", err)
	}
}

func TestOriginListsRefuseWhatNoBrowserSends(t *testing.T) {
	e := config.FromMap(map[string]string{"X": " https://app.example , http://localhost:3000,*"})
	if got := e.Origins("X"); len(got) != 3 || e.Err() != nil {
		t.Fatalf("good list: %q, %v", got, e.Err())
	}
	for _, bad := range []string{"app.example", "https://app.example/", "https://app.example/path", "ftp://app.example", "https://user@app.example", "https://"} {
		e := config.FromMap(map[string]string{"API_ALLOWED_ORIGINS": bad})
		e.Origins("API_ALLOWED_ORIGINS")
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), "API_ALLOWED_ORIGINS") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v, want an error naming the variable and the value", bad, err)
		}
	}
}
