package notifyd_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
)

// pipeline is one user of a fresh organization with a webhook on a real
// HTTP receiver and an open /ws connection, on a running notifyd (started
// with WEBHOOK_ALLOW_PRIVATE_TARGETS, since the receiver is on loopback):
// an event for the user goes through all three services.
type pipeline struct {
	t         *testing.T
	base      string
	org, user string
	js        jetstream.JetStream
	ws        *websocket.Conn
	hook      chan http.Header
}

func startPipeline(t *testing.T, base, natsURL string) *pipeline {
	t.Helper()
	p := &pipeline{t: t, base: base, org: testkit.UniqueID("org"), user: testkit.UniqueID("user"), hook: make(chan http.Header, 4)}
	integrator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.hook <- r.Header.Clone()
	}))
	t.Cleanup(integrator.Close)

	body, _ := json.Marshal(map[string]any{"url": integrator.URL + "/hook", "events": []string{"BOOKING_CREATED"}})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/webhooks", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token("ADMIN"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create webhook: %d", resp.StatusCode)
	}

	p.ws, _, err = websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws?token="+p.token("USER"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ws.Close() })
	if f := p.frame(); f["type"] != "welcome" {
		t.Fatalf("first /ws frame: %v", f)
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if p.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pipeline) token(role string) string {
	p.t.Helper()
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: p.user, OrganizationID: p.org, Role: role, TTL: time.Hour})
	if err != nil {
		p.t.Fatal(err)
	}
	return tok
}

// event is a new event for the user, with a notification and a webhook.
func (p *pipeline) event() *contract.Event {
	return &contract.Event{Id: testkit.UniqueID("ev"), Type: "BOOKING_CREATED", OrganizationId: p.org, Recipients: []string{p.user}}
}

func (p *pipeline) frame() map[string]any {
	p.t.Helper()
	_ = p.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	var f map[string]any
	if err := p.ws.ReadJSON(&f); err != nil {
		p.t.Fatalf("read /ws: %v", err)
	}
	return f
}

// awaitDelivery waits for the event on /ws and at the webhook receiver,
// and returns the webhook request's headers.
func (p *pipeline) awaitDelivery() http.Header {
	p.t.Helper()
	if f := p.frame(); f["type"] != "message" {
		p.t.Fatalf("/ws frame: %v", f)
	}
	select {
	case h := <-p.hook:
		return h
	case <-time.After(30 * time.Second):
		p.t.Fatal("no webhook request within 30s")
		return nil
	}
}
