package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/xpeditis/notify/pkg/cmd/cli"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/scripts/bench/gwbench"
)

// runBenchGateway measures one real-time server (one or several processes):
// notifybench gateway.
func runBenchGateway(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifybench", "gateway", "Measures one real-time server (one process, or several sharing the clients) under\nmany WebSocket clients: connection storm, idle memory, and delivery phases fed\nthrough NATS (see docs/gateway-bench.md).",
		`notifybench gateway -label gateway -url http://127.0.0.1:28081 -pid "$GATEWAY_PID" -out gateway.json`,
		`notifybench gateway -clients 1000 -per-worker 500 -duration 10s -pid "$(pgrep -n notifyd)"`,
		`notifybench gateway -label centrifugo -protocol centrifugo -url http://127.0.0.1:28083 -pid "$CENTRIFUGO_PID"`,
		`notifybench gateway -clients 100000 -per-worker 10000 -url http://127.0.0.1:28111,http://127.0.0.1:28112 -pid "$PID1,$PID2"`)
	fs := c.FS
	label := fs.String("label", "server", "name of the server in the report")
	urls := fs.String("url", "http://127.0.0.1:28081", "server base URL (Socket.IO at /socket.io/, Centrifugo at /connection/websocket); comma-separated for several processes, which share the clients in turn")
	protocol := fs.String("protocol", gwbench.ProtocolSocketIO, "what the clients speak: "+gwbench.ProtocolSocketIO+" (the gateway, the Node.js reference) or "+gwbench.ProtocolCentrifugo)
	pidList := fs.String("pid", "", "pid of the server process, whose memory and CPU are sampled (required); comma-separated for several, added up")
	metrics := fs.String("metrics", "", "Prometheus endpoint of a Go server, to split its memory per connection (optional)")
	pprofURL := fs.String("pprof", "", "net/http/pprof base URL of the server (e.g. http://127.0.0.1:28085/debug/pprof): save CPU and heap profiles (optional)")
	profileDir := fs.String("profile-dir", ".", "where -pprof saves the profiles")
	var natsURL, secret string
	c.NATSFlag(&natsURL)
	c.SecretFlag(&secret)
	org := fs.String("org", "org-bench", "organization of the clients and events")
	clients := fs.Int("clients", 15000, "WebSocket clients, one user each")
	perWorker := fs.Int("per-worker", 5000, "clients per load-generator process")
	sources := fs.String("sources", "", "comma-separated local source addresses (e.g. 127.0.0.2,127.0.0.3); empty: the system's choice")
	concurrency := fs.Int("concurrency", 200, "handshakes in flight per load-generator process")
	handshake := fs.Duration("handshake-timeout", 10*time.Second, "time allowed for one connection's handshake")
	idle := fs.Duration("idle", 15*time.Second, "idle time after the storm before the idle RSS is read")
	rate := fs.Int("rate", 5000, "notifications per second in each delivery phase")
	pipelineRate := fs.Int("pipeline-rate", 0, "events per second in the pipeline phase (default: -rate)")
	duration := fs.Duration("duration", 60*time.Second, "length of each delivery phase")
	drain := fs.Duration("drain", 15*time.Second, "how long to wait without progress for the last messages")
	phases := fs.String("phases", gwbench.PhaseFanout+","+gwbench.PhasePipeline, "delivery phases to run: fanout, pipeline (empty: none)")
	out := fs.String("out", "", "write the result as JSON to this file")
	sync := fs.Bool("sync", false, "before the first publish and after the last delivery of each phase, print \"phase <name> start|end\" on stdout and wait for a line on stdin (a script reads the CPU time of the other processes over exactly the phase: scripts/bench-pipeline.sh)")
	if err := c.Parse(args, io); err != nil {
		return err
	}

	var pids []int
	for _, p := range list(*pidList) {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return cli.Usagef("gateway: -pid %q is not a process id", p)
		}
		pids = append(pids, pid)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the workers: %w", err)
	}
	log := logx.New(io.Err, "info")
	cfg := gwbench.Config{
		Label: *label, URLs: list(*urls), Protocol: *protocol, ServerPIDs: pids, MetricsURL: *metrics, PprofURL: *pprofURL, ProfileDir: *profileDir, NATSURL: natsURL, Secret: secret, Org: *org,
		Clients: *clients, PerWorker: *perWorker, Sources: list(*sources), Concurrency: *concurrency,
		Handshake: *handshake, Idle: *idle, Rate: *rate, PipelineRate: *pipelineRate, Duration: *duration, Drain: *drain,
		Phases: list(*phases), Log: log,
		Worker: func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, self, "gateway-worker")
			cmd.Stderr = io.Err
			return cmd
		},
	}
	if *sync {
		cfg.PhaseHook = syncHook(io)
	}
	res, err := gwbench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := res.WriteFile(*out); err != nil {
			return err
		}
	}
	return gwbench.WriteTable(io.Out, []*gwbench.Result{res})
}

// syncHook tells the script that runs notifybench gateway -sync where a
// phase starts and ends, and waits for its answer.
func syncHook(io cli.Stdio) func(phase, stage string) error {
	answers := bufio.NewReader(io.In)
	return func(phase, stage string) error {
		if _, err := fmt.Fprintf(io.Out, "phase %s %s\n", phase, stage); err != nil {
			return err
		}
		if _, err := answers.ReadString('\n'); err != nil {
			return fmt.Errorf("-sync: no answer on stdin: %w", err)
		}
		return nil
	}
}

// runBenchGatewayWorker is one load-generator process, driven by the
// coordinator over its stdin and stdout.
func runBenchGatewayWorker(ctx context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifybench", "gateway-worker", "One load-generator process of 'notifybench gateway', which starts it and drives it\nover its standard input and output; not run by hand.",
		`notifybench gateway   # starts its workers itself`)
	if err := c.Parse(args, io); err != nil {
		return err
	}
	return gwbench.ServeWorker(ctx, io.In, io.Out, logx.New(io.Err, "warn").With("role", "gwbench-worker", "pid", os.Getpid()))
}

// runBenchGatewayReport prints saved results side by side and checks the
// first one against the targets and each of the others.
func runBenchGatewayReport(_ context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifybench", "gateway-report", "Prints saved 'notifybench gateway' results side by side and checks the first one\n(the gateway) against the targets and against each of the others (its peers).",
		`notifybench gateway-report gateway.json node.json`,
		`notifybench gateway-report -strict gateway.json`)
	c.Args = "<result.json>..."
	fs := c.FS
	strict := fs.Bool("strict", false, "exit non-zero when the first server misses a target")
	if err := c.Parse(args, io); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.Usagef("gateway-report: name result files (the gateway's first)")
	}
	var results []*gwbench.Result
	for _, path := range fs.Args() {
		r, err := gwbench.ReadResult(path)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if err := gwbench.WriteTable(io.Out, results); err != nil {
		return err
	}
	lines, ok := gwbench.Verdict(results[0], results[1:], gwbench.IssueTargets())
	fmt.Fprintf(io.Out, "\n%s against the targets:\n", results[0].Label)
	for _, l := range lines {
		fmt.Fprintln(io.Out, "  "+l)
	}
	if !ok && *strict {
		return errors.New("targets missed")
	}
	return nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runCentrifugoConfig prints the configuration make bench-gateway runs
// Centrifugo with (gwbench.CentrifugoConfig).
func runCentrifugoConfig(_ context.Context, args []string, io cli.Stdio) error {
	c := cli.New("notifybench", "centrifugo-config", "Prints Centrifugo's configuration for the gateway benchmark: JWT (HS256) clients\nsubscribed to their personal channel, fed by the NATS broker in raw mode from\nlive.user.<id>, the subjects the gateway reads.",
		`notifybench centrifugo-config -port 28083 -nats nats://127.0.0.1:24223 > centrifugo.json && centrifugo -c centrifugo.json`)
	host := c.FS.String("host", "127.0.0.1", "address Centrifugo listens on")
	port := c.FS.Int("port", 28083, "port Centrifugo listens on")
	var natsURL, secret string
	c.NATSFlag(&natsURL)
	c.SecretFlag(&secret)
	if err := c.Parse(args, io); err != nil {
		return err
	}
	b, err := gwbench.CentrifugoConfig(*host, *port, natsURL, secret)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.Out, "%s\n", b)
	return err
}
