package realtimegateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

// testConfig is the gateway's configuration with heartbeats fast enough for
// tests.
func testConfig() realtimegateway.Config {
	c := realtimegateway.ReadConfig(config.FromMap(nil))
	c.PingInterval, c.PingTimeout, c.Tick = 500*time.Millisecond, 400*time.Millisecond, 20*time.Millisecond
	c.ShutdownGrace = 3 * time.Second
	return c
}

// gateway is a gateway running in the test process.
type gateway struct {
	URL  string // http://127.0.0.1:port
	stop func()
}

// startGateway runs a gateway on a random port against n until cleanup.
func startGateway(t testing.TB, n *testkit.NATS, cfg realtimegateway.Config) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	common := config.Common{NATSURL: n.URL, HTTPAddr: ln.Addr().String(), LogLevel: "error", Streams: testkit.StreamsConfig(), JWT: testkit.JWTConfig()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: realtimegateway.Name, Common: common, Log: testkit.Logger(), Listener: ln,
			Services: []app.Builder{realtimegateway.New(cfg)}, ShutdownGrace: 5 * time.Second,
		})
	}()
	g := &gateway{URL: "http://" + ln.Addr().String()}
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("gateway: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("gateway did not stop")
			}
		})
	}
	t.Cleanup(g.stop)
	testkit.Eventually(t, 10*time.Second, "gateway ready", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return g
}

// token mints a test token for user.
func token(t testing.TB, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: user, OrganizationID: "org-1", Role: "USER", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publish stores a user message in NOTIFY, as notification-api does, and
// returns its offset.
func publish(t testing.TB, n *testkit.NATS, user, event string, data any) uint64 {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(contract.UserMessage{Event: event, Data: raw})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := n.JS.Publish(ctx, contract.NotifySubject(user), body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// observation is one line printed by e2e/client.mjs.
type observation struct {
	Tab       string            `json:"tab"`
	Type      string            `json:"type"`
	Event     string            `json:"event"`
	Args      []json.RawMessage `json:"args"`
	Recovered bool              `json:"recovered"`
	PID       string            `json:"pid"`
	Transport string            `json:"transport"`
	Message   string            `json:"message"`
	Reason    string            `json:"reason"`
	Data      json.RawMessage   `json:"data"`
}

// browser is a node process running socket.io-client tabs.
type browser struct {
	t     testing.TB
	stdin io.WriteCloser
	mu    sync.Mutex
	seen  []observation
}

// e2eDir is where the node client and its locked dependencies live.
func e2eDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../e2e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		t.Fatalf("socket.io-client is not installed in %s: run scripts/test-setup-gateway.sh (make test does)", dir)
	}
	return dir
}

// startBrowser runs e2e/client.mjs until cleanup.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	dir := e2eDir(t)
	cmd := exec.Command("node", "client.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	b := &browser{t: t, stdin: stdin}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var o observation
			if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
				continue
			}
			b.mu.Lock()
			b.seen = append(b.seen, o)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	b.wait("node client ready", func(o observation) bool { return o.Type == "ready" })
	return b
}

// do sends a command to the node client.
func (b *browser) do(cmd map[string]any) {
	b.t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(b.stdin, "%s\n", line); err != nil {
		b.t.Fatalf("node client: %v", err)
	}
}

// wait returns the first observation matching match, waiting up to 10s.
func (b *browser) wait(what string, match func(observation) bool) observation {
	b.t.Helper()
	var found observation
	testkit.Eventually(b.t, 10*time.Second, what, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, o := range b.seen {
			if match(o) {
				found = o
				return true
			}
		}
		return false
	})
	return found
}

// all returns the observations matching match so far.
func (b *browser) all(match func(observation) bool) []observation {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []observation
	for _, o := range b.seen {
		if match(o) {
			out = append(out, o)
		}
	}
	return out
}

// count returns how many observations match.
func (b *browser) count(match func(observation) bool) int { return len(b.all(match)) }

// reset forgets what was seen so far.
func (b *browser) reset() {
	b.mu.Lock()
	b.seen = nil
	b.mu.Unlock()
}

func isType(tab, typ string) func(observation) bool {
	return func(o observation) bool { return o.Tab == tab && o.Type == typ }
}

func isEvent(tab, event string) func(observation) bool {
	return func(o observation) bool { return o.Tab == tab && o.Type == "event" && o.Event == event }
}

// eventIDs returns the "id" field of the first argument of each event.
func eventIDs(obs []observation) []string {
	var ids []string
	for _, o := range obs {
		var d struct {
			ID string `json:"id"`
		}
		if len(o.Args) > 0 {
			_ = json.Unmarshal(o.Args[0], &d)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

var errNoNode = errors.New("node is not installed")

func requireNode(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("%v: the end-to-end tests need node 20+", errNoNode)
	}
}

func joinIDs(ids []string) string { return strings.Join(ids, ",") }
