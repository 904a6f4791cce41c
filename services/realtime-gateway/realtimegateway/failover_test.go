package realtimegateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/e2e"
)

// Two gateway processes share one NATS behind a load balancer. The one the
// client is on is killed with SIGKILL while messages are published: the
// client reconnects through the load balancer to the other gateway, which
// recovers its session (socket.recovered true) and sends exactly the
// messages it missed, in order.
func TestSocketIOSessionRecoveredAfterGatewayKilled(t *testing.T) {
	for _, transports := range [][]string{{"websocket"}, {"polling"}} {
		t.Run(transports[0], func(t *testing.T) {
			n := testkit.StartNATS(t)
			g1, g2 := startGatewayProcess(t, n), startGatewayProcess(t, n)
			lb := startBalancer(t, g1.Addr, g2.Addr)
			b := e2e.Start(t)
			user := testkit.UniqueID("user")

			b.Do(map[string]any{"cmd": "open", "tab": "t", "url": lb.URL, "token": token(t, user, time.Hour), "transports": transports})
			if c := b.Wait("connect", e2e.IsType("t", "connect")); c.Recovered || c.PID == "" {
				t.Fatalf("first connect: %+v", c)
			}
			want := publishN(t, n, user, 0, 10)
			testkit.Eventually(t, 20*time.Second, "the first 10 messages", func() bool { return b.Count(e2e.IsEvent("t", "notification")) >= 10 })

			for i := 10; i < 40; i++ {
				want = append(want, publishN(t, n, user, i, 1)...)
				if i == 20 {
					g1.Kill()
				}
			}
			b.Wait("disconnect", e2e.IsType("t", "disconnect"))
			testkit.Eventually(t, 20*time.Second, "a reconnect", func() bool { return b.Count(e2e.IsType("t", "connect")) >= 2 })
			if c := b.All(e2e.IsType("t", "connect"))[1]; !c.Recovered {
				t.Fatalf("reconnect after the crash: %+v, want recovered", c)
			}
			if hit := metric(t, &gateway{URL: g2.URL}, `gateway_recovery_total{result="hit"}`); hit != "1" {
				t.Fatalf("the other gateway's recovery hits: %q, want 1", hit)
			}
			want = append(want, publishN(t, n, user, 40, 1)...)
			waitNotifications(t, b, "t", want)
		})
	}
}

// The same for /ws: a client that resumes with since=<its last offset> on
// the other gateway gets exactly what it missed while the first was killed.
func TestPlainWebSocketResumedAfterGatewayKilled(t *testing.T) {
	n := testkit.StartNATS(t)
	g1, g2 := startGatewayProcess(t, n), startGatewayProcess(t, n)
	lb := startBalancer(t, g1.Addr, g2.Addr)
	user := testkit.UniqueID("user")
	lbWS := "ws" + strings.TrimPrefix(lb.URL, "http") + "/ws?token=" + token(t, user, time.Hour)

	ws, _, err := dialWS(t, lbWS, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var last uint64
	// read returns the next frame, or false when the connection ended.
	read := func(ws *websocket.Conn) (map[string]any, bool) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("read: %v", err)
			}
			return nil, false // the gateway went away
		}
		if m["type"] == "message" {
			offset := uint64(m["offset"].(float64))
			if offset <= last {
				t.Fatalf("offset %d after %d: a duplicate or out of order", offset, last)
			}
			last = offset
			got = append(got, m["data"].(map[string]any)["id"].(string))
		}
		return m, true
	}
	if w, _ := read(ws); w["type"] != "welcome" {
		t.Fatalf("welcome: %v", w)
	}
	want := publishN(t, n, user, 0, 10)
	for len(got) < 10 {
		if _, ok := read(ws); !ok {
			t.Fatal("connection ended before the first messages")
		}
	}
	for i := 10; i < 40; i++ {
		want = append(want, publishN(t, n, user, i, 1)...)
		if i == 20 {
			g1.Kill()
		}
	}
	for {
		if _, ok := read(ws); !ok {
			break
		}
	}
	ws2, _, err := dialWS(t, lbWS+"&since="+strconv.FormatUint(last, 10), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := read(ws2); w["type"] != "welcome" || w["resumed"] != true || w["offset"] != float64(last) {
		t.Fatalf("welcome on the other gateway: %v, want resumed after %d", w, last)
	}
	want = append(want, publishN(t, n, user, 40, 1)...)
	for len(got) < len(want) {
		if _, ok := read(ws2); !ok {
			t.Fatalf("connection ended after %v", got)
		}
	}
	if g, w := strings.Join(got, ","), strings.Join(want, ","); g != w {
		t.Fatalf("got %s\nwant %s", g, w)
	}
	if hit := metric(t, &gateway{URL: g2.URL}, `gateway_recovery_total{result="hit"}`); hit != "1" {
		t.Fatalf("the other gateway's resume hits: %q, want 1", hit)
	}
}

// SIGTERM drains a gateway: it says not ready, closes its clients so that
// socket.io-client reconnects at once, through the load balancer, to the
// other gateway, and recovers there with nothing missed; it exits within
// its grace period without logging an ERROR.
func TestSocketIOClientsRecoverAfterGatewayDrain(t *testing.T) {
	for _, transports := range [][]string{{"websocket"}, {"polling"}} {
		t.Run(transports[0], func(t *testing.T) {
			n := testkit.StartNATS(t)
			g1, g2 := startGatewayProcess(t, n), startGatewayProcess(t, n)
			lb := startBalancer(t, g1.Addr, g2.Addr)
			b := e2e.Start(t)
			user := testkit.UniqueID("user")

			b.Do(map[string]any{"cmd": "open", "tab": "t", "url": lb.URL, "token": token(t, user, time.Hour), "transports": transports})
			b.Wait("connect", e2e.IsType("t", "connect"))
			want := publishN(t, n, user, 0, 10)
			testkit.Eventually(t, 20*time.Second, "the first 10 messages", func() bool { return b.Count(e2e.IsEvent("t", "notification")) >= 10 })

			var stopped time.Time
			for i := 10; i < 40; i++ {
				want = append(want, publishN(t, n, user, i, 1)...)
				if i == 20 {
					stopped = time.Now()
					g1.Terminate()
				}
			}
			// A WebSocket gets a close frame. Long-polling needs each request
			// to reach the same gateway: once this one says not ready, the
			// load balancer sends the client's next poll to the other, which
			// does not know the session, and the client reconnects after that
			// error as it would after the close.
			d := b.Wait("disconnect", e2e.IsType("t", "disconnect"))
			if d.Reason != "transport close" && !(transports[0] == "polling" && d.Reason == "transport error") {
				t.Fatalf("disconnect %q (%s), want transport close (the client reconnects by itself)", d.Reason, d.Data)
			}
			if err := g1.Wait(10 * time.Second); err != nil {
				t.Fatalf("gateway exit: %v\n%s", err, g1.Logs())
			}
			// GATEWAY_SHUTDOWN_GRACE is 3s; the process may take 5s more.
			if took := time.Since(stopped); took > 8*time.Second {
				t.Fatalf("the gateway took %v to stop", took)
			}
			testkit.Eventually(t, 20*time.Second, "a reconnect", func() bool { return b.Count(e2e.IsType("t", "connect")) >= 2 })
			if c := b.All(e2e.IsType("t", "connect"))[1]; !c.Recovered {
				t.Fatalf("reconnect after the drain: %+v, want recovered", c)
			}
			if errs := b.All(e2e.IsType("t", "connect_error")); len(errs) > 0 {
				t.Fatalf("the reconnect was refused first (the client then backs off): %+v", errs)
			}
			want = append(want, publishN(t, n, user, 40, 1)...)
			waitNotifications(t, b, "t", want)
			if hit := metric(t, &gateway{URL: g2.URL}, `gateway_recovery_total{result="hit"}`); hit != "1" {
				t.Fatalf("the other gateway's recovery hits: %q, want 1", hit)
			}
			logs := g1.Logs()
			if !strings.Contains(logs, `"msg":"gateway draining"`) {
				t.Fatalf("the gateway did not drain:\n%s", logs)
			}
			for _, line := range strings.Split(logs, "\n") {
				var l struct{ Level string }
				if json.Unmarshal([]byte(line), &l) == nil && l.Level == "ERROR" {
					t.Fatalf("the gateway logged an error while draining: %s", line)
				}
			}
		})
	}
}

// publishN publishes count notifications m-<from>… and returns their ids.
func publishN(t testing.TB, n *testkit.NATS, user string, from, count int) []string {
	t.Helper()
	ids := make([]string, 0, count)
	for i := from; i < from+count; i++ {
		id := fmt.Sprintf("m-%d", i)
		publish(t, n, user, contract.UserEventNotification, map[string]any{"id": id})
		ids = append(ids, id)
	}
	return ids
}

// waitNotifications waits for the tab to have received want, then checks
// it received exactly that: each once, in order.
func waitNotifications(t testing.TB, b *e2e.Browser, tab string, want []string) {
	t.Helper()
	last := want[len(want)-1]
	b.Wait(tab+" gets "+last, func(o e2e.Observation) bool {
		return e2e.IsEvent(tab, "notification")(o) && e2e.IDs([]e2e.Observation{o}) == last
	})
	if got := e2e.IDs(b.All(e2e.IsEvent(tab, "notification"))); got != strings.Join(want, ",") {
		t.Fatalf("%s got %s\nwant %s", tab, got, strings.Join(want, ","))
	}
}
