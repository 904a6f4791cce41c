package testkit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BrowserTest runs `node --test script` in dir, the directory of a
// browser test whose node_modules hold playwright-core. A
// scripts/test-setup-*.sh installs them and writes the Chromium or Chrome
// it found to node_modules/.chrome-path; CHROME_PATH overrides it. The
// script gets env and CHROME_PATH; its output is logged, and a failure
// fails t.
func BrowserTest(t testing.TB, dir, script string, timeout time.Duration, env ...string) {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("the browser test's packages are not installed in %s: run the scripts/test-setup-*.sh that installs them (make test does)", dir)
	}
	chrome := os.Getenv("CHROME_PATH")
	if chrome == "" { // found by the setup script
		found, err := os.ReadFile(filepath.Join(dir, "node_modules", ".chrome-path"))
		if err != nil {
			t.Fatal("no browser for the test: set CHROME_PATH, or run the scripts/test-setup-*.sh of this test, which finds Chromium or Chrome (or says what to install)")
		}
		chrome = strings.TrimSpace(string(found))
	}
	if _, err := os.Stat(chrome); err != nil {
		t.Fatalf("the browser %s is gone: run the test setup again or set CHROME_PATH: %v", chrome, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CHROME_PATH="+chrome), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test %s:\n%s", script, out)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("the browser test failed (exit %d)", exit.ExitCode())
	} else if err != nil {
		t.Fatal(err)
	}
}
