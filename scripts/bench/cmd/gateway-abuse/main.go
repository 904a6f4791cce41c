// Command gateway-abuse measures the gateway under cheap abuse: it runs
// NATS in process, starts a realtime-gateway binary against it, and for a
// while has unauthenticated clients flood pings while reading slowly (half
// over Socket.IO, half over /ws; each reconnects when the gateway cuts it)
// and holds half-open HTTP requests (a body announced, never sent). It
// prints the gateway's RSS growth and the latency of /healthz, sampled
// throughout, against their budgets, and exits non-zero when one is passed.
//
//	go build -o /tmp/gw ./cmd/realtime-gateway && go run ./cmd/gateway-abuse -bin /tmp/gw
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/natsx"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway-abuse:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, addr, nats     string
	clients, bodies     int
	duration            time.Duration
	rssBudget, pingWait int64 // bytes; microseconds of /healthz
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "", "realtime-gateway binary to measure")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:18091", "HTTP address for the gateway")
	flag.StringVar(&o.nats, "nats", "127.0.0.1:14233", "address of the in-process NATS")
	flag.IntVar(&o.clients, "clients", 8, "unauthenticated clients flooding pings")
	flag.IntVar(&o.bodies, "bodies", 1000, "half-open HTTP requests held (this process holds one file each)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long the clients flood")
	budgetMB := flag.Int64("rss-budget-mb", 64, "allowed RSS growth, MB")
	healthzMS := flag.Int64("healthz-budget-ms", 50, "allowed /healthz latency, ms")
	flag.Parse()
	o.rssBudget, o.pingWait = *budgetMB<<20, *healthzMS*1000
	if o.bin == "" {
		return errors.New("-bin is required")
	}
	dir, err := os.MkdirTemp("", "gateway-abuse")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: dir, Listen: o.nats, Name: "gateway-abuse"})
	if err != nil {
		return err
	}
	defer srv.Shutdown()

	gw := exec.Command(o.bin)
	gw.Env = append(os.Environ(), "NATS_URL=nats://"+o.nats, "HTTP_ADDR="+o.addr,
		"JWT_SECRET=gateway-abuse-secret-0123456789-abcdef-XYZ", "LOG_LEVEL=error")
	gw.Stderr = os.Stderr
	if err := gw.Start(); err != nil {
		return err
	}
	defer func() {
		_ = gw.Process.Signal(os.Interrupt)
		_ = gw.Wait()
	}()
	base := "http://" + o.addr
	if err := waitUp(base + "/healthz"); err != nil {
		return err
	}
	before, err := rss(gw.Process.Pid)
	if err != nil {
		return err
	}
	return measure(o, base, gw.Process.Pid, before)
}

func measure(o options, base string, pid int, before int64) error {
	fmt.Printf("gateway-abuse: %d unauthenticated clients flooding pings and reading slowly for %s, %d half-open HTTP bodies\n", o.clients, o.duration, o.bodies)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()

	held, answered := make(chan net.Conn, o.bodies), &atomic.Int64{}
	for range o.bodies {
		c, err := halfOpen(o.addr)
		if err != nil {
			return fmt.Errorf("half-open body: %w", err)
		}
		held <- c
	}
	close(held)
	var bodies []net.Conn
	var readers sync.WaitGroup
	for c := range held {
		bodies = append(bodies, c)
		readers.Go(func() { awaitAnswer(c, answered) })
	}
	heldAt := time.Now()

	var pings, cuts, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range o.clients {
		path := "/socket.io/?EIO=4&transport=websocket"
		ping := func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, []byte("2")) }
		if i%2 == 1 {
			path = "/ws"
			ping = func(ws *websocket.Conn) error {
				return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
			}
		}
		wg.Go(func() { flood(ctx, "ws://"+o.addr+path, ping, &pings, &cuts, &refused) })
	}

	var peak int64
	var waits []time.Duration
	hc := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		if r, err := rss(pid); err == nil {
			peak = max(peak, r)
		}
		start := time.Now()
		resp, err := hc.Get(base + "/healthz")
		if err != nil {
			return fmt.Errorf("/healthz: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		waits = append(waits, time.Since(start))
	}
	wg.Wait()
	slices.Sort(waits)
	growth := peak - before
	q := func(p float64) time.Duration { return waits[int(p*float64(len(waits)-1))] }
	worst := waits[len(waits)-1]
	fmt.Printf("gateway RSS: %.1f MiB before, %.1f MiB at the peak: growth %.1f MiB (budget %d MiB): %s\n",
		mib(before), mib(peak), mib(growth), o.rssBudget>>20, verdict(growth <= o.rssBudget))
	fmt.Printf("/healthz during the run: %d requests, p50 %s, p99 %s, max %s (budget %d ms): %s\n",
		len(waits), q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), worst.Round(10*time.Microsecond), o.pingWait/1000, verdict(worst.Microseconds() <= o.pingWait))
	fmt.Printf("flood: %d pings sent, %d connections cut by the gateway, %d handshakes refused\n", pings.Load(), cuts.Load(), refused.Load())

	// The half-open requests are answered 408 once their body deadline passes.
	waitBodies := time.NewTimer(30 * time.Second)
	allAnswered := make(chan struct{})
	go func() { readers.Wait(); close(allAnswered) }()
	select {
	case <-allAnswered:
	case <-waitBodies.C:
	}
	fmt.Printf("half-open bodies: %d of %d answered 408 and closed within %s of being sent\n", answered.Load(), len(bodies), time.Since(heldAt).Round(time.Second))
	for _, c := range bodies {
		c.Close()
	}
	if growth > o.rssBudget || worst.Microseconds() > o.pingWait {
		return errors.New("over budget")
	}
	return nil
}

// flood connects, sends pings as fast as it can while reading one message
// every 50 ms, and connects again when the gateway cuts it.
func flood(ctx context.Context, url string, ping func(*websocket.Conn) error, pings, cuts, refused *atomic.Int64) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	for ctx.Err() == nil {
		ws, _, err := d.DialContext(ctx, url, nil)
		if err != nil {
			if ctx.Err() == nil {
				refused.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		stop := context.AfterFunc(ctx, func() { ws.Close() })
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		for {
			_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
			if err := ping(ws); err != nil {
				break
			}
			pings.Add(1)
		}
		if stop() {
			cuts.Add(1)
		}
		ws.Close()
	}
}

// halfOpen sends a request announcing a 64 KiB body and a few bytes of it.
func halfOpen(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_, err = io.WriteString(c, "POST /healthz HTTP/1.1\r\nHost: abuse\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{\"a\":")
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// awaitAnswer counts a 408 followed by the server closing the connection.
func awaitAnswer(c net.Conn, answered *atomic.Int64) {
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); resp.StatusCode == http.StatusRequestTimeout && errors.Is(err, io.EOF) {
		answered.Add(1)
	}
}

func waitUp(url string) error {
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the gateway did not come up")
}

// rss is the process's resident set, in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func verdict(ok bool) string {
	if ok {
		return "within"
	}
	return "OVER"
}
