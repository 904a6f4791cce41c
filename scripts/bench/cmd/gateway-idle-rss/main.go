// Command gateway-idle-rss is a quick check of the gateway's memory per idle
// connection: it runs NATS in process, starts a realtime-gateway binary
// against it, opens n Socket.IO WebSocket connections (one user each, as
// socket.io-client does: handshake, CONNECT with a token, pongs), waits for
// them to idle and prints the gateway's RSS growth per connection and the
// CPU time it spends while they idle (heartbeats and the timing wheel; run
// it with -settle of a few ping intervals for that figure), and the CPU time
// it spent opening them (handshake, CONNECT, join, session record) per
// 1,000 connections. With -pprof (the address of bin/realtime-gateway-pprof's
// profiler, whose PPROF_ADDR this probe then sets) it also saves a CPU
// profile of the connection storm and allocation and heap profiles into
// -profiles, and prints the heap and stack bytes per idle connection after
// a forced collection (from the gateway's /metrics). The full
// load generator (connection rate, fan-out latency, the Node.js reference)
// is make bench-gateway; this is the small, fast probe used while tuning.
//
//	go build -o /tmp/gw ./cmd/realtime-gateway && go run ./cmd/gateway-idle-rss -bin /tmp/gw -n 2000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/natsx"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway-idle-rss:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 2000, "connections to open (this process holds 2 files per connection)")
	bin := flag.String("bin", "", "realtime-gateway binary to measure")
	addr := flag.String("addr", "127.0.0.1:18081", "HTTP address for the gateway")
	natsAddr := flag.String("nats", "127.0.0.1:14223", "address of the in-process NATS")
	settle := flag.Duration("settle", 10*time.Second, "idle time before the reading")
	pprofAddr := flag.String("pprof", "", "profiler address of a realtime-gateway-pprof binary (sets its PPROF_ADDR)")
	profiles := flag.String("profiles", ".", "directory for the profiles taken with -pprof")
	stormSeconds := flag.Int("storm-profile", 10, "seconds of CPU profile taken from the start of the connection storm (with -pprof)")
	flag.Parse()
	if *bin == "" {
		return errors.New("-bin is required")
	}
	dir, err := os.MkdirTemp("", "gateway-idle-rss")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: dir, Listen: *natsAddr, Name: "idle-rss"})
	if err != nil {
		return err
	}
	defer srv.Shutdown()

	const secret = "idle-rss-check-secret-0123456789-abcdef"
	gw := exec.Command(*bin)
	gw.Env = append(os.Environ(), "NATS_URL=nats://"+*natsAddr, "HTTP_ADDR="+*addr, "JWT_SECRET="+secret, "LOG_LEVEL=error")
	if *pprofAddr != "" {
		gw.Env = append(gw.Env, "PPROF_ADDR="+*pprofAddr)
	}
	gw.Stderr = os.Stderr
	if err := gw.Start(); err != nil {
		return err
	}
	defer func() {
		_ = gw.Process.Signal(os.Interrupt)
		_ = gw.Wait()
	}()
	url := "ws://" + *addr + "/socket.io/?EIO=4&transport=websocket"
	if err := waitUp(url); err != nil {
		return err
	}
	base, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("gateway RSS before: %d KiB\n", base)
	metricsURL := "http://" + *addr + "/metrics"
	var memBefore memStats
	if *pprofAddr != "" {
		if memBefore, err = readMem(*pprofAddr, metricsURL); err != nil {
			return err
		}
	}
	cpuStart, err := cpuSeconds(gw.Process.Pid)
	if err != nil {
		return err
	}
	stormProfile := make(chan error, 1)
	if *pprofAddr != "" {
		go func() {
			stormProfile <- save(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", *pprofAddr, *stormSeconds), filepath.Join(*profiles, "connect.cpu.pprof"))
		}()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened, failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	start := time.Now()
	for i := range *n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tok, _ := auth.Mint(secret, auth.MintOptions{UserID: "idle-" + strconv.Itoa(i), TTL: time.Hour})
			ws, err := connect(url, tok)
			if err != nil {
				failed.Add(1)
				return
			}
			opened.Add(1)
			go pong(ctx, ws)
		})
	}
	wg.Wait()
	took := time.Since(start)
	fmt.Printf("connections: %d opened, %d failed in %s (%.0f/s, 100 at a time)\n", opened.Load(), failed.Load(), took.Round(time.Millisecond), float64(opened.Load())/took.Seconds())
	if opened.Load() == 0 {
		return errors.New("no connection opened")
	}
	cpuBefore, err := cpuSeconds(gw.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("gateway CPU opening them: %.2f s: %.3f CPU-seconds per 1,000 connections\n", cpuBefore-cpuStart, (cpuBefore-cpuStart)*1000/float64(opened.Load()))
	if *pprofAddr != "" {
		if err := <-stormProfile; err != nil {
			return err
		}
		if err := save("http://"+*pprofAddr+"/debug/pprof/allocs", filepath.Join(*profiles, "connect.allocs.pprof")); err != nil {
			return err
		}
	}
	time.Sleep(*settle)
	after, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	cpuAfter, err := cpuSeconds(gw.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("gateway RSS after %s idle: %d KiB: %.2f KiB per idle connection\n", *settle, after, float64(after-base)/float64(opened.Load()))
	fmt.Printf("gateway CPU while idle: %.2f s over %s (%.3f CPU-seconds per idle minute)\n", cpuAfter-cpuBefore, *settle, (cpuAfter-cpuBefore)/settle.Minutes())
	if *pprofAddr != "" {
		if err := save("http://"+*pprofAddr+"/debug/pprof/heap?gc=1", filepath.Join(*profiles, "idle.heap.pprof")); err != nil {
			return err
		}
		memAfter, err := readMem(*pprofAddr, metricsURL)
		if err != nil {
			return err
		}
		n := float64(opened.Load())
		fmt.Printf("per idle connection after a collection: %.2f goroutines, %.0f bytes of stack, %.0f bytes of heap in use (%.0f bytes allocated)\n",
			(memAfter["go_goroutines"]-memBefore["go_goroutines"])/n,
			(memAfter["go_memstats_stack_inuse_bytes"]-memBefore["go_memstats_stack_inuse_bytes"])/n,
			(memAfter["go_memstats_heap_inuse_bytes"]-memBefore["go_memstats_heap_inuse_bytes"])/n,
			(memAfter["go_memstats_heap_alloc_bytes"]-memBefore["go_memstats_heap_alloc_bytes"])/n)
	}
	return nil
}

// memStats are the gateway's Go memory gauges from /metrics.
type memStats map[string]float64

// readMem forces a collection in the gateway (through its profiler) and
// reads its memory gauges.
func readMem(pprofAddr, metricsURL string) (memStats, error) {
	if err := save("http://"+pprofAddr+"/debug/pprof/heap?gc=1", os.DevNull); err != nil {
		return nil, err
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	m := memStats{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || strings.HasPrefix(l, "#") {
			continue
		}
		switch f[0] {
		case "go_goroutines", "go_memstats_stack_inuse_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return nil, err
			}
			m[f[0]] = v
		}
	}
	if len(m) != 4 {
		return nil, fmt.Errorf("%s: memory gauges missing", metricsURL)
	}
	return m, nil
}

// save writes what url answers into the file path.
func save(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func waitUp(url string) error {
	for range 100 {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil {
			return ws.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the gateway did not come up")
}

// connect does what socket.io-client does over WebSocket up to "connect".
func connect(url, token string) (*websocket.Conn, error) {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if _, open, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		ws.Close()
		return nil, fmt.Errorf("open packet %q: %w", open, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+token+`"}`)); err != nil {
		ws.Close()
		return nil, err
	}
	if _, reply, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(reply), "40{") {
		ws.Close()
		return nil, fmt.Errorf("connect reply %q: %w", reply, err)
	}
	return ws, nil
}

// pong answers the server's pings until ctx ends.
func pong(ctx context.Context, ws *websocket.Conn) {
	go func() { <-ctx.Done(); ws.Close() }()
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if string(m) == "2" {
			_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}

// cpuSeconds is the user and system CPU time of process pid so far.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	end := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b)[end+1:])
	if end < 0 || len(fields) < 13 {
		return 0, errors.New("unexpected /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ: /proc reports in 1/100 s on Linux
	return (utime + stime) / clockTicks, nil
}

func rss(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, errors.New("no VmRSS")
}
