package notifyd_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
)

// The README's walkthrough, as written, against the binaries `make build`
// makes and `make run` starts: twice against the same notifyd, each run
// selecting what it created and ending with {"unreadCount":0}.
func TestTheREADMEWalkthroughWorksAndCanBeRepeated(t *testing.T) {
	script := testkit.READMEWalkthrough(t, "../../../README.md")
	dir := t.TempDir()
	build(t, "..", filepath.Join(dir, "bin", "notifyd"), "./cmd/notifyd")
	build(t, "../../../pkg", filepath.Join(dir, "bin", "notifyctl"), "./cmd/notifyctl")
	api, natsURL := runNotifydBinary(t, filepath.Join(dir, "bin", "notifyd"))

	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "API="+api, "NATS_URL="+natsURL, "JWT_SECRET=", "JWT_ISSUER=", "JWT_AUDIENCE=")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, `{"unreadCount":0}`) {
			t.Fatalf("run %d does not end with {\"unreadCount\":0}:\n%s", run, got)
		}
	}
}

// build builds a main package of the module in dir into out.
func build(t testing.TB, dir, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// runNotifydBinary starts the notifyd binary in development mode on a fresh
// database and data directory, with free ports, and returns the API base
// URL and the producer NATS URL it prints once ready.
func runNotifydBinary(t testing.TB, bin string) (api, natsURL string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+testkit.Database(t), "DATA_DIR="+t.TempDir(),
		"HTTP_ADDR=127.0.0.1:0", "NATS_LISTEN=127.0.0.1:0", "NATS_URL=",
		"NOTIFY_MODE=development", "JWT_SECRET=", "JWT_ISSUER=", "JWT_AUDIENCE=", "WEBHOOK_SECRETS_KEYS=", "LOG_LEVEL=warn")
	var logs testkit.LogBuffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("notifyd exited with %v; its log:\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("notifyd did not stop within 30s of SIGTERM")
		}
	})

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(time.Minute)
	for api == "" || natsURL == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("notifyd closed its output before saying where it listens; its log:\n%s", logs.String())
			}
			f := strings.Fields(line)
			switch {
			case strings.HasPrefix(line, "  REST API") && len(f) > 2:
				api, _, _ = strings.Cut(f[2], "/api/v1/")
			case strings.HasPrefix(line, "  producers") && len(f) > 1:
				natsURL = f[1]
			}
		case <-deadline:
			t.Fatalf("notifyd did not print its URLs within a minute; its log:\n%s", logs.String())
		}
	}
	go func() { // keep reading so that notifyd never blocks on a full pipe
		for range lines {
		}
	}()
	return api, natsURL
}
