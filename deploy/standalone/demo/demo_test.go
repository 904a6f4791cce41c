package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/deploy/standalone/demo"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/httpx"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

type fixture struct {
	e        *echo.Echo
	js       jetstream.JetStream
	verifier *auth.Verifier
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	n := testkit.StartNATS(t)
	v, err := auth.NewVerifier(testkit.JWTConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := demo.New(testkit.JWTSecret, v, n.JS, logx.Discard())
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(logx.Discard(), prometheus.NewRegistry())
	h.Register(e)
	return fixture{e: e, js: n.JS, verifier: v}
}

func (f fixture) do(t testing.TB, method, path, token string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body.String(), err)
	}
	return v
}

func TestPageAndBundleAreServedFromTheBinary(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, http.MethodGet, "/", "", nil)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("page without a same-origin policy: %q", csp)
	}
	if !strings.Contains(rec.Body.String(), `src="/demo/vendor/socket.io.min.js"`) {
		t.Fatal("the page does not load the embedded socket.io-client")
	}
	for path, want := range map[string]string{
		"/demo/vendor/socket.io.min.js": "Socket.IO v4.",
		"/demo/app.js":                  "io(location.origin, { auth: { token: state.token } })",
		"/demo/style.css":               "--accent",
	} {
		rec := f.do(t, http.MethodGet, path, "", nil)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s = %d, body without %q", path, rec.Code, want)
		}
	}
}

// The embedded bundle is the one of the locked npm package, byte for byte:
// updating socket.io-client in e2e/package.json without copying its bundle
// fails here.
func TestEmbeddedBundleMatchesLockedPackage(t *testing.T) {
	npm, err := os.ReadFile("e2e/node_modules/socket.io-client/dist/socket.io.min.js")
	if err != nil {
		t.Fatalf("socket.io-client is not installed: run scripts/test-setup-demo.sh (%v)", err)
	}
	embedded, err := os.ReadFile("static/vendor/socket.io.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(npm, embedded) {
		t.Fatal("static/vendor/socket.io.min.js differs from the locked socket.io-client: copy e2e/node_modules/socket.io-client/dist/socket.io.min.js over it")
	}
}

func TestConfigListsUsersAndInAppEventTypes(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, http.MethodGet, "/dev/config", "", nil)
	cfg := decode[struct {
		Users      []demo.User       `json:"users"`
		EventTypes []string          `json:"eventTypes"`
		Labels     map[string]string `json:"labels"`
	}](t, rec)
	if len(cfg.Users) != len(demo.Users()) || !slices.Contains(cfg.EventTypes, "PAYMENT_FAILED") || cfg.Labels["PAYMENT_FAILED"] != "Payment failed" {
		t.Fatalf("config = %+v", cfg)
	}
	for _, webhookOnly := range []string{"BOOKING_UPDATED", "RATE_QUOTED"} {
		if slices.Contains(cfg.EventTypes, webhookOnly) {
			t.Errorf("%s produces no in-app notification but is offered", webhookOnly)
		}
	}
}

func TestTokenIsVerifiableWithTheDemoUsersOrganization(t *testing.T) {
	f := newFixture(t)
	rec := f.do(t, http.MethodPost, "/dev/token", "", map[string]string{"userId": "alice"})
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /dev/token = %d %s", rec.Code, rec.Body)
	}
	tok := decode[struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
	}](t, rec)
	claims, err := f.verifier.Verify(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.UserID != "alice" || claims.OrganizationID != "org-demo-forwarder" || claims.Role != "MANAGER" {
		t.Fatalf("claims = %+v", claims)
	}
	if d := time.Until(tok.ExpiresAt); d < demo.TokenTTL-time.Minute || d > demo.TokenTTL {
		t.Fatalf("expiresAt in %s", d)
	}
	rec = f.do(t, http.MethodPost, "/dev/token", "", map[string]string{"userId": "dev-7", "organizationId": "org-x"})
	if claims, err := f.verifier.Verify(decode[struct{ Token string }](t, rec).Token); err != nil || claims.OrganizationID != "org-x" || claims.Role != "USER" {
		t.Fatalf("custom user: %+v, %v", claims, err)
	}
}

func TestTokenRefusesBadUserIDs(t *testing.T) {
	f := newFixture(t)
	for _, body := range []any{
		map[string]string{"userId": ""},
		map[string]string{"userId": "a b"},
		map[string]string{"userId": strings.Repeat("x", 65)},
		map[string]string{"userId": "alice", "organizationId": "org/../x"},
		"not an object",
	} {
		rec := f.do(t, http.MethodPost, "/dev/token", "", body)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST /dev/token %v = %d %s", body, rec.Code, rec.Body)
		}
	}
}

func TestPublishPutsTheEventOnEventsForTheCaller(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(t, http.MethodPost, "/dev/events", "", map[string]string{"type": "PAYMENT_FAILED"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", rec.Code)
	}
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: "bob", OrganizationID: "org-b", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rec := f.do(t, http.MethodPost, "/dev/events", tok, map[string]string{"type": "NO_SUCH_TYPE"})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown type") {
		t.Fatalf("unknown type: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(t, http.MethodPost, "/dev/events", tok, map[string]string{"type": "PAYMENT_FAILED"})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST /dev/events = %d %s", rec.Code, rec.Body)
	}
	pub := decode[struct {
		ID       string `json:"id"`
		Stream   string `json:"stream"`
		Sequence uint64 `json:"sequence"`
	}](t, rec)
	if pub.Stream != natsx.StreamEvents || pub.ID == "" {
		t.Fatalf("published = %+v", pub)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := f.js.Stream(ctx, natsx.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, pub.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := contract.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetId() != pub.ID || ev.GetType() != "PAYMENT_FAILED" || ev.GetOrganizationId() != "org-b" ||
		!slices.Equal(ev.GetRecipients(), []string{"bob"}) || ev.GetData().GetFields()["invoiceId"] == nil {
		t.Fatalf("event = %v", ev)
	}
}
