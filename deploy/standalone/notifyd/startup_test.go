package notifyd_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xpeditis/notify/deploy/standalone/notifyd"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/testkit"
)

// runInProcess runs notifyd with env until the test ends and returns what it
// printed once ready and its log; it fails the test if notifyd stops early.
func runInProcess(t testing.TB, env map[string]string, ln net.Listener) (ready string, logs *testkit.LogBuffer) {
	t.Helper()
	logs = &testkit.LogBuffer{}
	out := &testkit.LogBuffer{}
	readyc := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- notifyd.Run(ctx, config.FromMap(env), logs, notifyd.RunOptions{Listener: ln, ReadyOut: out, Ready: func(string) { close(readyc) }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("notifyd: %v", err)
		}
	})
	select {
	case <-readyc:
	case err := <-done:
		t.Fatalf("notifyd stopped before it was ready: %v\n%s", err, logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("notifyd not ready within a minute:\n%s", logs.String())
	}
	return out.String(), logs
}

var producersPort = regexp.MustCompile(`producers +nats://127\.0\.0\.1:(\d+) `)

// Once ready, notifyd says where the API, the demo page, the portal, the Socket.IO
// endpoint and the producer listener are, and logs each warning once.
func TestNotifydSaysWhereEverythingIsAndWarnsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ready, logs := runInProcess(t, map[string]string{
		"DATABASE_URL": testkit.Database(t), "DATA_DIR": t.TempDir(), "NATS_LISTEN": "127.0.0.1:0",
	}, ln)
	for _, want := range []string{base + "/api/v1/notifications", base + "/\n", base + "/socket.io/", base + "/portal/", "producers   nats://127.0.0.1:"} {
		if !strings.Contains(ready, want) {
			t.Errorf("the ready message lacks %q:\n%s", want, ready)
		}
	}
	// Compare the whole port: a free port such as 42225 starts with "4222".
	if m := producersPort.FindStringSubmatch(ready); m == nil || m[1] == "4222" || m[1] == "0" {
		t.Errorf("NATS_LISTEN port 0 did not pick a free port:\n%s", ready)
	}
	warnings := map[string]int{}
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "WARN" {
			warnings[rec.Msg]++
		}
	}
	if len(warnings) == 0 {
		t.Fatalf("no warning in development mode:\n%s", logs.String())
	}
	for msg, n := range warnings {
		if n > 1 {
			t.Errorf("warning logged %d times: %s", n, msg)
		}
	}
	private := 0
	for msg := range warnings {
		if strings.Contains(msg, "WEBHOOK_ALLOW_PRIVATE_TARGETS") {
			private++
		}
	}
	if private != 1 {
		t.Errorf("%d distinct warnings about WEBHOOK_ALLOW_PRIVATE_TARGETS, want 1: %v", private, warnings)
	}
}

// A port already taken fails start-up at once with the variable, the
// address and the holder (this test process), instead of a timeout.
func TestATakenPortNamesItsVariableAndHolder(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	holder := "pid " + strconv.Itoa(os.Getpid())
	for _, variable := range []string{"HTTP_ADDR", "NATS_LISTEN"} {
		env := map[string]string{
			"DATABASE_URL": testkit.Database(t), "DATA_DIR": t.TempDir(),
			"HTTP_ADDR": "127.0.0.1:0", "NATS_LISTEN": "127.0.0.1:0", "LOG_LEVEL": "error",
		}
		env[variable] = addr
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := notifyd.Run(ctx, config.FromMap(env), &testkit.LogBuffer{}, notifyd.RunOptions{})
		cancel()
		if err == nil {
			t.Fatalf("%s=%s (taken): notifyd ran", variable, addr)
		}
		msg := err.Error()
		if !strings.Contains(msg, variable+"="+addr) || !strings.Contains(msg, "in use") {
			t.Errorf("%s taken: error %q does not name %s=%s and say it is in use", variable, msg, variable, addr)
		}
		if _, err := os.Stat("/proc/net/tcp"); err == nil && !strings.Contains(msg, holder) {
			t.Errorf("%s taken: error %q does not name the holder (%s)", variable, msg, holder)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("%s taken: took %v to say so", variable, d)
		}
	}
}
