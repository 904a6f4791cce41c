package realtimegateway_test

// Rules of the Engine.IO v4 and Socket.IO v5 protocols that the gateway
// implements, each checked with a hand-driven client: what the reference
// server (deploy/reference-node) does is what the gateway must do.

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

// slowHeartbeat is a configuration whose heartbeat never answers a
// long-poll within a test: a GET answered at all was answered for a reason.
func slowHeartbeat() realtimegateway.Config {
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = 30*time.Second, 20*time.Second
	return cfg
}

// pollSession is a hand-driven Engine.IO long-polling session.
type pollSession struct {
	t    testing.TB
	g    *gateway
	sid  string
	http *http.Client
}

// openPolling runs the polling handshake and returns the session and its
// handshake.
func openPolling(t testing.TB, g *gateway) (*pollSession, map[string]any) {
	t.Helper()
	p := &pollSession{t: t, g: g, http: &http.Client{Timeout: 10 * time.Second}}
	status, body := p.do(http.MethodGet, g.URL+"/socket.io/?EIO=4&transport=polling", "")
	if status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake: %d %q", status, body)
	}
	var hs map[string]any
	if err := json.Unmarshal([]byte(body[1:]), &hs); err != nil {
		t.Fatal(err)
	}
	p.sid, _ = hs["sid"].(string)
	return p, hs
}

func (p *pollSession) url() string {
	return p.g.URL + "/socket.io/?EIO=4&transport=polling&sid=" + p.sid
}

func (p *pollSession) do(method, url, body string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := p.http.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(p.t, resp.Body)
}

func (p *pollSession) get() (int, string) { p.t.Helper(); return p.do(http.MethodGet, p.url(), "") }

func (p *pollSession) post(body string) {
	p.t.Helper()
	if status, answer := p.do(http.MethodPost, p.url(), body); status != http.StatusOK || answer != "ok" {
		p.t.Fatalf("POST %q: %d %q", body, status, answer)
	}
}

// getAsync starts a GET that waits; its answer comes on the channel.
func (p *pollSession) getAsync() <-chan string {
	answer := make(chan string, 1)
	go func() {
		resp, err := p.http.Get(p.url())
		if err != nil {
			answer <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	return answer
}

// connect authenticates the session as user and reads the CONNECT answer.
func (p *pollSession) connect(user string) {
	p.t.Helper()
	p.post(`40{"token":"` + token(p.t, user, time.Hour) + `"}`)
	if status, body := p.get(); status != http.StatusOK || !strings.HasPrefix(body, `40{"sid":`) {
		p.t.Fatalf("CONNECT answer: %d %q", status, body)
	}
}

// probe opens the upgrade WebSocket of the session and runs the probe.
func (p *pollSession) probe() *websocket.Conn {
	p.t.Helper()
	ws, _, err := dialWS(p.t, wsURL(p.g, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid), nil, false)
	if err != nil {
		p.t.Fatalf("upgrade WebSocket: %v", err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		p.t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != "3probe" {
		p.t.Fatalf("probe answer %q, %v", b, err)
	}
	return ws
}

// wait returns what a GET started with getAsync was answered.
func wait(t testing.TB, what string, answer <-chan string) string {
	t.Helper()
	select {
	case s := <-answer:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer", what)
		return ""
	}
}

// expectClosed reads ws until the server closes it (a close frame or the
// end of the stream), failing if it stays open.
func expectClosed(t testing.TB, ws *websocket.Conn, what string) {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue // what was queued before the close
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: still open: %v", what, err)
		}
		return
	}
}

// Engine.IO v4, upgrade: once the server has answered the probe, the
// client pauses polling, which waits for its pending GET. The server
// answers that GET at once with a noop, and any GET that arrives while the
// probe runs too, so that the client does not wait for the next packet.
// After the client's upgrade packet the session is on the WebSocket.
func TestUpgradeAnswersLongPollsAtOnceDuringTheProbe(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, slowHeartbeat())
	user := testkit.UniqueID("user")
	p, _ := openPolling(t, g)
	p.connect(user)

	waiting := p.getAsync()
	ws := p.probe()
	if got := wait(t, "GET waiting when the probe was answered", waiting); got != "6" {
		t.Fatalf("GET waiting during the probe answered %q, want a noop", got)
	}
	if status, got := p.get(); status != http.StatusOK || got != "6" {
		t.Fatalf("GET during the probe: %d %q, want a noop at once", status, got)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	r := &rawSIO{t: t, ws: ws}
	seq := publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "after-upgrade"})
	if _, _, offset := parseEvent(t, r.readSkippingPings()); offset != jsonOffset(seq) {
		t.Fatalf("offset %s, want %d", offset, seq)
	}
	if status, _ := p.get(); status != http.StatusBadRequest {
		t.Fatalf("GET on an upgraded session: %d, want 400", status)
	}
}

func jsonOffset(seq uint64) string {
	b, _ := json.Marshal(seq)
	return string(b)
}

// Engine.IO v4: a client that closes a polling session with the close
// packet gets its pending GET answered with a noop.
func TestClientCloseAnswersThePendingPollWithNoop(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, slowHeartbeat())
	p, _ := openPolling(t, g)
	p.connect(testkit.UniqueID("user"))
	waiting := p.getAsync()
	// The GET must be waiting before the close: a GET after it finds no
	// session. A POST of a noop leaves it waiting.
	testkit.Eventually(t, 5*time.Second, "the GET to wait", func() bool {
		return metric(t, g, `gateway_connections{transport="polling"}`) == "1"
	})
	p.post("6")
	p.post("1")
	if got := wait(t, "pending GET", waiting); got != "6" {
		t.Fatalf("pending GET answered %q after the client's close, want a noop", got)
	}
	if status, _ := p.get(); status != http.StatusBadRequest {
		t.Fatalf("GET after close: %d, want 400 (unknown session)", status)
	}
}

// Engine.IO v4: a WebSocket for a session that is already upgrading or
// upgraded is accepted and then closed; the session goes on.
func TestSecondWebSocketForASessionIsAcceptedThenClosed(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, slowHeartbeat())
	user := testkit.UniqueID("user")
	p, _ := openPolling(t, g)
	p.connect(user)
	ws := p.probe()
	during, resp, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid), nil, false)
	if err != nil {
		t.Fatalf("second WebSocket during the probe: %v (%v)", err, resp)
	}
	expectClosed(t, during, "second WebSocket during the probe")
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	after, resp, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket&sid="+p.sid), nil, false)
	if err != nil {
		t.Fatalf("second WebSocket after the upgrade: %v (%v)", err, resp)
	}
	expectClosed(t, after, "second WebSocket after the upgrade")
	r := &rawSIO{t: t, ws: ws}
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "still-here"})
	if name, _, _ := parseEvent(t, r.readSkippingPings()); name != contract.UserEventNotification {
		t.Fatalf("event %q", name)
	}
	if _, resp, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket&sid=unknown"), nil, false); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("WebSocket for an unknown session: %v %v, want 400", err, resp)
	}
}

// Socket.IO v5, as the reference server applies it: a CONNECT to a
// namespace the client is already connected to, a packet other than
// CONNECT for a namespace it has no socket on, and a binary frame that no
// packet announced close the session; a binary event's announced
// attachments are taken (and dropped: the gateway takes no binary events).
func TestSocketIOPacketsOutOfPlaceCloseTheSession(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, slowHeartbeat())
	connected := func() *rawSIO {
		r := dialSIO(t, g, false)
		parseConnect(t, r.connect(map[string]any{"token": token(t, testkit.UniqueID("user"), time.Hour)}))
		return r
	}
	cases := map[string]func() *rawSIO{
		"second CONNECT": func() *rawSIO {
			r := connected()
			r.send(`40{"token":"` + token(t, "someone", time.Hour) + `"}`)
			return r
		},
		"event before CONNECT": func() *rawSIO {
			r := dialSIO(t, g, false)
			r.send(`42["reauth",{}]`)
			return r
		},
		"event on another namespace": func() *rawSIO {
			r := connected()
			r.send(`42/admin,["x"]`)
			return r
		},
		"CONNECT_ERROR from the client": func() *rawSIO {
			r := connected()
			r.send(`44{"message":"x"}`)
			return r
		},
		"binary frame nobody announced": func() *rawSIO {
			r := connected()
			if err := r.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			return r
		},
		"more binary frames than announced": func() *rawSIO {
			r := connected()
			r.send(`451-["upload",{"_placeholder":true,"num":0}]`)
			for range 2 {
				if err := r.ws.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
					t.Fatal(err)
				}
			}
			return r
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) { expectClosed(t, run().ws, name) })
	}

	t.Run("announced attachment", func(t *testing.T) {
		r := connected()
		r.send(`451-["upload",{"_placeholder":true,"num":0}]`)
		if err := r.ws.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
			t.Fatal(err)
		}
		r.send(`42["reauth",{"token":"bad"}]`)
		r.send(`421["reauth",{"token":"bad"}]`)
		if ack := r.readSkippingPings(); !strings.HasPrefix(ack, `431[{"ok":false`) {
			t.Fatalf("after the attachment: %q, want the reauth's ack", ack)
		}
	})
	t.Run("CONNECT to another namespace", func(t *testing.T) {
		r := connected()
		r.send(`40/admin,{}`)
		if got := r.readSkippingPings(); !strings.HasPrefix(got, `44/admin,{"message":"Invalid namespace"`) {
			t.Fatalf("CONNECT to /admin: %q", got)
		}
		r.send(`421["reauth",{"token":"bad"}]`)
		if ack := r.readSkippingPings(); !strings.HasPrefix(ack, `431[{"ok":false`) {
			t.Fatalf("after the refused namespace: %q, want the session open", ack)
		}
	})
}

// The handshake announces the largest message the client may send: the
// configured maximum on a WebSocket (1,000,000 bytes by default, as the
// reference server), within the HTTP server's body limit when polling. A
// WebSocket message of that size is taken once the client has
// authenticated; before, 16 KiB is the most (a CONNECT with its token).
func TestMaxPayloadAnnouncedAndHonoured(t *testing.T) {
	cfg := realtimegateway.ReadConfig(config.FromMap(nil))
	if cfg.MaxPayload != 1_000_000 {
		t.Fatalf("default GATEWAY_MAX_PAYLOAD %d, want 1e6", cfg.MaxPayload)
	}
	for value, ok := range map[string]bool{"1048576": true, "1048577": false, "1023": false} {
		env := config.FromMap(map[string]string{"GATEWAY_MAX_PAYLOAD": value})
		realtimegateway.ReadConfig(env)
		if (env.Err() == nil) != ok {
			t.Errorf("GATEWAY_MAX_PAYLOAD=%s: %v", value, env.Err())
		}
	}
	n := testkit.StartNATS(t)
	cfg = slowHeartbeat()
	cfg.MaxPayload = 1 << 20
	g := startGateway(t, n, cfg)
	_, hs := openPolling(t, g)
	if hs["maxPayload"] != float64(64<<10) {
		t.Fatalf("polling handshake maxPayload %v, want the HTTP body limit", hs["maxPayload"])
	}
	ws, _, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawSIO{t: t, ws: ws}
	open := r.read()
	if !strings.Contains(open, `"maxPayload":1048576`) {
		t.Fatalf("WebSocket handshake %q, want maxPayload 1048576", open)
	}
	unauth := dialSIO(t, g, false)
	unauth.send(`40{"token":"` + strings.Repeat("a", 17<<10) + `"}`)
	if _, err := unauth.next(5 * time.Second); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("17 KiB before authenticating: %v, want a close 1009", err)
	}
	parseConnect(t, r.connect(map[string]any{"token": token(t, testkit.UniqueID("user"), time.Hour)}))
	r.send(`421["reauth",{"token":"` + strings.Repeat("a", 1<<20-64) + `"}]`)
	if ack := r.readSkippingPings(); !strings.HasPrefix(ack, `431[{"ok":false`) {
		t.Fatalf("a message of nearly 1 MiB: %q", ack)
	}
}

// /ws heartbeats are WebSocket ping control frames: a client whose library
// answers them (as browsers and gorilla do) stays, one that does not is
// closed after pingInterval + pingTimeout.
func TestPlainHeartbeatsArePingFrames(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	dial := func(answer bool) (*websocket.Conn, <-chan int) {
		h := http.Header{"Authorization": {"Bearer " + token(t, testkit.UniqueID("user"), time.Hour)}}
		ws, _, err := dialWS(t, wsURL(g, "/ws"), h, false)
		if err != nil {
			t.Fatal(err)
		}
		pings := make(chan int, 100)
		count := 0
		ws.SetPingHandler(func(data string) error {
			count++
			pings <- count
			if !answer {
				return nil
			}
			return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					close(pings)
					return
				}
			}
		}()
		return ws, pings
	}
	_, alive := dial(true)
	_, silent := dial(false)
	next := func(pings <-chan int) (int, bool) {
		select {
		case n, ok := <-pings:
			return n, ok
		case <-time.After(10 * time.Second):
			t.Fatal("no ping and no close within 10 s")
			return 0, false
		}
	}
	for range 4 { // four answered pings outlast an interval and a timeout
		if _, ok := next(alive); !ok {
			t.Fatal("the client that answers pings was closed")
		}
	}
	got := 0
	for {
		if _, ok := next(silent); !ok {
			break
		}
		got++
	}
	if got != 1 {
		t.Fatalf("the silent client got %d pings before it was closed, want 1", got)
	}
}
