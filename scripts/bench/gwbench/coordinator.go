package gwbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Phase names: how notifications reach the server.
const (
	// PhaseFanout publishes notifications directly on notify.user.<id>.
	PhaseFanout = "fanout"
	// PhasePipeline publishes domain events on EVENTS, which
	// notification-api stores in PostgreSQL and republishes.
	PhasePipeline = "pipeline"
)

// The stages of a delivery phase Config.PhaseHook is called at.
const (
	PhaseStart = "start"
	PhaseEnd   = "end"
)

// Config of one measurement of one server.
type Config struct {
	Label string // column title in the report
	// URLs are the base URLs of the server's processes, e.g.
	// http://127.0.0.1:28081; client i connects to URLs[i % len(URLs)].
	URLs []string
	// Protocol the clients speak: ProtocolSocketIO (default) or
	// ProtocolCentrifugo.
	Protocol string
	// ServerPIDs are the server's processes, whose memory and CPU are
	// sampled and added up.
	ServerPIDs []int
	// MetricsURL, when set, is a Go server's Prometheus endpoint, read
	// before and after the connections to split their memory.
	MetricsURL string
	// PprofURL, when set, is the server's net/http/pprof base
	// (.../debug/pprof): CPU profiles of the storm and of each delivery
	// phase, and a heap profile at idle, are saved in ProfileDir.
	PprofURL   string
	ProfileDir string
	NATSURL    string
	Secret     string // HS256 secret the server accepts
	Org        string

	Clients     int
	PerWorker   int      // clients per load-generator process
	Sources     []string // local source addresses, shared out between workers
	Concurrency int      // handshakes in flight per worker
	Handshake   time.Duration

	Idle time.Duration // how long the connections sit idle before the idle RSS is read
	Rate int           // notifications per second in each delivery phase
	// PipelineRate, when set, replaces Rate in the pipeline phase, whose
	// ceiling is notification-api's ingest rather than the server.
	PipelineRate int
	Duration     time.Duration // of each delivery phase
	Drain        time.Duration // how long to wait without progress for the last messages
	Phases       []string

	// Worker returns the command of one worker process (notifybench
	// gateway-worker).
	Worker func(ctx context.Context) *exec.Cmd
	// PhaseHook, when set, is called with PhaseStart just before the first
	// publish of each delivery phase and with PhaseEnd once the last
	// message has arrived (or the drain ended), and the phase waits for
	// it: a script reads the CPU time of the other processes of the
	// pipeline (NATS, PostgreSQL, notification-api) over exactly the phase.
	PhaseHook func(phase, stage string) error
	Log       *slog.Logger
}

// Validate names what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("the server url is required"))
	}
	if len(c.ServerPIDs) == 0 || slices.ContainsFunc(c.ServerPIDs, func(pid int) bool { return pid <= 0 }) {
		errs = append(errs, errors.New("the server pid is required (its memory is measured)"))
	}
	if c.Clients < 1 || c.PerWorker < 1 {
		errs = append(errs, errors.New("clients and clients per worker must be positive"))
	}
	if _, err := protocolNamed(c.Protocol); err != nil {
		errs = append(errs, err)
	}
	if c.Secret == "" {
		errs = append(errs, errors.New("the JWT secret is required"))
	}
	if len(c.Phases) > 0 && (c.Rate < 1 || c.Duration <= 0 || c.PipelineRate < 0) {
		errs = append(errs, errors.New("rate and duration must be positive"))
	}
	for _, p := range c.Phases {
		if p != PhaseFanout && p != PhasePipeline {
			errs = append(errs, fmt.Errorf("unknown phase %q (want %s or %s)", p, PhaseFanout, PhasePipeline))
		}
	}
	if c.Worker == nil {
		errs = append(errs, errors.New("no worker command"))
	}
	return errors.Join(errs...)
}

// Run measures one server and returns the figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if err := checkFileLimits(cfg); err != nil {
		return nil, err
	}
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	server := processes(cfg.ServerPIDs)
	res := &Result{Label: cfg.Label, URL: strings.Join(cfg.URLs, ","), Processes: len(server), Clients: cfg.Clients, Rate: cfg.Rate,
		StartedAt: time.Now().UTC(), LoadAvgBefore: loadAvg()}

	baseline, err := server.rssKB()
	if err != nil {
		return nil, err
	}
	res.Memory.BaselineKB = baseline
	var goBefore *GoRuntime
	if cfg.MetricsURL != "" {
		if goBefore, err = readGoRuntime(ctx, cfg.MetricsURL); err != nil {
			return nil, err
		}
	}

	workers, err := startWorkers(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer stopWorkers(workers, log)
	res.Workers = len(workers)

	users := make([]string, cfg.Clients)
	for i := range users {
		users[i] = fmt.Sprintf("bench-%s-%d", run, i)
	}
	prof := &profiler{url: cfg.PprofURL, dir: cfg.ProfileDir}
	log.Info("connecting", "server", cfg.Label, "clients", cfg.Clients, "workers", len(workers))
	prof.cpu(ctx, "connect", 5*time.Second)
	connected, err := connectStorm(ctx, cfg, run, workers, users, &res.Connect)
	if err != nil {
		return nil, err
	}
	log.Info("connected", "server", cfg.Label, "connected", res.Connect.Connected, "failed", res.Connect.Failed,
		"per_second", int(res.Connect.PerSecond), "retried", res.Connect.Retried)

	if err := sleepCtx(ctx, cfg.Idle); err != nil {
		return nil, err
	}
	idle, err := server.rssKB()
	if err != nil {
		return nil, err
	}
	res.Memory.IdleKB = idle
	prof.heap(ctx, "idle")
	res.Memory.IdlePerConnKB = perConn(idle-baseline, len(connected))
	if goBefore != nil {
		after, err := readGoRuntime(ctx, cfg.MetricsURL)
		if err != nil {
			return nil, err
		}
		n := float64(len(connected))
		res.Memory.GoPerConn = &GoRuntime{
			Goroutines:   (after.Goroutines - goBefore.Goroutines) / n,
			HeapInuseKB:  (after.HeapInuseKB - goBefore.HeapInuseKB) / n,
			StackInuseKB: (after.StackInuseKB - goBefore.StackInuseKB) / n,
		}
	}
	log.Info("idle", "server", cfg.Label, "rss_kb", idle, "per_conn_kb", fmt.Sprintf("%.2f", res.Memory.IdlePerConnKB))

	if len(cfg.Phases) > 0 {
		pub, err := newPublisher(cfg.NATSURL, cfg.Org)
		if err != nil {
			return nil, err
		}
		defer pub.close()
		for _, phase := range cfg.Phases {
			prof.cpu(ctx, phase, cfg.Duration-time.Second)
			d, err := deliver(ctx, cfg, run, phase, pub, workers, connected)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", phase, err)
			}
			// With -base idle.heap.pprof, its alloc_space is what the
			// phase allocated.
			prof.heap(ctx, phase)
			d.LoadPerConnKB = perConn(d.MaxRSSKB-baseline, len(connected))
			res.Memory.LoadKB = max(res.Memory.LoadKB, d.MaxRSSKB)
			res.Phases = append(res.Phases, *d)
			log.Info("delivered", "server", cfg.Label, "phase", phase, "published", d.Published, "received", d.Received,
				"lost", d.Lost, "p50_ms", d.P50Ms, "p99_ms", d.P99Ms, "rss_kb", d.MaxRSSKB)
		}
		res.Memory.LoadPerConnKB = perConn(res.Memory.LoadKB-baseline, len(connected))
	}
	stats, err := gatherStats(workers, "")
	if err != nil {
		return nil, err
	}
	res.Disconnects = stats.Disconnects
	res.LoadAvgAfter = loadAvg()
	if err := prof.wait(); err != nil {
		log.Warn("a profile could not be saved", "err", err)
	}
	return res, nil
}

func perConn(kb int64, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(kb) / float64(n)
}

// checkFileLimits says plainly when a process would run out of file
// descriptors, instead of letting the storm fail with EMFILE.
func checkFileLimits(cfg Config) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("read the open-files limit: %w", err)
	}
	const margin = 200
	if int64(cfg.PerWorker)+margin > int64(rl.Max) {
		return fmt.Errorf("each load-generator process would hold %d connections but may open at most %d files (ulimit -Hn): lower the clients per worker", cfg.PerWorker, rl.Max)
	}
	// Clients are dealt out to the processes in turn.
	perProcess := (cfg.Clients + len(cfg.ServerPIDs) - 1) / len(cfg.ServerPIDs)
	for _, pid := range cfg.ServerPIDs {
		limit, err := openFilesLimit(pid)
		if err != nil {
			return err
		}
		if int64(perProcess)+margin > limit {
			return fmt.Errorf("the server (pid %d) may open at most %d files, fewer than %d connections need: raise its limit (ulimit -n) up to the hard limit, or measure fewer clients (or spread them over more processes)", pid, limit, perProcess+margin)
		}
	}
	return nil
}

// workerProc is one load-generator process and its pipes.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	dec   *json.Decoder
	mu    sync.Mutex
}

func (w *workerProc) call(req request) (reply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(req); err != nil {
		return reply{}, fmt.Errorf("worker %d: send %s: %w", w.cmd.Process.Pid, req.Op, err)
	}
	var rep reply
	if err := w.dec.Decode(&rep); err != nil {
		return reply{}, fmt.Errorf("worker %d: read %s reply: %w", w.cmd.Process.Pid, req.Op, err)
	}
	if rep.Err != "" {
		return rep, fmt.Errorf("worker %d: %s: %s", w.cmd.Process.Pid, req.Op, rep.Err)
	}
	return rep, nil
}

func startWorkers(ctx context.Context, cfg Config) ([]*workerProc, error) {
	n := (cfg.Clients + cfg.PerWorker - 1) / cfg.PerWorker
	var out []*workerProc
	for range n {
		cmd := cfg.Worker(ctx)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			stopWorkers(out, cfg.Log)
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			stopWorkers(out, cfg.Log)
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			stopWorkers(out, cfg.Log)
			return nil, fmt.Errorf("start worker: %w", err)
		}
		out = append(out, &workerProc{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), dec: json.NewDecoder(stdout)})
	}
	return out, nil
}

// stopWorkers asks each worker to close its connections and exit, and
// kills the ones that do not within a few seconds.
func stopWorkers(ws []*workerProc, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			done := make(chan struct{})
			go func() {
				_, _ = w.call(request{Op: "close"})
				_ = w.stdin.Close()
				_ = w.cmd.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				log.Warn("worker did not exit; killing it", "pid", w.cmd.Process.Pid)
				_ = w.cmd.Process.Kill()
				<-done
			}
		})
	}
	wg.Wait()
}

// split deals items out to n shares in turn.
func split[T any](items []T, n int) [][]T {
	out := make([][]T, n)
	for i, it := range items {
		out[i%n] = append(out[i%n], it)
	}
	return out
}

// connectStorm connects every client at once, each worker Concurrency
// handshakes at a time, and returns the users that ended up connected.
func connectStorm(ctx context.Context, cfg Config, run string, workers []*workerProc, users []string, out *ConnectResult) ([]string, error) {
	shares := split(users, len(workers))
	sources := make([][]string, len(workers))
	if len(cfg.Sources) >= len(workers) {
		sources = split(cfg.Sources, len(workers))
	} else if len(cfg.Sources) > 0 {
		for i := range sources {
			sources[i] = []string{cfg.Sources[i%len(cfg.Sources)]}
		}
	}
	replies := make([]*ConnectReply, len(workers))
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() {
			rep, err := w.call(request{Op: "connect", Connect: &ConnectRequest{
				URLs: cfg.URLs, Protocol: cfg.Protocol, Secret: cfg.Secret, Org: cfg.Org, Run: run, Users: shares[i],
				Sources: sources[i], Concurrency: cfg.Concurrency, Timeout: cfg.Handshake,
			}})
			replies[i], errs[i] = rep.Connect, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out.Attempted = len(users)
	out.Errors = map[string]int{}
	out.Examples = map[string]string{}
	var start, end int64
	var handshakes []uint32
	failed := map[string]bool{}
	for _, r := range replies {
		out.Connected += r.Connected
		out.Failed += r.Failed
		out.Retried += r.Retried
		out.StillFailed += len(r.StillFailed)
		for _, u := range r.StillFailed {
			failed[u] = true
		}
		for k, v := range r.Errors {
			out.Errors[k] += v
			if _, ok := out.Examples[k]; !ok {
				out.Examples[k] = r.Examples[k]
			}
		}
		if start == 0 || r.Start < start {
			start = r.Start
		}
		end = max(end, r.End)
		handshakes = append(handshakes, r.HandshakeUs...)
	}
	if end > start {
		out.Seconds = float64(end-start) / 1e9
		out.PerSecond = float64(out.Connected) / out.Seconds
	}
	p := percentiles(handshakes, 0.5, 0.99, 1)
	out.HandshakeP50Ms, out.HandshakeP99Ms, out.HandshakeMaxMs = p[0], p[1], p[2]
	connected := slices.DeleteFunc(slices.Clone(users), func(u string) bool { return failed[u] })
	if len(connected) == 0 {
		return nil, fmt.Errorf("no client could connect to %s: %s", strings.Join(cfg.URLs, ", "), describeErrors(out.Examples))
	}
	return connected, nil
}

func describeErrors(examples map[string]string) string {
	var parts []string
	for k, v := range examples {
		parts = append(parts, k+" ("+v+")")
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// gatherStats adds up the workers' counts of a phase.
func gatherStats(workers []*workerProc, phase string) (PhaseStats, error) {
	var sum PhaseStats
	for _, w := range workers {
		rep, err := w.call(request{Op: "stats", Phase: phase})
		if err != nil {
			return sum, err
		}
		s := rep.Stats
		sum.Received += s.Received
		sum.Duplicates += s.Duplicates
		sum.Foreign += s.Foreign
		sum.Open += s.Open
		sum.Disconnects += s.Disconnects
	}
	return sum, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
