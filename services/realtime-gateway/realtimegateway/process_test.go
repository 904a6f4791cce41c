package realtimegateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

// childEnv makes the test binary run the gateway's Main instead of the
// tests: the crash and drain tests start gateways as real processes, to kill
// them with SIGKILL or stop them with SIGTERM as an orchestrator would.
const childEnv = "REALTIME_GATEWAY_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := realtimegateway.Main(ctx, nil)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "realtime-gateway:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// gatewayProcess is a gateway running as a child process.
type gatewayProcess struct {
	t    testing.TB
	cmd  *exec.Cmd
	Addr string // host:port it serves on
	URL  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done

	mu   sync.Mutex
	logs []string // its log lines (JSON)
}

// startGatewayProcess runs a gateway process against n, configured like
// testConfig plus env (NAME=value), until cleanup.
func startGatewayProcess(t testing.TB, n *testkit.NATS, env ...string) *gatewayProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"NATS_URL="+n.URL, "JWT_SECRET="+testkit.JWTSecret, "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=info",
		"GATEWAY_PING_INTERVAL=500ms", "GATEWAY_PING_TIMEOUT=400ms", "GATEWAY_TICK=20ms", "GATEWAY_SHUTDOWN_GRACE=3s")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gateway process: %v", err)
	}
	g := &gatewayProcess{t: t, cmd: cmd, done: make(chan struct{})}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.logs = append(g.logs, line)
			g.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" {
				serving <- l.Addr
			}
		}
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-g.done
	})
	select {
	case g.Addr = <-serving:
	case <-g.done:
		t.Fatalf("gateway process exited before serving: %v\n%s", g.err, g.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway process not serving after 30s:\n%s", g.Logs())
	}
	g.URL = "http://" + g.Addr
	return g
}

// Logs returns what the process logged so far.
func (g *gatewayProcess) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.logs, "\n")
}

// Kill ends the process with SIGKILL: none of its shutdown code runs.
func (g *gatewayProcess) Kill() {
	g.t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		g.t.Fatal(err)
	}
	<-g.done
}

// Terminate sends SIGTERM, as an orchestrator stopping a replica does.
func (g *gatewayProcess) Terminate() {
	g.t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		g.t.Fatal(err)
	}
}

// Wait waits up to d for the process to exit and returns its exit error.
func (g *gatewayProcess) Wait(d time.Duration) error {
	select {
	case <-g.done:
		return g.err
	case <-time.After(d):
		return fmt.Errorf("still running after %v", d)
	}
}

// balancer is a TCP load balancer in front of gateways, as in production:
// each new connection goes to the first gateway whose /readyz answers 200.
// A gateway that dies cuts its connections; one that drains says not ready.
type balancer struct {
	URL      string
	backends []string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startBalancer(t testing.TB, backends ...string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{URL: "http://" + ln.Addr().String(), backends: backends, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { b.serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		b.closed = true
		for c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	return b
}

// ready picks the first backend that says it is ready.
func (b *balancer) ready() (string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	for _, addr := range b.backends {
		res, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return addr, nil
		}
	}
	return "", errors.New("no backend ready")
}

func (b *balancer) serve(client net.Conn) {
	defer client.Close()
	addr, err := b.ready()
	if err != nil {
		return
	}
	backend, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer backend.Close()
	if !b.track(client, backend) {
		return
	}
	defer b.untrack(client, backend)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(backend, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, backend); done <- struct{}{} }()
	<-done // either side gone: cut the other, as a proxy does
}

func (b *balancer) track(cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	for _, c := range cs {
		b.conns[c] = struct{}{}
	}
	return true
}

func (b *balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.conns, c)
	}
}
