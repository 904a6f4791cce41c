package realtimegateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// A client that stops answering pings is closed after pingInterval +
// pingTimeout; one that answers stays.
func TestHeartbeatTimeout(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	g := startGateway(t, n, cfg)
	user := testkit.UniqueID("user")

	silent := dialSIO(t, g, false)
	parseConnect(t, silent.connect(map[string]any{"token": token(t, user, time.Hour)}))
	alive := dialSIO(t, g, false)
	parseConnect(t, alive.connect(map[string]any{"token": token(t, user, time.Hour)}))

	// The alive client answers pings on its own goroutine meanwhile.
	var mu sync.Mutex
	pings, events := 0, 0
	go func() {
		for {
			p, err := alive.next(10 * time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			switch {
			case p == "2":
				pings++
				_ = alive.ws.WriteMessage(websocket.TextMessage, []byte("3"))
			case strings.HasPrefix(p, `42["notification"`):
				events++
			}
			mu.Unlock()
		}
	}()

	start := time.Now()
	if p := silent.read(); p != "2" {
		t.Fatalf("expected a ping, got %q", p)
	}
	if _, err := silent.next(5 * time.Second); err == nil {
		t.Fatal("the silent client got another packet instead of being closed")
	}
	if took := time.Since(start); took < cfg.PingInterval || took > cfg.PingInterval+cfg.PingTimeout+time.Second {
		t.Errorf("closed after %s, want about %s", took, cfg.PingInterval+cfg.PingTimeout)
	}
	// Four answered pings take longer than one interval plus the timeout.
	testkit.Eventually(t, 10*time.Second, "four pings", func() bool { mu.Lock(); defer mu.Unlock(); return pings >= 4 })
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "still-here"})
	testkit.Eventually(t, 5*time.Second, "the alive client to get the message", func() bool { mu.Lock(); defer mu.Unlock(); return events == 1 })
	testkit.Eventually(t, 5*time.Second, "the timeout to be counted", func() bool {
		return metric(t, g, `gateway_disconnects_total{reason="ping_timeout"}`) == "1"
	})
}

// A client that does not read is disconnected when its queue is full,
// memory stays bounded, and its session recovers on reconnect.
func TestSlowClientDisconnectAndRecovery(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.SendQueue = 8
	cfg.PingInterval, cfg.PingTimeout = 10*time.Second, 10*time.Second
	g := startGateway(t, n, cfg)
	user := testkit.UniqueID("user")

	slow := dialSIO(t, g, true)
	c := parseConnect(t, slow.connect(map[string]any{"token": token(t, user, time.Hour)}))
	big := strings.Repeat("x", 100<<10)
	const total = 120
	for i := range total {
		publish(t, n, user, contract.UserEventNotification, map[string]any{"id": fmt.Sprint(i), "pad": big})
	}
	testkit.Eventually(t, 20*time.Second, "the slow client to be dropped", func() bool {
		return metric(t, g, "gateway_slow_client_disconnects_total") == "1"
	})
	if v := metric(t, g, `gateway_disconnects_total{reason="slow_client"}`); v != "1" {
		t.Errorf("slow_client disconnects = %q", v)
	}

	// The same tab comes back with its pid (it had received nothing, so no
	// offset) and gets everything, once, in order.
	again := dialSIO(t, g, false)
	r := parseConnect(t, again.connect(map[string]any{"token": token(t, user, time.Hour), "pid": c.PID}))
	if r.PID != c.PID || r.SID != c.SID {
		t.Fatalf("reconnect answered %+v, want the recovered session %+v", r, c)
	}
	for i := range total {
		_, data, _ := parseEvent(t, again.readSkippingPings())
		var d struct{ ID string }
		_ = json.Unmarshal(data, &d)
		if d.ID != fmt.Sprint(i) {
			t.Fatalf("message %d: got id %q", i, d.ID)
		}
	}
}

// The per-user limit refuses one connection too many with its code.
func TestPerUserConnectionLimit(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.MaxConnsPerUser = 2
	g := startGateway(t, n, cfg)
	user := testkit.UniqueID("user")
	var clients []*rawSIO
	for range 2 {
		c := dialSIO(t, g, false)
		parseConnect(t, c.connect(map[string]any{"token": token(t, user, time.Hour)}))
		clients = append(clients, c)
	}
	third := dialSIO(t, g, false)
	if p := third.connect(map[string]any{"token": token(t, user, time.Hour)}); !strings.HasPrefix(p, "44{") || !strings.Contains(p, "too_many_connections") {
		t.Fatalf("third connection: %q", p)
	}
	other := dialSIO(t, g, false)
	parseConnect(t, other.connect(map[string]any{"token": token(t, testkit.UniqueID("other"), time.Hour)}))

	clients[0].ws.Close()
	testkit.Eventually(t, 5*time.Second, "a slot to free up", func() bool {
		c := dialSIO(t, g, false)
		defer c.ws.Close()
		return strings.HasPrefix(c.connect(map[string]any{"token": token(t, user, time.Hour)}), "40{")
	})
}

// A token that expires ends the connection with a Socket.IO DISCONNECT
// unless the client sent a fresher one with "reauth".
func TestTokenExpiryAndReauth(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = 10*time.Second, 5*time.Second // the test reads one client at a time
	g := startGateway(t, n, cfg)
	user := testkit.UniqueID("user")

	// exp has second precision and is taken when the token is minted: a
	// bound read before minting is never later than the real expiry.
	expiresAt := time.Now().Add(2 * time.Second).Truncate(time.Second)
	expiring := dialSIO(t, g, false)
	parseConnect(t, expiring.connect(map[string]any{"token": token(t, user, 2*time.Second)}))
	refreshed := dialSIO(t, g, false)
	parseConnect(t, refreshed.connect(map[string]any{"token": token(t, user, 2*time.Second)}))

	refreshed.send(`421["reauth",{"token":"` + token(t, "someone-else", time.Hour) + `"}]`)
	if p := refreshed.readSkippingPings(); !strings.HasPrefix(p, `431[{"ok":false`) {
		t.Fatalf("reauth as another user: %q", p)
	}
	refreshed.send(`422["reauth",{"token":"` + token(t, user, time.Hour) + `"}]`)
	if p := refreshed.readSkippingPings(); !strings.HasPrefix(p, `432[{"ok":true,"expiresAt":`) {
		t.Fatalf("reauth: %q", p)
	}
	if p := expiring.readSkippingPings(); p != "41" {
		t.Fatalf("expected DISCONNECT at expiry, got %q", p)
	}
	if _, err := expiring.next(3 * time.Second); err == nil {
		t.Fatal("the expired connection stayed open")
	}
	if time.Now().Before(expiresAt) {
		t.Fatal("disconnected before the token expired")
	}
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "after-expiry"})
	if name, _, _ := parseEvent(t, refreshed.readSkippingPings()); name != "notification" {
		t.Fatalf("refreshed connection got %q", name)
	}
}

// A session's record lasts as long as its token (plus a minute and the
// window): a reauth with a token that expires later rewrites it, so that the
// session stays recoverable after a crash for as long as it may live.
func TestReauthExtendsTheSessionRecord(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = 10*time.Second, 5*time.Second
	g := startGateway(t, n, cfg)
	user := testkit.UniqueID("user")
	c := dialSIO(t, g, false)
	r := parseConnect(t, c.connect(map[string]any{"token": token(t, user, time.Hour)}))

	ctx := context.Background()
	kvStream, err := n.JS.Stream(ctx, "KV_"+recovery.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	record := func() (uint64, time.Duration) {
		t.Helper()
		m, err := kvStream.GetLastMsgForSubject(ctx, "$KV."+recovery.Bucket+"."+r.PID)
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := time.ParseDuration(m.Header.Get("Nats-TTL"))
		if err != nil {
			t.Fatal(err)
		}
		return m.Sequence, ttl
	}
	rev, ttl := record()
	if want := time.Hour + time.Minute + cfg.RecoveryWindow; ttl < want-5*time.Second || ttl > want {
		t.Fatalf("record TTL %v after connecting, want about %v", ttl, want)
	}

	c.send(`421["reauth",{"token":"` + token(t, user, 3*time.Hour) + `"}]`)
	if p := c.readSkippingPings(); !strings.HasPrefix(p, `431[{"ok":true`) {
		t.Fatalf("reauth: %q", p)
	}
	want := 3*time.Hour + time.Minute + cfg.RecoveryWindow
	testkit.Eventually(t, 10*time.Second, "the record to be rewritten", func() bool {
		_, ttl := record()
		return ttl > want-time.Minute && ttl <= want
	})
	// The connection's end goes through the same queue: it follows the
	// refreshed record (the revision moved since connecting).
	c.ws.Close()
	testkit.Eventually(t, 10*time.Second, "the session's end to be recorded", func() bool {
		seq, ttl := record()
		return seq > rev && ttl <= cfg.RecoveryWindow
	})
}

// /ws takes the token from the Authorization header, the query or a first
// auth frame, and resumes after an offset when the stream still has it.
func TestPlainWebSocketResume(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	user := testkit.UniqueID("user")
	read := func(ws *websocket.Conn) map[string]any {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		return m
	}
	h := http.Header{"Authorization": {"Bearer " + token(t, user, time.Hour)}}
	ws, _, err := dialWS(t, wsURL(g, "/ws"), h, false)
	if err != nil {
		t.Fatal(err)
	}
	if w := read(ws); w["type"] != "welcome" || w["resumed"] != false || w["user"] != user {
		t.Fatalf("welcome: %v", w)
	}
	var last float64
	for i := range 3 {
		seq := publish(t, n, user, contract.UserEventNotification, map[string]any{"id": fmt.Sprint(i)})
		m := read(ws)
		if m["type"] != "message" || m["event"] != "notification" || m["offset"] != float64(seq) {
			t.Fatalf("message %d: %v", i, m)
		}
		last = m["offset"].(float64)
	}
	ws.Close()
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "3"})
	publish(t, n, user, contract.UserEventRead, map[string]any{"id": "3"})

	since := strconv.FormatUint(uint64(last), 10)
	ws2, _, err := dialWS(t, wsURL(g, "/ws?since="+since+"&token="+token(t, user, time.Hour)), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if w := read(ws2); w["resumed"] != true || w["offset"] != last {
		t.Fatalf("welcome on resume: %v", w)
	}
	if m := read(ws2); m["event"] != "notification" || m["data"].(map[string]any)["id"] != "3" {
		t.Fatalf("first replayed: %v", m)
	}
	if m := read(ws2); m["event"] != "notification:read" {
		t.Fatalf("second replayed: %v", m)
	}

	// An auth frame, resuming from an offset the stream never had.
	ws3, _, err := dialWS(t, wsURL(g, "/ws"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws3.WriteJSON(map[string]any{"type": "auth", "token": token(t, user, time.Hour), "since": 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if w := read(ws3); w["type"] != "welcome" || w["resumed"] != false {
		t.Fatalf("welcome for an unknown offset: %v", w)
	}

	ws4, _, err := dialWS(t, wsURL(g, "/ws?token=nope"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if m := read(ws4); m["type"] != "error" || m["code"] != "invalid_token" {
		t.Fatalf("bad token: %v", m)
	}
	_, _, err = ws4.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4001 {
		t.Fatalf("bad token close: %v", err)
	}
}

// Engine.IO long-polling: handshake, CONNECT by POST, answers by GET, 400 on
// a second concurrent GET and on an unknown session.
func TestPollingProtocol(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval = 10 * time.Second // a waiting GET waits
	g := startGateway(t, n, cfg)
	base := g.URL + "/socket.io/?EIO=4&transport=polling"
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp.Body)
	}
	post := func(url, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(url, "text/plain;charset=UTF-8", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp.Body)
	}
	status, body := get(base)
	if status != 200 || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake: %d %q", status, body)
	}
	var hs struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &hs); err != nil || hs.SID == "" || len(hs.Upgrades) != 1 || hs.Upgrades[0] != "websocket" || hs.PingInterval != 10000 || hs.MaxPayload == 0 {
		t.Fatalf("handshake %q: %v", body, err)
	}
	session := base + "&sid=" + hs.SID
	if status, body := post(session, `40{"token":"`+token(t, "poller", time.Hour)+`"}`); status != 200 || body != "ok" {
		t.Fatalf("POST: %d %q", status, body)
	}
	if status, body := get(session); status != 200 || !strings.HasPrefix(body, `40{"sid":`) {
		t.Fatalf("GET after CONNECT: %d %q", status, body)
	}

	// One GET waits; a second one at the same time is refused and ends the
	// session, whose waiting GET then answers the close packet.
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for range 2 {
		wg.Go(func() {
			status, body := get(session)
			mu.Lock()
			answers[fmt.Sprint(status, " ", strings.SplitN(body, `"`, 2)[0])]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if answers["200 1"] != 1 || answers["400 {"] != 1 {
		t.Fatalf("two concurrent GETs answered %v, want one close packet and one 400", answers)
	}
	if status, _ := get(session); status != 400 {
		t.Fatalf("GET on the closed session: %d", status)
	}
	if status, body := get(base + "&sid=unknown"); status != 400 || !strings.Contains(body, `"code":1`) {
		t.Fatalf("unknown sid: %d %q", status, body)
	}
	if status, _ := get(g.URL + "/socket.io/?EIO=3&transport=polling"); status != 400 {
		t.Fatalf("EIO=3: %d", status)
	}
	if status, body := post(base, "40"); status != 400 || !strings.Contains(body, `"code":2`) {
		t.Fatalf("POST handshake: %d %q", status, body)
	}
}

// Origins outside the allow-list are refused; allowed ones get CORS headers.
func TestOriginAllowList(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.AllowedOrigins = []string{"https://app.example"}
	g := startGateway(t, n, cfg)
	for origin, want := range map[string]int{"https://app.example": 200, "https://evil.example": 403, "": 200} {
		req, _ := http.NewRequest(http.MethodGet, g.URL+"/socket.io/?EIO=4&transport=polling", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("origin %q: %d, want %d", origin, resp.StatusCode, want)
		}
		if want == 200 && origin != "" && resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("origin %q: no CORS header", origin)
		}
	}
	_, resp, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket"), http.Header{"Origin": {"https://evil.example"}}, false)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("websocket from a refused origin: %v", err)
	}
}

// Shutdown tells clients to go away (close 1001, so Socket.IO reconnects to
// another gateway) and records their sessions for recovery there.
func TestGracefulShutdown(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	user := testkit.UniqueID("user")
	c := dialSIO(t, g, false)
	r := parseConnect(t, c.connect(map[string]any{"token": token(t, user, time.Hour)}))
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "before"})
	_, _, offset := parseEvent(t, c.readSkippingPings())

	go g.stop()
	for {
		_, err := c.next(5 * time.Second)
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("closed with %v, want 1001 going away", err)
			}
			break
		}
	}
	g.stop()
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "between"})

	other := startGateway(t, n, testConfig())
	c2 := dialSIO(t, other, false)
	r2 := parseConnect(t, c2.connect(map[string]any{"token": token(t, user, time.Hour), "pid": r.PID, "offset": offset}))
	if r2.PID != r.PID {
		t.Fatalf("not recovered on the other gateway: %+v", r2)
	}
	_, data, _ := parseEvent(t, c2.readSkippingPings())
	if !strings.Contains(string(data), `"between"`) {
		t.Fatalf("replayed %s", data)
	}
}

// A draining gateway answers /readyz with 503 at once, refuses new
// handshakes, and closes its connections spread over up to half its grace
// period (GATEWAY_DRAIN_RATE a second), each with 1001 so that clients
// reconnect elsewhere.
func TestDrainSaysNotReadyAndSpreadsCloses(t *testing.T) {
	const sessions = 20
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = time.Minute, time.Minute
	cfg.DrainRate = 10 // 2s for 20, capped at half the 3s grace: 1.5s
	g := startGateway(t, n, cfg)
	type closing struct {
		at  time.Time
		err error
	}
	closed := make(chan closing, sessions)
	for i := range sessions {
		ws, _, err := openSession(t, g, token(t, fmt.Sprint("drain-", i), time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, _, err := ws.ReadMessage(); err != nil {
					closed <- closing{time.Now(), err}
					return
				}
			}
		}()
	}
	if code, _ := get(t, g.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz %d before the drain", code)
	}

	stopped := make(chan struct{})
	go func() { g.stop(); close(stopped) }()
	testkit.Eventually(t, 10*time.Second, "readyz to say not ready", func() bool {
		code, body := get(t, g.URL+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "shutdown")
	})
	// Handshakes are refused right after /readyz says not ready.
	testkit.Eventually(t, 10*time.Second, "new handshakes to be refused", func() bool {
		code, _ := get(t, g.URL+"/socket.io/?EIO=4&transport=polling")
		return code == http.StatusServiceUnavailable
	})
	var first, last time.Time
	for i := range sessions {
		c := <-closed
		if ce, ok := c.err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("session closed with %v, want 1001", c.err)
		}
		if i == 0 {
			first = c.at
		}
		last = c.at
	}
	if spread := last.Sub(first); spread < time.Second {
		t.Fatalf("%d closes within %v, want them spread over about 1.5s", sessions, spread)
	}
	<-stopped
}

// get returns the status and body of a GET, or 0 when nothing answers.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	return res.StatusCode, readAll(t, res.Body)
}

// A live message whose previous offset the connection never got (the live
// subscription lost one) makes the gateway close the connection, so that
// the client recovers the gap from the stream.
func TestLiveGapForcesRecovery(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	user := testkit.UniqueID("user")
	c := dialSIO(t, g, false)
	r := parseConnect(t, c.connect(map[string]any{"token": token(t, user, time.Hour)}))
	first := publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "1"})
	_, _, offset := parseEvent(t, c.readSkippingPings())
	lost := publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "lost"})
	if _, _, o := parseEvent(t, c.readSkippingPings()); o != strconv.FormatUint(lost, 10) {
		t.Fatalf("got offset %s", o)
	}

	// Pretend the live copy of a later message arrived while the one before
	// it did not.
	msg := nats.NewMsg(contract.LiveSubject(user))
	msg.Data = []byte(`{"event":"notification","data":{"id":"fake"}}`)
	msg.Header.Set(nats.JSSequence, strconv.FormatUint(lost+10, 10))
	msg.Header.Set(nats.JSLastSequence, strconv.FormatUint(lost+5, 10))
	if err := n.Conn.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := c.next(5 * time.Second)
		if err != nil {
			break
		}
		if strings.Contains(p, "fake") {
			t.Fatal("a message after a gap was delivered")
		}
	}
	testkit.Eventually(t, 5*time.Second, "the resync to be counted", func() bool {
		return metric(t, g, `gateway_disconnects_total{reason="resync"}`) == "1"
	})
	again := dialSIO(t, g, false)
	if r2 := parseConnect(t, again.connect(map[string]any{"token": token(t, user, time.Hour), "pid": r.PID, "offset": offset})); r2.PID != r.PID {
		t.Fatalf("not recovered after the resync: %+v", r2)
	}
	_, data, o := parseEvent(t, again.readSkippingPings())
	if o != strconv.FormatUint(lost, 10) || !strings.Contains(string(data), "lost") || first >= lost {
		t.Fatalf("replayed %s at %s", data, o)
	}
}

// All of a user's connections share one NATS subscription, which goes with
// the last of them.
func TestOneSubscriptionPerUser(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	user := testkit.UniqueID("user")
	subs := func() int {
		sz, err := n.Server.Subsz(&server.SubszOptions{Subscriptions: true, Test: contract.LiveSubject(user)})
		if err != nil {
			t.Fatal(err)
		}
		return int(sz.Total)
	}
	var tabs []*rawSIO
	for range 3 {
		c := dialSIO(t, g, false)
		parseConnect(t, c.connect(map[string]any{"token": token(t, user, time.Hour)}))
		tabs = append(tabs, c)
	}
	if got := subs(); got != 1 {
		t.Fatalf("%d subscriptions on the live subject for 3 connections, want 1", got)
	}
	if v := metric(t, g, "gateway_users"); v != "1" {
		t.Fatalf("gateway_users = %q", v)
	}
	tabs[0].ws.Close()
	tabs[1].ws.Close()
	testkit.Eventually(t, 5*time.Second, "two connections to go", func() bool {
		return metric(t, g, `gateway_connections{transport="websocket"}`) == "1"
	})
	if got := subs(); got != 1 {
		t.Fatalf("%d subscriptions with one connection left, want 1", got)
	}
	tabs[2].ws.Close()
	testkit.Eventually(t, 5*time.Second, "the subscription to go with the last connection", func() bool { return subs() == 0 })
	if v := metric(t, g, "gateway_users"); v != "0" {
		t.Fatalf("gateway_users = %q after the last connection", v)
	}
}

// maxPayload bounds a client's message on WebSocket and a polling body.
func TestMaxPayload(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.MaxPayload = 4096
	g := startGateway(t, n, cfg)
	c := dialSIO(t, g, false)
	c.send(`42["x","` + strings.Repeat("a", 5000) + `"]`)
	for {
		if _, err := c.next(5 * time.Second); err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseMessageTooBig {
				t.Fatalf("closed with %v, want 1009 message too big", err)
			}
			break
		}
	}

	resp, err := http.Get(g.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	var hs struct {
		SID        string `json:"sid"`
		MaxPayload int    `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &hs); err != nil || hs.MaxPayload != 4096 {
		t.Fatalf("handshake %q: %v", body, err)
	}
	resp, err = http.Post(g.URL+"/socket.io/?EIO=4&transport=polling&sid="+hs.SID, "text/plain", strings.NewReader("4"+strings.Repeat("a", 5000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized POST: %d", resp.StatusCode)
	}
}
