package realtimegateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
)

// unauthBound is the most a connection that has not authenticated may have
// queued (gateway.unauthSendBuffer), a bucket of
// gateway_send_queue_peak_bytes.
const unauthBound = "16384"

// metricIs waits until series reads want.
func metricIs(t testing.TB, g *gateway, series, want string) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, "the metric "+series, func() error {
		if got := metric(t, g, series); got != want {
			return fmt.Errorf("%s = %q, want %q", series, got, want)
		}
		return nil
	})
}

// dialFrom opens a WebSocket from a given loopback source address, with a
// small receive buffer when slow is set (a client that reads slowly).
func dialFrom(t testing.TB, url, source string, slow bool) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		c, err := nd.DialContext(ctx, network, addr)
		if err == nil && slow {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	ws, resp, err := d.Dial(url, nil)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// Clients that never authenticate, never read, and flood what the server
// answers (pings; frames answered with an error) are closed, and what the
// server queued for them stays within the unauthenticated bound: before,
// the replies were queued without limit (a heap of hundreds of MiB).
func TestFloodingSlowReadersAreClosedWithinTheirBound(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout, cfg.ConnectTimeout = 10*time.Second, 10*time.Second, time.Minute
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Small kernel buffers on both sides: the server's writes block after a
	// few KiB instead of after what autotuning allows, however fast the
	// server reads.
	g := startGatewayOn(t, n, cfg, config.HTTP{}, smallSendBuffers{ln})
	sio := wsURL(g, "/socket.io/?EIO=4&transport=websocket")
	for _, flood := range []struct {
		name, url, reason string
		send              func(ws *websocket.Conn) error
	}{
		{"socket.io pings", sio, "ping_flood", text("2")},
		{"socket.io connects to a wrong namespace", sio, "slow_client", text("40/nowhere,")},
		{"ws ping frames", wsURL(g, "/ws"), "ping_flood", text(`{"type":"ping"}`)},
		{"ws bad frames", wsURL(g, "/ws"), "slow_client", text("x")},
		{"ws WebSocket pings", wsURL(g, "/ws"), "ping_flood", func(ws *websocket.Conn) error {
			return ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
		}},
	} {
		t.Run(flood.name, func(t *testing.T) {
			before := metric(t, g, `gateway_disconnects_total{reason="`+flood.reason+`"}`)
			closedBefore := metric(t, g, "gateway_send_queue_peak_bytes_count")
			ws, _, err := dialFrom(t, flood.url, "127.0.0.1", true)
			if err != nil {
				t.Fatal(err)
			}
			sent := 0
			for ; sent < 1_000_000; sent++ {
				if err := flood.send(ws); err != nil {
					break // the server cut the connection
				}
			}
			metricIs(t, g, `gateway_disconnects_total{reason="`+flood.reason+`"}`, plusOne(t, before))
			count := plusOne(t, closedBefore)
			metricIs(t, g, "gateway_send_queue_peak_bytes_count", count)
			if within := metric(t, g, `gateway_send_queue_peak_bytes_bucket{le="`+unauthBound+`"}`); within != count {
				t.Errorf("a flooded connection queued more than %s bytes (%s of %s within)", unauthBound, within, count)
			}
			t.Logf("closed after %d frames sent", sent)
		})
	}
}

func text(s string) func(ws *websocket.Conn) error {
	return func(ws *websocket.Conn) error {
		_ = ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
		return ws.WriteMessage(websocket.TextMessage, []byte(s))
	}
}

func plusOne(t testing.TB, v string) string {
	t.Helper()
	if v == "" {
		return "1"
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("metric value %q", v)
	}
	return strconv.Itoa(n + 1)
}

// A client that reads everything but pings more often than the protocol
// needs (more than 8 times within a ping interval) is closed; up to 8 are
// answered.
func TestPingingTooFastClosesTheConnection(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = 10*time.Second, 10*time.Second
	g := startGateway(t, n, cfg)
	user := testkit.UniqueID("user")

	c := dialSIO(t, g, false)
	parseConnect(t, c.connect(map[string]any{"token": token(t, user, time.Hour)}))
	for i := range 8 {
		c.send("2")
		if p := c.read(); p != "3" {
			t.Fatalf("ping %d answered %q", i+1, p)
		}
	}
	c.send("2")
	if p, err := c.next(5 * time.Second); err == nil {
		t.Fatalf("the ninth ping was answered %q instead of closing the connection", p)
	}

	ws, _, err := dialWS(t, wsURL(g, "/ws?token="+token(t, user, time.Hour)), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var welcome map[string]any
	if err := ws.ReadJSON(&welcome); err != nil || welcome["type"] != "welcome" {
		t.Fatalf("welcome: %v %v", welcome, err)
	}
	pongs := 0
	ws.SetPongHandler(func(string) error { pongs++; return nil })
	for range 9 {
		if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
			break
		}
	}
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("the /ws connection stayed open")
	}
	if pongs > 8 {
		t.Errorf("%d pings answered", pongs)
	}
	metricIs(t, g, `gateway_disconnects_total{reason="ping_flood"}`, "2")
}

// Behind a reverse proxy named in GATEWAY_TRUSTED_PROXIES, the
// per-address limit counts each client by the address the proxy appended to
// X-Forwarded-For, not the proxy's own: without it, one busy proxy would
// share a single client's allowance among all its clients.
func TestPendingLimitPerClientBehindATrustedProxy(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout, cfg.ConnectTimeout = 10*time.Second, 10*time.Second, time.Minute
	cfg.MaxPendingPerIP = 1
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	g := startGateway(t, n, cfg)
	target, err := url.Parse(g.URL)
	if err != nil {
		t.Fatal(err)
	}
	// httputil.ReverseProxy forwards WebSocket upgrades and appends the
	// client's address to X-Forwarded-For, as HAProxy's "option forwardfor"
	// and ingress-nginx do.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httptest.Server{Listener: ln, Config: &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}}
	proxy.Start()
	t.Cleanup(proxy.Close)
	sio := "ws://" + ln.Addr().String() + "/socket.io/?EIO=4&transport=websocket"

	for _, client := range []string{"127.0.0.2", "127.0.0.3"} {
		if _, _, err := dialFrom(t, sio, client, false); err != nil {
			t.Fatalf("the first pending connection of %s, through the proxy, was refused: %v", client, err)
		}
	}
	_, resp, err := dialFrom(t, sio, "127.0.0.2", false)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second pending connection of one client through the proxy: %v, want a 429", err)
	}
	metricIs(t, g, `gateway_pending_refused_total{limit="per_address"}`, "1")
	metricIs(t, g, "gateway_pending_connections", "2")
}

// Connections that have not authenticated are limited per client address
// (GATEWAY_MAX_PENDING_PER_IP) and in total (GATEWAY_MAX_PENDING); a slot
// frees up when its connection authenticates or closes.
func TestPendingConnectionLimits(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout, cfg.ConnectTimeout = 10*time.Second, 10*time.Second, time.Minute
	cfg.MaxPendingPerIP, cfg.MaxPending = 3, 5
	g := startGateway(t, n, cfg)
	sio := wsURL(g, "/socket.io/?EIO=4&transport=websocket")
	open := func(source string) (*websocket.Conn, error) {
		t.Helper()
		ws, resp, err := dialFrom(t, sio, source, false)
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("refused without a 429: %v", err)
			}
			return nil, err
		}
		return ws, nil
	}
	first := make([]*websocket.Conn, 0, 3)
	for range 3 {
		ws, err := open("127.0.0.1")
		if err != nil {
			t.Fatalf("pending connection %d refused: %v", len(first)+1, err)
		}
		first = append(first, ws)
	}
	if _, err := open("127.0.0.1"); err == nil {
		t.Fatal("a fourth pending connection from one address was accepted")
	}
	resp, err := http.Get(g.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a polling handshake over the limit answered %d", resp.StatusCode)
	}
	if _, resp, err := dialFrom(t, wsURL(g, "/ws"), "127.0.0.1", false); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a /ws connection over the limit: %v", err)
	}
	metricIs(t, g, `gateway_pending_refused_total{limit="per_address"}`, "3")

	var second []*websocket.Conn
	for range 2 {
		ws, err := open("127.0.0.2")
		if err != nil {
			t.Fatalf("another address was refused: %v", err)
		}
		second = append(second, ws)
	}
	if _, err := open("127.0.0.3"); err == nil {
		t.Fatal("a sixth pending connection was accepted")
	}
	metricIs(t, g, `gateway_pending_refused_total{limit="total"}`, "1")
	metricIs(t, g, "gateway_pending_connections", "5")

	// Authenticating frees the slot.
	r := &rawSIO{t: t, ws: first[0]}
	if open := r.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	parseConnect(t, r.connect(map[string]any{"token": token(t, testkit.UniqueID("user"), time.Hour)}))
	if _, err := open("127.0.0.1"); err != nil {
		t.Fatalf("refused after a pending connection authenticated: %v", err)
	}
	// Closing frees it too.
	second[0].Close()
	testkit.WaitFor(t, 5*time.Second, "a closed pending connection to free its slot", func() error {
		if v := metric(t, g, "gateway_pending_connections"); v != "4" {
			return fmt.Errorf("pending connections %s, want 4", v)
		}
		return nil
	})
	if _, err := open("127.0.0.2"); err != nil {
		t.Fatalf("refused after a pending connection closed: %v", err)
	}
}

// A request that announces a body and never sends it is answered 408 within
// the body deadline and its connection closed: /healthz, and a Socket.IO
// polling POST. Before, both were held for as long as the client liked.
func TestAStalledBodyIsCutWith408(t *testing.T) {
	n := testkit.StartNATS(t)
	limits := config.HTTP{BodyTimeout: 300 * time.Millisecond, BodyMinRate: 1 << 20}
	g := startGatewayHTTP(t, n, testConfig(), limits)
	resp, err := http.Get(g.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	open := readAll(t, resp.Body)
	resp.Body.Close()
	sid := strings.SplitN(strings.TrimPrefix(open, `0{"sid":"`), `"`, 2)[0]
	addr := strings.TrimPrefix(g.URL, "http://")
	for _, head := range []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100",
		"POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if _, err := io.WriteString(c, head+"\r\n\r\n40"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", head, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if took := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || took > 2*time.Second {
			t.Errorf("%s: answered %d after %s, want 408 within about %s", head, resp.StatusCode, took, limits.BodyTimeout)
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: connection still open: %v", head, err)
		}
	}
}

// The HTTP server's write and idle timeouts are for REST: a long poll is
// held for a ping interval and a WebSocket lives on, both well past them.
func TestLongLivedConnectionsOutliveTheHTTPTimeouts(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = time.Second, time.Second
	g := startGatewayHTTP(t, n, cfg, config.HTTP{WriteTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	user := testkit.UniqueID("user")

	resp, err := http.Get(g.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	open := readAll(t, resp.Body)
	resp.Body.Close()
	sid := strings.SplitN(strings.TrimPrefix(open, `0{"sid":"`), `"`, 2)[0]
	start := time.Now()
	resp, err = http.Get(g.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	if err != nil {
		t.Fatalf("long poll cut: %v", err)
	}
	if body := readAll(t, resp.Body); body != "2" || time.Since(start) < 500*time.Millisecond {
		t.Errorf("long poll answered %q after %s, want the ping after about %s", body, time.Since(start), cfg.PingInterval)
	}
	resp.Body.Close()

	ws := dialSIO(t, g, false)
	parseConnect(t, ws.connect(map[string]any{"token": token(t, user, time.Hour)}))
	deadline := time.Now().Add(2500 * time.Millisecond)
	pings := 0
	for time.Now().Before(deadline) {
		p, err := ws.next(3 * time.Second)
		if err != nil {
			t.Fatalf("the WebSocket was cut after %d pings: %v", pings, err)
		}
		if p == "2" {
			pings++
			ws.send("3")
		}
	}
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "late"})
	if name, _, _ := parseEvent(t, ws.readSkippingPings()); name != "notification" {
		t.Fatalf("got %q", name)
	}
}

// smallSendBuffers gives each accepted connection a 4 KiB send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		_ = c.(*net.TCPConn).SetWriteBuffer(4096)
	}
	return c, err
}
