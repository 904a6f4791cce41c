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
	return startWith(t, n, dbURL, testkit.Logger(), nil)
}

// startWith starts the service logging to log, with settings over the
// test defaults.
func startWith(t testing.TB, n *testkit.NATS, dbURL string, log *slog.Logger, settings map[string]string) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	common := config.ReadCommon(config.FromMap(map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": n.URL, "JWT_SECRET": testkit.JWTSecret,
	}), true, true)
	env := map[string]string{"INGEST_MAX_WAIT": "5ms", "INGEST_ACK_WAIT": testAckWait.String()}
	maps.Copy(env, settings)
	cfg := notificationapi.ReadConfig(config.FromMap(env))
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: "test", Common: common, Log: log, NeedDB: true,
			Services: []app.Builder{notificationapi.New(cfg)}, Listener: ln, ShutdownGrace: 5 * time.Second,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service stopped with: %v", err)
		}
	})
	h := &harness{t: t, nats: n, base: "http://" + ln.Addr().String(), pub: publisher.New(n.JS)}
	testkit.Eventually(t, 10*time.Second, "service ready", func() bool {
		resp, err := http.Get(h.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	db, err := postgres.Open(context.Background(), dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	return h
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
