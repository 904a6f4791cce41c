// Package testkit gives integration tests the real things, isolated: an
// in-process NATS server with JetStream in a temporary directory, and a fresh
// PostgreSQL database.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/health"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
)

// NATS is an in-process server with a connection to it.
type NATS struct {
	Server *server.Server
	Conn   *nats.Conn
	JS     jetstream.JetStream
	URL    string
}

// StartNATS runs a JetStream server on a random loopback port with its store
// in t.TempDir(), creates the streams, and stops everything at cleanup.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return StartNATSIn(t, t.TempDir())
}

// StartNATSIn is StartNATS with a given store directory, so that a test can
// restart the server on the same data.
func StartNATSIn(t testing.TB, dir string) *NATS {
	t.Helper()
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: dir, Listen: "127.0.0.1:-1", Name: "test"})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := natsx.EnsureStreams(ctx, js, StreamsConfig(), health.New(logx.Discard(), prometheus.NewRegistry(), health.Remind)); err != nil {
		t.Fatalf("streams: %v", err)
	}
	return &NATS{Server: srv, Conn: nc, JS: js, URL: srv.ClientURL()}
}

// StreamsConfig is the default retention, as the services use it.
func StreamsConfig() config.Streams {
	return config.ReadCommon(config.FromMap(nil), false, false).Streams
}

// BaseDatabaseURL is the server tests create their databases on:
// TEST_DATABASE_URL, else DATABASE_URL, else the local PostgreSQL.
func BaseDatabaseURL() string {
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Database creates a fresh database, returns its URL, and drops it at
// cleanup.
func Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := BaseDatabaseURL()
	admin, err := postgres.Open(ctx, base, 2)
	if err != nil {
		t.Fatalf("testkit: no PostgreSQL at %s (run the tests through 'make test', which starts one): %v", base, err)
	}
	name := "notify_test_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testkit: drop database %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testkit: database url: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Postgres opens a fresh database, with the given migrations applied (a
// service name and its migration files), and closes it at cleanup.
func Postgres(t testing.TB) *sqlx.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, Database(t), 10)
	if err != nil {
		t.Fatalf("testkit: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// WaitFor polls cond every 10ms until it returns nil, failing with what and
// cond's last error once timeout has passed, so that a timeout says what was
// last seen.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitForOK waits until a GET of url answers 200 OK (a server's readiness
// or health endpoint), failing with the last status or error.
func WaitForOK(t testing.TB, timeout time.Duration, url string) {
	t.Helper()
	WaitFor(t, timeout, "200 OK from "+url, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
}

// Eventually is WaitFor for a condition that has nothing to say but yes or
// no; prefer WaitFor.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("not yet")

// Logger is a logger for tests that do not read logs.
var Logger = logx.Discard

// JWTSecret is the HS256 secret of test tokens.
const JWTSecret = "test-secret-0123456789-0123456789-abcdef"

// JWTConfig is the verifier configuration matching JWTSecret.
func JWTConfig() config.JWT {
	return config.JWT{Secret: JWTSecret, Leeway: 5 * time.Second}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// UniqueID returns a random id with a prefix, for events and users.
func UniqueID(prefix string) string { return fmt.Sprintf("%s-%s", prefix, randomHex(8)) }
