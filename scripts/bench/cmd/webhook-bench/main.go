// Command webhook-bench is the load generator of the webhook dispatcher
// (`make bench-webhooks`). In one process it runs an embedded NATS server,
// the dispatcher on a fresh PostgreSQL database, and a keep-alive HTTP
// receiver with one endpoint per webhook; it creates the webhooks through the
// API, publishes events, and prints the delivery throughput and the
// event-to-delivery latency. With -hanging N, N endpoints never answer, so
// every request to them runs until the dispatcher's timeout; the figures are
// then those of the healthy endpoints.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

type options struct {
	webhooks int
	hanging  int
	events   int
	rate     int
	timeout  time.Duration
	wait     time.Duration
	cpuProf  string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.IntVar(&o.webhooks, "webhooks", 100, "webhooks (one organization and one receiver endpoint each)")
	flag.IntVar(&o.hanging, "hanging", 0, "how many of the endpoints never answer (each request runs into the timeout)")
	flag.IntVar(&o.events, "events", 50_000, "events to publish, spread evenly over the webhooks")
	flag.IntVar(&o.rate, "rate", 0, "events per second to publish; 0 publishes as fast as possible")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "WEBHOOK_TIMEOUT of the dispatcher")
	flag.DurationVar(&o.wait, "wait", 5*time.Minute, "give up after this long")
	flag.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of the delivery phase to this file")
	flag.Parse()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.hanging >= o.webhooks {
		return errors.New("-hanging must be less than -webhooks")
	}
	log := logx.New(os.Stderr, "warn")
	dir, err := os.MkdirTemp("", "webhook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	dbURL, dropDB, err := freshDatabase(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer dropDB()

	ns, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: filepath.Join(dir, "js"), Name: "bench"})
	if err != nil {
		return err
	}
	defer ns.Shutdown()

	rcv := newReceiver(o.webhooks, o.hanging)
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rsrv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rsrv.Serve(rln) }()
	defer rsrv.Close()

	env := config.FromMap(map[string]string{
		"WEBHOOK_SECRETS_KEYS":          webhookdispatcher.NewSecretKeySpec("bench"),
		"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", // the receiver is on 127.0.0.1
		"WEBHOOK_TIMEOUT":               o.timeout.String(),
		"WEBHOOK_ACK_WAIT":              (o.timeout + 20*time.Second).String(),
	})
	cfg := webhookdispatcher.ReadConfig(env)
	if err := env.Err(); err != nil {
		return err
	}
	jwtSecret := randomHex(32)
	common := config.Common{
		DatabaseURL: dbURL, HTTPAddr: "127.0.0.1:0", LogLevel: "warn", Streams: config.ReadCommon(config.FromMap(nil), false, false).Streams,
		JWT: config.JWT{Secret: jwtSecret, Leeway: 5 * time.Second},
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	svcCtx, stopSvc := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(svcCtx, app.Options{
			Name: "webhook-bench", Common: common, Log: log.With("service", webhookdispatcher.Name), NeedDB: true,
			NATSOpts: []nats.Option{nats.InProcessServer(ns)}, Services: []app.Builder{webhookdispatcher.New(cfg)},
			Listener: aln, ShutdownGrace: o.timeout + 5*time.Second,
		})
	}()
	defer func() { stopSvc(); <-done }()
	apiBase := "http://" + aln.Addr().String()
	if err := waitReady(ctx, apiBase); err != nil {
		return err
	}

	fmt.Printf("webhook-bench: %d webhooks (%d hanging), %d events, rate %s, timeout %s, GOMAXPROCS %d\n",
		o.webhooks, o.hanging, o.events, rateText(o.rate), o.timeout, runtime.GOMAXPROCS(0))
	receiverBase := "http://" + rln.Addr().String()
	for i := range o.webhooks {
		tok, err := auth.Mint(jwtSecret, auth.MintOptions{UserID: "bench", OrganizationID: orgOf(i), Role: "ADMIN", TTL: time.Hour})
		if err != nil {
			return err
		}
		if err := createWebhook(ctx, apiBase, tok, receiverBase+rcv.path(i)); err != nil {
			return err
		}
	}

	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	pub := publisher.New(js)

	healthyWant := 0
	for i := range o.events {
		if !rcv.hanging(i % o.webhooks) {
			healthyWant++
		}
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rcv.start(start)
	if err := publish(ctx, pub, js, o); err != nil {
		return err
	}
	published := time.Since(start)
	deadline := time.Now().Add(o.wait)
	for rcv.healthyCount() < healthyWant {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d healthy deliveries after %s", rcv.healthyCount(), healthyWant, o.wait)
		}
		time.Sleep(20 * time.Millisecond) // polling a counter: nothing to wake us
	}
	elapsed := rcv.lastAt().Sub(start)
	lat := rcv.latencies()
	fmt.Printf("published %d events in %s (%.0f events/s)\n", o.events, published.Round(time.Millisecond), float64(o.events)/published.Seconds())
	fmt.Printf("healthy endpoints: %d deliveries in %s = %.0f deliveries/s\n", len(lat), elapsed.Round(time.Millisecond), float64(len(lat))/elapsed.Seconds())
	fmt.Printf("event-to-delivery latency: p50 %s  p90 %s  p99 %s  max %s\n",
		pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	fmt.Printf("duplicates received: %d; requests to hanging endpoints: %d\n", rcv.duplicates.Load(), rcv.hangingHits.Load())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("process memory: heap in use %d MiB, sys %d MiB (receiver and NATS included)\n", ms.HeapInuse>>20, ms.Sys>>20)
	return nil
}

func rateText(r int) string {
	if r == 0 {
		return "unlimited"
	}
	return strconv.Itoa(r) + "/s"
}

func orgOf(i int) string { return fmt.Sprintf("bench-org-%03d", i) }

// publish sends the events, round robin over the organizations, with the
// send time in the data so that the receiver measures the latency.
func publish(ctx context.Context, pub *publisher.Publisher, js jetstream.JetStream, o options) error {
	var tick *time.Ticker
	perTick := o.events
	if o.rate > 0 {
		tick = time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		perTick = max(1, o.rate/100)
	}
	for i := 0; i < o.events; {
		for n := 0; n < perTick && i < o.events; n, i = n+1, i+1 {
			data, _ := structpb.NewStruct(map[string]any{"sentAt": strconv.FormatInt(time.Now().UnixNano(), 10), "bookingId": "BK-" + strconv.Itoa(i)})
			ev := &contract.Event{Id: fmt.Sprintf("bench-%d-%s", i, randomHex(4)), Type: "BOOKING_CREATED", OrganizationId: orgOf(i % o.webhooks), OccurredAt: timestamppb.Now(), Data: data}
			for {
				_, err := pub.PublishAsync(ev)
				if err == nil {
					break
				}
				if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					return err
				}
				// The stream is behind (a busy machine): wait for room and send it again.
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(time.Minute):
		return errors.New("publish acks did not arrive within a minute")
	}
}

// receiver is the integrators' side: one path per webhook, keep-alive.
type receiver struct {
	n, hangingN int
	t0          time.Time

	mu   sync.Mutex
	lat  []time.Duration
	seen map[string]bool
	last time.Time

	duplicates  atomic.Int64
	hangingHits atomic.Int64
}

func newReceiver(n, hanging int) *receiver {
	return &receiver{n: n, hangingN: hanging, seen: map[string]bool{}}
}

func (r *receiver) start(t0 time.Time) { r.mu.Lock(); r.t0 = t0; r.mu.Unlock() }

// hanging endpoints are spread over the range, not bunched at its start.
func (r *receiver) hanging(i int) bool {
	if r.hangingN == 0 {
		return false
	}
	return i%(r.n/r.hangingN) == 0 && i/(r.n/r.hangingN) < r.hangingN
}

func (r *receiver) path(i int) string {
	if r.hanging(i) {
		return "/hang/" + strconv.Itoa(i)
	}
	return "/ok/" + strconv.Itoa(i)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if strings.HasPrefix(req.URL.Path, "/hang/") {
		r.hangingHits.Add(1)
		<-req.Context().Done() // until the dispatcher gives up
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	var b struct {
		Data struct {
			SentAt string `json:"sentAt"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &b)
	sent, _ := strconv.ParseInt(b.Data.SentAt, 10, 64)
	id := req.Header.Get("X-Webhook-Id")
	r.mu.Lock()
	if r.seen[id] {
		r.duplicates.Add(1)
	} else {
		r.seen[id] = true
		r.lat = append(r.lat, now.Sub(time.Unix(0, sent)))
		r.last = now
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) healthyCount() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.lat) }
func (r *receiver) lastAt() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.last }
func (r *receiver) latencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.lat)
	slices.Sort(out)
	return out
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, len(sorted)*p/100)
	return sorted[i].Round(100 * time.Microsecond)
}

func createWebhook(ctx context.Context, base, tok, target string) error {
	body, _ := json.Marshal(map[string]any{"url": target, "events": []string{"BOOKING_CREATED"}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/webhooks", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("create webhook: %d %s", resp.StatusCode, msg)
	}
	return nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the dispatcher did not become ready")
}

// freshDatabase creates a database for this run on the server of base and
// returns its URL and a function that drops it.
func freshDatabase(ctx context.Context, base string) (string, func(), error) {
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	admin, err := postgres.Open(ctx, base, 2)
	if err != nil {
		return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := "webhook_bench_" + randomHex(4)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			slog.Warn("drop bench database", "name", name, "err", err)
		}
		admin.Close()
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
