package realtimegateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsURL turns the gateway's http URL into a ws URL for path.
func wsURL(g *gateway, path string) string { return "ws" + strings.TrimPrefix(g.URL, "http") + path }

// dialWS opens a WebSocket; a small receive buffer makes a client that
// stops reading look slow quickly.
func dialWS(t testing.TB, url string, h http.Header, smallBuffer bool) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if smallBuffer {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				_ = c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		}
	}
	ws, resp, err := d.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// rawSIO is a hand-driven Socket.IO client over WebSocket, for what the
// real client cannot be made to do (stop answering pings, stop reading).
type rawSIO struct {
	t  testing.TB
	ws *websocket.Conn
}

// dialSIO opens an Engine.IO WebSocket session and reads its open packet.
func dialSIO(t testing.TB, g *gateway, smallBuffer bool) *rawSIO {
	t.Helper()
	ws, _, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket"), nil, smallBuffer)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := &rawSIO{t: t, ws: ws}
	if open := r.read(); !strings.HasPrefix(open, `0{"sid":`) {
		t.Fatalf("open packet %q", open)
	}
	return r
}

func (r *rawSIO) send(s string) {
	r.t.Helper()
	if err := r.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		r.t.Fatalf("send %q: %v", s, err)
	}
}

// read returns the next packet, failing the test after 5s.
func (r *rawSIO) read() string {
	r.t.Helper()
	s, err := r.next(5 * time.Second)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return s
}

func (r *rawSIO) next(timeout time.Duration) (string, error) {
	_ = r.ws.SetReadDeadline(time.Now().Add(timeout))
	_, b, err := r.ws.ReadMessage()
	return string(b), err
}

// readSkippingPings answers pings and returns the next other packet.
func (r *rawSIO) readSkippingPings() string {
	r.t.Helper()
	for {
		s := r.read()
		if s == "2" {
			r.send("3")
			continue
		}
		return s
	}
}

// connect sends CONNECT with auth and returns the answer packet.
func (r *rawSIO) connect(auth map[string]any) string {
	r.t.Helper()
	b, _ := json.Marshal(auth)
	r.send("40" + string(b))
	return r.readSkippingPings()
}

// connectReply is the data of a CONNECT answer.
type connectReply struct {
	SID string `json:"sid"`
	PID string `json:"pid"`
}

func parseConnect(t testing.TB, packet string) connectReply {
	t.Helper()
	if !strings.HasPrefix(packet, "40{") {
		t.Fatalf("not a CONNECT answer: %q", packet)
	}
	var c connectReply
	if err := json.Unmarshal([]byte(packet[2:]), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// event decodes 42["name",data,"offset"].
func parseEvent(t testing.TB, packet string) (name string, data json.RawMessage, offset string) {
	t.Helper()
	if !strings.HasPrefix(packet, "42[") {
		t.Fatalf("not an event: %q", packet)
	}
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(packet[2:]), &args); err != nil || len(args) != 3 {
		t.Fatalf("event %q: %v", packet, err)
	}
	_ = json.Unmarshal(args[0], &name)
	_ = json.Unmarshal(args[2], &offset)
	return name, args[1], offset
}

// metric returns the value of a series on the gateway's /metrics page.
func metric(t testing.TB, g *gateway, series string) string {
	t.Helper()
	resp, err := http.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v
		}
	}
	return ""
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
