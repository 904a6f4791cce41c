package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/config"
)

func TestReadCommonDefaultsAndErrors(t *testing.T) {
	e := config.FromMap(map[string]string{"JWT_SECRET": strings.Repeat("s", 32), "DATABASE_URL": "postgres://x"})
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
	for _, want := range []string{"DATABASE_URL is required", "NATS_URL is required", "JWT_SECRET must be at least 32", "EVENTS_MAX_AGE", "LOG_LEVEL", "STREAM_REPLICAS"} {
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
