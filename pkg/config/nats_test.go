package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/config"
)

func TestNATSAuthNamesConflictingAndHalfSetOptions(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seed, []byte("SU..."), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"token and user", map[string]string{"NATS_TOKEN": "t", "NATS_USER": "u", "NATS_PASSWORD": "p"}, []string{"NATS_USER and NATS_TOKEN are set: choose one"}},
		{"seed and creds", map[string]string{"NATS_NKEY_SEED": seed, "NATS_CREDS": seed}, []string{"NATS_CREDS and NATS_NKEY_SEED are set"}},
		{"user without password", map[string]string{"NATS_USER": "u"}, []string{"NATS_USER is set without NATS_PASSWORD"}},
		{"password without user", map[string]string{"NATS_PASSWORD": "p"}, []string{"NATS_PASSWORD is set without NATS_USER"}},
		{"certificate without key", map[string]string{"NATS_TLS_CERT": seed}, []string{"NATS_TLS_CERT and NATS_TLS_KEY go together"}},
		{"missing files", map[string]string{"NATS_CREDS": "/nonexistent/app.creds", "NATS_TLS_CA": "/nonexistent/ca.pem"}, []string{"NATS_CREDS: stat /nonexistent/app.creds", "NATS_TLS_CA: stat /nonexistent/ca.pem"}},
		{"a directory", map[string]string{"NATS_NKEY_SEED": t.TempDir()}, []string{"NATS_NKEY_SEED: ", "is a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := config.FromMap(tc.env)
			config.ReadNATSAuth(e)
			err := e.Err()
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v does not say %q", err, want)
				}
			}
		})
	}
}

func TestNATSAuthUnreadableFileIsNamed(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	f := filepath.Join(t.TempDir(), "app.creds")
	if err := os.WriteFile(f, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	e := config.FromMap(map[string]string{"NATS_CREDS": f})
	config.ReadNATSAuth(e)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "NATS_CREDS: open "+f) {
		t.Fatalf("error %v does not name NATS_CREDS and the file", err)
	}
}

func TestNATSAuthPrintsNoSecret(t *testing.T) {
	e := config.FromMap(map[string]string{
		"NATS_USER": "notification-api", "NATS_PASSWORD": "hunter2-password",
		"JWT_SECRET": "q7Vx2mR9kLp4sT8wZb3nJc6hYf1dGe5a", "DATABASE_URL": "postgres://x", "NATS_URL": "nats://n:4222",
	})
	c := config.ReadCommon(e, true, true)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if c.NATSAuth.Method() != "user" || c.NATSAuth.Password != "hunter2-password" {
		t.Fatalf("read %v", c.NATSAuth)
	}
	for _, printed := range []string{fmt.Sprint(c.NATSAuth), fmt.Sprintf("%+v", c.NATSAuth), fmt.Sprintf("%v", c)} {
		if strings.Contains(printed, "hunter2") {
			t.Fatalf("printed the password: %s", printed)
		}
	}
	tok := config.NATSAuth{Token: "s3cret-token"}
	if s := fmt.Sprintf("%+v", tok); strings.Contains(s, "s3cret") || !strings.Contains(s, "auth=token") {
		t.Fatalf("printed %s", s)
	}
}
