// Command webhook-bench is the load generator of the webhook dispatcher
// (`make bench-webhooks`, scripts/bench-webhooks.sh). The dispatcher runs
// as its own process (bin/webhook-dispatcher) on the benchmark's
// nats-server and PostgreSQL; this process is its keep-alive HTTP receiver,
// with one endpoint per webhook, and the publisher: it creates the webhooks
// through the dispatcher's API, publishes events, and prints the delivery
// throughput, the event-to-delivery latency and, over the delivery phase
// only (from the first publish to the last result recorded in PostgreSQL),
// the CPU time of each process given with -cost and of itself. With
// -hanging N, N endpoints never answer, so every request to them runs until
// the dispatcher's timeout; the figures are then those of the healthy
// endpoints.
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
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

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
)

type options struct {
	api, natsURL, dbURL, jwtSecret string
	cost                           string
	webhooks                       int
	hanging                        int
	events                         int
	rate                           int
	wait                           time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.StringVar(&o.api, "api", "", "base URL of the webhook-dispatcher under test (http://host:port)")
	flag.StringVar(&o.natsURL, "nats", "", "URL of the NATS server the dispatcher consumes")
	flag.StringVar(&o.dbURL, "db", os.Getenv("DATABASE_URL"), "the dispatcher's database (default $DATABASE_URL): results recorded, transactions and WAL")
	flag.StringVar(&o.cost, "cost", "", "processes to charge: name=pid or name=cluster:postmaster-pid, comma-separated (webhook-dispatcher, nats-server, postgresql)")
	flag.IntVar(&o.webhooks, "webhooks", 100, "webhooks (one organization and one receiver endpoint each)")
	flag.IntVar(&o.hanging, "hanging", 0, "how many of the endpoints never answer (each request runs into the timeout)")
	flag.IntVar(&o.events, "events", 50_000, "events to publish, spread evenly over the webhooks")
	flag.IntVar(&o.rate, "rate", 0, "events per second to publish; 0 publishes as fast as possible")
	flag.DurationVar(&o.wait, "wait", 5*time.Minute, "give up after this long")
	flag.Parse()
	o.jwtSecret = os.Getenv("JWT_SECRET") // the dispatcher's: the webhooks are created with tokens it accepts
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	switch {
	case o.hanging >= o.webhooks:
		return errors.New("-hanging must be less than -webhooks")
	case o.api == "" || o.natsURL == "" || o.dbURL == "" || o.jwtSecret == "":
		return errors.New("-api, -nats, -db (or DATABASE_URL) and JWT_SECRET are required")
	}
	parties, err := parseParties(o.cost)
	if err != nil {
		return err
	}
	db, err := postgres.Open(ctx, o.dbURL, 2)
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	defer db.Close()

	rcv := newReceiver(o.webhooks, o.hanging)
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	rsrv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rsrv.Serve(rln) }()
	defer rsrv.Close()

	if err := waitReady(ctx, o.api); err != nil {
		return err
	}
	fmt.Printf("webhook-bench: %d webhooks (%d hanging), %d events, rate %s, dispatcher %s, GOMAXPROCS %d\n",
		o.webhooks, o.hanging, o.events, rateText(o.rate), o.api, runtime.GOMAXPROCS(0))
	receiverBase := "http://" + rln.Addr().String()
	for i := range o.webhooks {
		tok, err := auth.Mint(o.jwtSecret, auth.MintOptions{UserID: "bench", OrganizationID: orgOf(i), Role: "ADMIN", TTL: time.Hour})
		if err != nil {
			return err
		}
		if err := createWebhook(ctx, o.api, tok, receiverBase+rcv.path(i)); err != nil {
			return err
		}
	}

	nc, err := nats.Connect(o.natsURL)
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
	m, err := startMeter(ctx, parties, db)
	if err != nil {
		return err
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
	received := rcv.lastAt()
	// The delivery phase ends once every healthy result is in the delivery
	// log: the recorder's last batch is part of what a delivery costs.
	// Polled only from here, so the polling adds a few queries at most.
	for {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status = 'SUCCEEDED'`).Scan(&n); err != nil {
			return err
		}
		if n >= healthyWant {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d healthy deliveries recorded after %s", n, healthyWant, o.wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	recorded := time.Since(start)
	elapsed := received.Sub(start)
	lat := rcv.latencies()
	fmt.Printf("published %d events in %s (%.0f events/s)\n", o.events, published.Round(time.Millisecond), float64(o.events)/published.Seconds())
	fmt.Printf("healthy endpoints: %d deliveries in %s = %.0f deliveries/s (all recorded after %s)\n", len(lat), elapsed.Round(time.Millisecond),
		float64(len(lat))/elapsed.Seconds(), recorded.Round(time.Millisecond))
	fmt.Printf("event-to-delivery latency: p50 %s  p90 %s  p99 %s  max %s\n",
		pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	fmt.Printf("duplicates received: %d; requests to hanging endpoints: %d\n", rcv.duplicates.Load(), rcv.hangingHits.Load())
	return m.report(ctx, o.events)
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
