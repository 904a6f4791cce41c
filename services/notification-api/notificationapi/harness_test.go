package notificationapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/postgres"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
)

// harness runs notification-api as its binary does, on a fresh database and
// an in-process JetStream, serving on a random port.
type harness struct {
	t    testing.TB
	nats *testkit.NATS
	db   *sqlx.DB
	base string
	pub  *publisher.Publisher
}

func start(t testing.TB) *harness {
	t.Helper()
	return startOn(t, testkit.StartNATS(t), testkit.Database(t))
}

func startOn(t testing.TB, n *testkit.NATS, dbURL string) *harness {
	t.Helper()
	h := launch(t, n, dbURL)
	waitReady(t, h.base, 10*time.Second)
	return h
}

// startWith starts the service logging to log, with settings over the
// test defaults, and waits for it to be ready.
func startWith(t testing.TB, n *testkit.NATS, dbURL string, log *slog.Logger, settings map[string]string) *harness {
	t.Helper()
	h := launchWith(t, n, dbURL, log, settings)
	waitReady(t, h.base, 10*time.Second)
	return h
}

// launch starts the service without waiting for it to be ready.
func launch(t testing.TB, n *testkit.NATS, dbURL string) *harness {
	t.Helper()
	return launchWith(t, n, dbURL, testkit.Logger(), nil)
}

func launchWith(t testing.TB, n *testkit.NATS, dbURL string, log *slog.Logger, settings map[string]string) *harness {
	t.Helper()
	base, _ := runService(t, n.URL, dbURL, log, settings)
	h := &harness{t: t, nats: n, base: base, pub: publisher.New(n.JS)}
	db, err := postgres.Open(context.Background(), dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	return h
}

// runService runs one instance of notification-api as its binary does,
// with the extra environment env, and returns its base URL and a function
// that stops it and waits for it (also called at cleanup).
func runService(t testing.TB, natsURL, dbURL string, log *slog.Logger, env map[string]string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": dbURL, "NATS_URL": natsURL, "JWT_SECRET": testkit.JWTSecret,
		"INGEST_MAX_WAIT": "5ms", "INGEST_ACK_WAIT": testAckWait.String()}
	maps.Copy(vars, env)
	common := config.ReadCommon(config.FromMap(vars), true, true)
	cfg := notificationapi.ReadConfig(config.FromMap(vars))
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: "test", Common: common, Log: log, NeedDB: true,
			Services: []app.Builder{notificationapi.New(cfg)}, Listener: ln, ShutdownGrace: 5 * time.Second,
		})
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("service stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// readyz returns the status and body of /readyz.
func readyz(base string) (int, string) {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t testing.TB, base string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := readyz(base)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %s: /readyz %d %s", timeout, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: user, OrganizationID: "org-1", Role: "USER", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	Status      int
	ContentType string
	Body        []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// do sends a request with the token (none when empty) and returns the
// response, after checking it against the OpenAPI document.
func (h *harness) do(method, path, tok, body string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	r := response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
	checkAgainstOpenAPI(h.t, method, path, r)
	return r
}

func (h *harness) publish(ev *contract.Event) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.pub.Publish(ctx, ev); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) publishRaw(subject, msgID string, data []byte) {
	h.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	if msgID != "" {
		msg.Header.Set(nats.MsgIdHdr, msgID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.nats.JS.PublishMsg(ctx, msg); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.db.Get(&n, query, args...); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func event(typ string, recipients ...string) *contract.Event {
	data, _ := structpb.NewStruct(map[string]any{"bookingId": "BK-1"})
	return &contract.Event{Id: testkit.UniqueID("ev"), Type: typ, OrganizationId: "org-1", Recipients: recipients, Data: data}
}

// notifyMessages reads every message stored on a user's NOTIFY subject.
func (h *harness) notifyMessages(user string) []contract.UserMessage {
	h.t.Helper()
	return readNotify(h.t, h.nats, user)
}

func readNotify(t testing.TB, n *testkit.NATS, user string) []contract.UserMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := n.JS.OrderedConsumer(ctx, natsx.StreamNotify, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contract.NotifySubject(user)},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []contract.UserMessage
	if info.NumPending == 0 {
		return got
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		var um contract.UserMessage
		if err := json.Unmarshal(msg.Data(), &um); err != nil {
			t.Fatalf("notify message: %v", err)
		}
		got = append(got, um)
	}
	return got
}
