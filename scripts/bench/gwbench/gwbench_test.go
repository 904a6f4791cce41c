package gwbench_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/scripts/bench/gwbench"
)

// The test binary doubles as the load-generator worker, as notifybench does.
const workerEnv = "GWBENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := gwbench.ServeWorker(context.Background(), os.Stdin, os.Stdout, logx.New(os.Stderr, "warn")); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// referenceNode is the Node.js reference server, started for one test.
type referenceNode struct {
	URL string
	PID int
}

var listening = regexp.MustCompile(`listening on ([0-9.]+):([0-9]+)`)

// startReferenceNode runs deploy/reference-node/server.js on a free port
// against the given NATS and stops it at cleanup.
func startReferenceNode(t testing.TB, natsURL, secret string) referenceNode {
	t.Helper()
	dir, err := filepath.Abs("../../../deploy/reference-node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io")); err != nil {
		t.Fatalf("the reference server's packages are not installed: run scripts/test-setup-gwbench.sh (npm ci in %s)", dir)
	}
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0", "HOST=127.0.0.1", "NATS_URL="+natsURL, "JWT_SECRET="+secret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	addr := make(chan string, 1)
	go func() {
		// The test may be over by the time the server logs again: lines go
		// to the test's stderr, not to t.Log.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			os.Stderr.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1] + ":" + m[2]
				break
			}
		}
		_, _ = io.Copy(os.Stderr, stderr)
	}()
	select {
	case a := <-addr:
		return referenceNode{URL: "http://" + a, PID: cmd.Process.Pid}
	case <-time.After(20 * time.Second):
		t.Fatal("the reference server did not start listening within 20s")
		return referenceNode{}
	}
}

// startCentrifugo runs Centrifugo (.tools/centrifugo, installed by
// scripts/test-setup-centrifugo.sh) with the benchmark's configuration
// against the given NATS, on a port the OS chose, and stops it at cleanup.
func startCentrifugo(t testing.TB, natsURL, secret string) referenceNode {
	t.Helper()
	bin, err := filepath.Abs("../../../.tools/centrifugo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Centrifugo is not installed: run scripts/test-setup-centrifugo.sh (%v)", err)
	}
	// Centrifugo takes a port, not a listener: take one the OS chose and
	// hand it over.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf, err := gwbench.CentrifugoConfig("127.0.0.1", port, natsURL, secret)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "centrifugo.json")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start centrifugo: %v", err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	testkit.WaitForOK(t, 20*time.Second, url+"/health")
	return referenceNode{URL: url, PID: cmd.Process.Pid}
}

// stopProcess sends SIGTERM and waits, killing the process after 10 s.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func workerCommand(t testing.TB) func(ctx context.Context) *exec.Cmd {
	return func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		cmd.Stderr = os.Stderr
		return cmd
	}
}

// peer is a server the load generator is tested against, with what it
// answers to a token signed with another secret and to an expired one.
type peer struct {
	name, protocol       string
	start                func(t testing.TB, natsURL, secret string) referenceNode
	wrongSecret, expired string
}

var peers = []peer{
	{"node", gwbench.ProtocolSocketIO, startReferenceNode, "invalid token", "token is expired"},
	{"centrifugo", gwbench.ProtocolCentrifugo, startCentrifugo, "invalid token", "token expired"},
}

// The whole load generator, worker processes included, against each peer
// server: every client connects through two source addresses, every
// notification arrives exactly once, and the figures are filled in.
func TestLoadGeneratorAgainstEachPeerServer(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			n := testkit.StartNATS(t)
			srv := p.start(t, n.URL, testkit.JWTSecret)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			res, err := gwbench.Run(ctx, gwbench.Config{
				Label: p.name, URLs: []string{srv.URL}, Protocol: p.protocol, ServerPIDs: []int{srv.PID}, NATSURL: n.URL, Secret: testkit.JWTSecret, Org: "org-t",
				Clients: 60, PerWorker: 25, Sources: []string{"127.0.0.2", "127.0.0.3"}, Concurrency: 10,
				Handshake: 10 * time.Second, Idle: 200 * time.Millisecond, Rate: 400, Duration: 2 * time.Second,
				Drain: 5 * time.Second, Phases: []string{gwbench.PhaseFanout},
				Worker: workerCommand(t), Log: logx.New(os.Stderr, "warn"),
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Workers != 3 || res.Connect.Connected != 60 || res.Connect.Failed != 0 || res.Connect.PerSecond <= 0 {
				t.Fatalf("connect: %d workers, %+v", res.Workers, res.Connect)
			}
			if res.Memory.BaselineKB <= 0 || res.Memory.IdleKB <= 0 {
				t.Fatalf("memory not sampled: %+v", res.Memory)
			}
			d := res.Phase(gwbench.PhaseFanout)
			if d == nil {
				t.Fatal("no fan-out result")
			}
			if d.Published != 800 || d.Received != 800 || d.Lost != 0 || d.Duplicates != 0 || d.PublishErrors != 0 {
				t.Fatalf("fan-out: %+v", d)
			}
			if d.P50Ms <= 0 || d.P99Ms < d.P50Ms || d.MaxMs < d.P99Ms || d.MaxRSSKB <= 0 || d.ServerCPUSeconds <= 0 {
				t.Fatalf("fan-out figures: %+v", d)
			}
			if res.Disconnects != 0 {
				t.Fatalf("%d connections dropped", res.Disconnects)
			}
		})
	}
}

// A server of several processes: the clients are shared out over them in
// turn. The second process here accepts no token of the run, so exactly
// half the clients fail, and the notifications of the connected half all
// arrive once.
func TestLoadGeneratorSharesClientsOverServerProcesses(t *testing.T) {
	n := testkit.StartNATS(t)
	var hooks phaseHooks
	good := startReferenceNode(t, n.URL, testkit.JWTSecret)
	refusing := startReferenceNode(t, n.URL, "another-secret-0123456789-0123456789-abc")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := gwbench.Run(ctx, gwbench.Config{
		Label: "two nodes", URLs: []string{good.URL, refusing.URL}, ServerPIDs: []int{good.PID, refusing.PID}, NATSURL: n.URL, Secret: testkit.JWTSecret, Org: "org-t",
		Clients: 40, PerWorker: 20, Concurrency: 10, Handshake: 10 * time.Second, Idle: 200 * time.Millisecond,
		Rate: 200, Duration: 2 * time.Second, Drain: 5 * time.Second, Phases: []string{gwbench.PhaseFanout},
		Worker: workerCommand(t), Log: logx.New(os.Stderr, "warn"), PhaseHook: hooks.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"fanout start", "fanout end"}; !slices.Equal(hooks.calls, want) {
		t.Fatalf("phase hook called at %q, want %q", hooks.calls, want)
	}
	if res.Processes != 2 || res.Connect.Connected != 20 || res.Connect.Failed != 20 || res.Connect.StillFailed != 20 {
		t.Fatalf("%d processes, connect %+v; want 20 connected to the first, 20 refused by the second", res.Processes, res.Connect)
	}
	d := res.Phase(gwbench.PhaseFanout)
	if d == nil || d.Published != 400 || d.Received != 400 || d.Lost != 0 || d.Duplicates != 0 {
		t.Fatalf("fan-out: %+v", d)
	}
}

// phaseHooks records the calls of Config.PhaseHook.
type phaseHooks struct {
	calls []string
	err   error // returned by every call
}

func (h *phaseHooks) record(phase, stage string) error {
	h.calls = append(h.calls, phase+" "+stage)
	return h.err
}

// A failing phase hook (a script that cannot read the CPU time of the other
// processes) fails the run before anything is published.
func TestRunStopsWhenThePhaseHookFails(t *testing.T) {
	n := testkit.StartNATS(t)
	srv := startReferenceNode(t, n.URL, testkit.JWTSecret)
	hooks := phaseHooks{err: errors.New("no answer")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := gwbench.Run(ctx, gwbench.Config{
		Label: "node", URLs: []string{srv.URL}, ServerPIDs: []int{srv.PID}, NATSURL: n.URL, Secret: testkit.JWTSecret, Org: "org-t",
		Clients: 10, PerWorker: 10, Concurrency: 10, Handshake: 10 * time.Second, Idle: 100 * time.Millisecond,
		Rate: 100, Duration: time.Second, Drain: 2 * time.Second, Phases: []string{gwbench.PhaseFanout},
		Worker: workerCommand(t), Log: logx.New(os.Stderr, "warn"), PhaseHook: hooks.record,
	})
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("Run: %v, want the hook's error", err)
	}
	if want := []string{"fanout start"}; !slices.Equal(hooks.calls, want) {
		t.Fatalf("phase hook called at %q, want %q", hooks.calls, want)
	}
}

// A token signed with another secret, or expired, is refused in the
// handshake, and the load generator reports the server's message.
func TestEachPeerServerRefusesBadTokens(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			n := testkit.StartNATS(t)
			srv := p.start(t, n.URL, testkit.JWTSecret)
			d, err := gwbench.NewDialer(srv.URL, p.protocol, nil, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for name, tc := range map[string]struct {
				secret string
				ttl    time.Duration
				want   string
			}{
				"wrong secret":  {secret: "another-secret-0123456789-0123456789-abc", ttl: time.Hour, want: p.wrongSecret},
				"expired token": {secret: testkit.JWTSecret, ttl: -time.Hour, want: p.expired},
			} {
				tok, err := auth.Mint(tc.secret, auth.MintOptions{UserID: "u1", TTL: tc.ttl})
				if err != nil {
					t.Fatal(err)
				}
				c, err := d.Connect(ctx, tok)
				var ce *gwbench.ConnectError
				if !errors.As(err, &ce) || ce.Message != tc.want {
					if c != nil {
						c.Close()
					}
					t.Errorf("%s: got %v, want connect_error %q", name, err, tc.want)
				}
			}
			good, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: "u1", TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.Connect(ctx, good)
			if err != nil {
				t.Fatalf("a valid token: %v", err)
			}
			c.Close()
		})
	}
}

// The file-limit check names the limit instead of letting the storm fail.
func TestRunRefusesMoreClientsThanTheServerMayOpen(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	_, err := gwbench.Run(context.Background(), gwbench.Config{
		Label: "self", URLs: []string{"http://127.0.0.1:1"}, ServerPIDs: []int{os.Getpid()}, Secret: "x",
		Clients: int(min(rl.Cur, 1<<30)) + 1, PerWorker: 100, Worker: workerCommand(t), Log: logx.Discard(),
	})
	if err == nil || !regexp.MustCompile(`may open at most `+strconv.FormatUint(rl.Cur, 10)+` files`).MatchString(err.Error()) {
		t.Fatalf("got %v, want the open-files limit named", err)
	}
}
