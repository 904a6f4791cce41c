package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xpeditis/notify/services/realtime-gateway/internal/hub"
)

// TestDeliverWritesWholeFramesInOrder: messages are written from the
// caller's goroutine while the socket takes them whole; a frame the socket
// takes only part of is finished by the writer before anything else, so
// the client reads every message whole and in order. Linux takes a write
// of up to 64 KiB whole or not at all: with a client that reads slowly
// (4 KiB receive buffer) and messages of 100 KiB, the first is cut short.
func TestDeliverWritesWholeFramesInOrder(t *testing.T) {
	accepted := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- ws
	}))
	defer ts.Close()
	dialer := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(4096) // so that the gateway's socket fills
		}
		return c, err
	}}
	client, _, err := dialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ws := <-accepted
	defer ws.Close()
	if err := ws.NetConn().(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}

	s := New(Options{SendQueue: 1024, SendBuffer: 64 << 20, WriteTimeout: time.Minute},
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, nil, nil, prometheus.NewRegistry())
	c := &conn{srv: s, id: "test", state: stateJoined, tr: &engineWS{wsConn{ws: ws}}}
	const total = 4
	var want []string
	for i := range total {
		body := fmt.Sprintf(`{"event":"notification","data":{"id":%d,"pad":"%s"}}`, i, strings.Repeat("x", 100<<10+i*331))
		m, err := hub.NewMessage(uint64(i+1), uint64(i), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, string(m.SocketIO))
		c.Deliver(m) // the client reads nothing yet
	}
	for i, w := range want {
		mt, got, err := client.ReadMessage()
		if err != nil || mt != websocket.TextMessage || string(got) != w {
			t.Fatalf("message %d: type %d, %d bytes (want %d), %v", i, mt, len(got), len(w), err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateJoined || c.lastSeq != total {
		t.Fatalf("connection in state %d at %d", c.state, c.lastSeq)
	}
}
