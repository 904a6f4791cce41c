package webhookdispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/internal/secrets"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

// testConfig is the production configuration with small delays, and the
// real SSRF guard with one allowance: the test receivers on 127.0.0.1.
func testConfig(t testing.TB) webhookdispatcher.Config {
	t.Helper()
	env := config.FromMap(map[string]string{
		"WEBHOOK_SECRETS_KEYS":    secrets.NewKeySpec("test1"),
		"WEBHOOK_ALLOW_TARGETS":   "127.0.0.1/32",
		"WEBHOOK_RETRY_BASE":      "200ms",
		"WEBHOOK_RETRY_MAX":       "5s",
		"WEBHOOK_CONNECT_TIMEOUT": "1s",
		"WEBHOOK_TIMEOUT":         "2s",
		"WEBHOOK_ACK_WAIT":        "7s",
		"WEBHOOK_POLL_INTERVAL":   "20ms",
	})
	cfg := webhookdispatcher.ReadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// harness runs the service against a fresh database and an in-process
// JetStream, and can stop and start it again on the same state.
type harness struct {
	t     testing.TB
	cfg   webhookdispatcher.Config
	nats  *testkit.NATS
	dbURL string
	db    *sqlx.DB
	pub   *publisher.Publisher
	base  string // http://host:port of the running instance

	stopRun func()
	done    chan error
}

func newHarness(t testing.TB, cfg webhookdispatcher.Config) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, nats: testkit.StartNATS(t), dbURL: testkit.Database(t)}
	h.pub = publisher.New(h.nats.JS)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, h.dbURL, 4)
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	h.start()
	t.Cleanup(h.stop)
	return h
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TEST_LOGS") != "" {
		return logx.New(os.Stderr, "debug").With("test", t.Name())
	}
	return logx.Discard()
}

// start runs a new instance of the service.
func (h *harness) start() {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	h.done = make(chan error, 1)
	h.stopRun = cancel
	common := config.Common{
		DatabaseURL: h.dbURL, NATSURL: h.nats.URL, HTTPAddr: ln.Addr().String(), LogLevel: "debug",
		Streams: testkit.StreamsConfig(), JWT: testkit.JWTConfig(),
		// The widest CORS a deployment may set, so that the tests see
		// what it opens (the REST API) and what it must not (the portal).
		APIAllowedOrigins: []string{"*"},
	}
	go func() {
		h.done <- app.Run(ctx, app.Options{
			Name: webhookdispatcher.Name, Common: common, Log: testLogger(h.t), NeedDB: true,
			Services: []app.Builder{webhookdispatcher.New(h.cfg)}, Listener: ln,
			Ready: func(addr string) { ready <- addr }, ShutdownGrace: 10 * time.Second,
		})
	}()
	select {
	case addr := <-ready:
		h.base = "http://" + addr
	case err := <-h.done:
		h.t.Fatalf("service did not start: %v", err)
	case <-time.After(30 * time.Second):
		h.t.Fatal("service did not start within 30s")
	}
}

// stop ends the running instance and waits for it.
func (h *harness) stop() {
	if h.stopRun == nil {
		return
	}
	h.stopRun()
	h.stopRun = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("service stopped with: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("service did not stop within 30s")
	}
}

func token(t testing.TB, org, role string) string {
	t.Helper()
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: testkit.UniqueID("user"), OrganizationID: org, Role: role, TTL: time.Hour})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// checkAgainstOpenAPI fails t unless a response of the webhook API matches
// its OpenAPI document (the shared check of testkit.OpenAPI).
func checkAgainstOpenAPI(t testing.TB, method, path string, status int, contentType string, body []byte) {
	t.Helper()
	testkit.LoadOpenAPI(t, "../internal/api/openapi.json", "/api/v1/webhooks", "/api/v1/webhook-events").Check(t, method, path, status, contentType, body)
}

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func (h *harness) call(method, path, tok string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatalf("encode: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	checkAgainstOpenAPI(h.t, method, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

type webhookOut struct {
	ID           string    `json:"id"`
	URL          string    `json:"url"`
	Events       []string  `json:"events"`
	Status       string    `json:"status"`
	FailureCount int       `json:"failureCount"`
	Description  string    `json:"description"`
	SecretHint   string    `json:"secretHint"`
	Secret       string    `json:"secret"`
	CreatedAt    time.Time `json:"createdAt"`
}

type attemptOut struct {
	Number          int       `json:"number"`
	At              time.Time `json:"at"`
	DurationMs      int64     `json:"durationMs"`
	Outcome         string    `json:"outcome"`
	StatusCode      int       `json:"statusCode"`
	Error           string    `json:"error"`
	ResponseExcerpt string    `json:"responseExcerpt"`
	Manual          bool      `json:"manual"`
}

type deliveryOut struct {
	ID         string       `json:"id"`
	EventID    string       `json:"eventId"`
	RecoveryID string       `json:"recoveryId"`
	Event      string       `json:"event"`
	Status     string       `json:"status"`
	Attempts   []attemptOut `json:"attempts"`
}

type pageOut[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"nextCursor"`
}

type problemOut struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// createWebhook creates a webhook through the API.
func (h *harness) createWebhook(tok, url string, events ...string) webhookOut {
	h.t.Helper()
	var w webhookOut
	if code := h.call(http.MethodPost, "/api/v1/webhooks", tok, map[string]any{"url": url, "events": events}, &w); code != http.StatusCreated {
		h.t.Fatalf("create webhook: status %d", code)
	}
	return w
}

// webhook reads one webhook from the list of its organization.
func (h *harness) webhook(tok, id string) webhookOut {
	h.t.Helper()
	var p pageOut[webhookOut]
	if code := h.call(http.MethodGet, "/api/v1/webhooks?limit=100", tok, nil, &p); code != http.StatusOK {
		h.t.Fatalf("list webhooks: status %d", code)
	}
	for _, w := range p.Data {
		if w.ID == id {
			return w
		}
	}
	h.t.Fatalf("webhook %s not listed", id)
	return webhookOut{}
}

func (h *harness) deliveries(tok, webhookID string) []deliveryOut {
	h.t.Helper()
	var p pageOut[deliveryOut]
	if code := h.call(http.MethodGet, "/api/v1/webhooks/"+webhookID+"/deliveries?limit=100", tok, nil, &p); code != http.StatusOK {
		h.t.Fatalf("list deliveries: status %d", code)
	}
	return p.Data
}

// publish publishes one event of type for org and returns its id.
func (h *harness) publish(org, typ string, data map[string]any) string {
	h.t.Helper()
	st, err := structpb.NewStruct(data)
	if err != nil {
		h.t.Fatalf("data: %v", err)
	}
	ev := &contract.Event{Id: uuid.NewString(), Type: typ, OrganizationId: org, OccurredAt: timestamppb.Now(), Data: st}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.pub.Publish(ctx, ev); err != nil {
		h.t.Fatalf("publish: %v", err)
	}
	return ev.Id
}

// received is one request a receiver got.
type received struct {
	At     time.Time
	Header http.Header
	Body   []byte
}

// receiver is a real HTTP endpoint that records every request and answers
// as its current behaviour says.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	got    []received
	answer func(n int) (int, string) // n: 1-based request number
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	r := &receiver{answer: func(int) (int, string) { return http.StatusOK, "ok" }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{At: time.Now(), Header: req.Header.Clone(), Body: body})
		n, answer := len(r.got), r.answer
		r.mu.Unlock()
		code, text := answer(n)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setAnswer(f func(n int) (int, string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) count() int { return len(r.requests()) }

// Address of the receiver, as an allowance would name it.
func (r *receiver) addr() netip.AddrPort {
	return netip.MustParseAddrPort(r.srv.Listener.Addr().String())
}
