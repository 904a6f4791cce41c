package realtimegateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/e2e"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// The frontend's code, io(url, {auth: {token}}) with the default transports
// (polling, then the upgrade to WebSocket) or WebSocket only, receives the
// user's notifications with their offsets.
func TestSocketIOClientTransports(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	b := e2e.Start(t)
	user := testkit.UniqueID("user")

	b.Do(map[string]any{"cmd": "open", "tab": "default", "url": g.URL, "token": token(t, user, time.Hour)})
	b.Do(map[string]any{"cmd": "open", "tab": "ws", "url": g.URL, "token": token(t, user, time.Hour), "transports": []string{"websocket"}})
	if o := b.Wait("default tab opens", e2e.IsType("default", "open")); o.Transport != "polling" {
		t.Fatalf("default tab opened on %s, want polling first", o.Transport)
	}
	if c := b.Wait("default tab connects", e2e.IsType("default", "connect")); c.Recovered || c.PID == "" {
		t.Fatalf("default tab: %+v, want not recovered, with a pid", c)
	}
	b.Wait("default tab upgrades", func(o e2e.Observation) bool {
		return o.Tab == "default" && o.Type == "upgrade" && o.Transport == "websocket"
	})
	if c := b.Wait("ws tab connects", e2e.IsType("ws", "connect")); c.Transport != "websocket" {
		t.Fatalf("ws tab: %+v", c)
	}

	seq := publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "n-1", "title": "Booking created"})
	for _, tab := range []string{"default", "ws"} {
		o := b.Wait(tab+" gets the notification", e2e.IsEvent(tab, "notification"))
		if ids := e2e.IDs([]e2e.Observation{o}); ids != "n-1" {
			t.Fatalf("%s: got %s", tab, ids)
		}
		if len(o.Args) != 2 || string(o.Args[1]) != fmt.Sprintf("%q", fmt.Sprint(seq)) {
			t.Fatalf("%s: args %s, want the notification and the offset %d", tab, o.Args, seq)
		}
	}
}

// A missing, malformed or expired token is refused with connect_error and
// its reason; so is another namespace.
func TestSocketIOClientBadToken(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	b := e2e.Start(t)
	cases := map[string]struct{ token, want string }{
		"missing":   {"", "missing token"},
		"malformed": {"not-a-jwt", "token is malformed"},
		"expired":   {token(t, "user-x", -time.Minute), "token is expired"},
	}
	for name, tc := range cases {
		b.Do(map[string]any{"cmd": "open", "tab": name, "url": g.URL, "token": tc.token, "transports": []string{"websocket"}})
		o := b.Wait(name+" refused", e2e.IsType(name, "connect_error"))
		if !strings.Contains(o.Message, tc.want) || !strings.Contains(string(o.Data), "invalid_token") {
			t.Errorf("%s: connect_error %q data %s, want %q", name, o.Message, o.Data, tc.want)
		}
	}
	b.Do(map[string]any{"cmd": "open", "tab": "ns", "url": g.URL + "/admin", "token": token(t, "user-x", time.Hour), "transports": []string{"websocket"}})
	if o := b.Wait("namespace refused", e2e.IsType("ns", "connect_error")); o.Message != "Invalid namespace" {
		t.Errorf("other namespace: %q", o.Message)
	}
	if c := b.Count(func(o e2e.Observation) bool { return o.Type == "connect" }); c != 0 {
		t.Errorf("%d refused tabs connected", c)
	}
}

// Every tab of a user gets the user's notifications and sync events, and no
// other user's.
func TestSocketIOClientTabsAndIsolation(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	b := e2e.Start(t)
	alice, bob := testkit.UniqueID("alice"), testkit.UniqueID("bob")
	b.Do(map[string]any{"cmd": "open", "tab": "alice1", "url": g.URL, "token": token(t, alice, time.Hour)})
	b.Do(map[string]any{"cmd": "open", "tab": "alice2", "url": g.URL, "token": token(t, alice, time.Hour), "transports": []string{"websocket"}})
	b.Do(map[string]any{"cmd": "open", "tab": "bob", "url": g.URL, "token": token(t, bob, time.Hour), "transports": []string{"websocket"}})
	for _, tab := range []string{"alice1", "alice2", "bob"} {
		b.Wait(tab+" connects", e2e.IsType(tab, "connect"))
	}

	publish(t, n, alice, contract.UserEventNotification, map[string]any{"id": "a-1"})
	publish(t, n, alice, contract.UserEventRead, map[string]any{"id": "a-1", "readAt": time.Now()})
	publish(t, n, alice, contract.UserEventDeleted, map[string]any{"id": "a-1"})
	publish(t, n, alice, contract.UserEventReadAll, map[string]any{"count": 0, "readAt": time.Now()})
	publish(t, n, bob, contract.UserEventNotification, map[string]any{"id": "b-1"})
	for _, tab := range []string{"alice1", "alice2"} {
		for _, ev := range []string{contract.UserEventNotification, contract.UserEventRead, contract.UserEventDeleted, contract.UserEventReadAll} {
			b.Wait(tab+" gets "+ev, e2e.IsEvent(tab, ev))
		}
	}
	b.Wait("bob gets his notification", e2e.IsEvent("bob", "notification"))
	for _, tab := range []string{"alice1", "alice2"} {
		if ids := e2e.IDs(b.All(e2e.IsEvent(tab, "notification"))); ids != "a-1" {
			t.Errorf("%s got notifications %v, want only a-1", tab, ids)
		}
	}
	if got := b.All(func(o e2e.Observation) bool { return o.Tab == "bob" && o.Type == "event" }); len(got) != 1 || e2e.IDs(got) != "b-1" {
		t.Errorf("bob got %d events %v, want only b-1", len(got), e2e.IDs(got))
	}
}

// After a lost connection, the messages published meanwhile arrive once and
// in order with socket.recovered true, on both transports.
func TestSocketIOClientRecovery(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	b := e2e.Start(t)
	for _, transports := range [][]string{{"websocket"}, {"polling"}} {
		t.Run(transports[0], func(t *testing.T) {
			b.Reset()
			user := testkit.UniqueID("user")
			b.Do(map[string]any{"cmd": "open", "tab": "t", "url": g.URL, "token": token(t, user, time.Hour), "transports": transports})
			b.Wait("connect", e2e.IsType("t", "connect"))
			publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "m-1"})
			b.Wait("m-1", e2e.IsEvent("t", "notification"))

			b.Do(map[string]any{"cmd": "drop", "tab": "t"})
			b.Wait("disconnect", e2e.IsType("t", "disconnect"))
			for i := 2; i <= 4; i++ {
				publish(t, n, user, contract.UserEventNotification, map[string]any{"id": fmt.Sprintf("m-%d", i)})
			}
			b.Do(map[string]any{"cmd": "reconnect", "tab": "t"})
			testkit.Eventually(t, 10*time.Second, "reconnect", func() bool { return b.Count(e2e.IsType("t", "connect")) == 2 })
			if c := b.All(e2e.IsType("t", "connect"))[1]; !c.Recovered {
				t.Fatalf("reconnect: %+v, want recovered", c)
			}
			publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "m-5"})
			testkit.Eventually(t, 10*time.Second, "five notifications", func() bool { return b.Count(e2e.IsEvent("t", "notification")) >= 5 })
			if ids := e2e.IDs(b.All(e2e.IsEvent("t", "notification"))); ids != "m-1,m-2,m-3,m-4,m-5" {
				t.Fatalf("got %s, want m-1..m-5 once each in order", ids)
			}
			b.Do(map[string]any{"cmd": "close", "tab": "t"})
		})
	}
}

// Past the recovery window the session is not recovered: the client is told
// (recovered false) and refetches over REST.
func TestSocketIOClientRecoveryWindow(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.RecoveryWindow = time.Second
	g := startGateway(t, n, cfg)
	b := e2e.Start(t)
	user := testkit.UniqueID("user")
	b.Do(map[string]any{"cmd": "open", "tab": "t", "url": g.URL, "token": token(t, user, time.Hour), "transports": []string{"websocket"}})
	c := b.Wait("connect", e2e.IsType("t", "connect"))
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "m-1"})
	b.Wait("m-1", e2e.IsEvent("t", "notification"))
	b.Do(map[string]any{"cmd": "drop", "tab": "t"})
	b.Wait("disconnect", e2e.IsType("t", "disconnect"))
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "m-2"})

	kv, err := n.JS.KeyValue(context.Background(), recovery.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the session to be recorded", func() bool {
		_, err := kv.Get(context.Background(), c.PID)
		return err == nil
	})
	testkit.Eventually(t, 15*time.Second, "the recovery window to pass", func() bool {
		_, err := kv.Get(context.Background(), c.PID)
		return err == jetstream.ErrKeyNotFound
	})
	b.Do(map[string]any{"cmd": "reconnect", "tab": "t"})
	testkit.Eventually(t, 10*time.Second, "reconnect", func() bool { return b.Count(e2e.IsType("t", "connect")) == 2 })
	if c := b.All(e2e.IsType("t", "connect"))[1]; c.Recovered {
		t.Fatalf("reconnect after the window: %+v, want not recovered", c)
	}
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "m-3"})
	testkit.Eventually(t, 10*time.Second, "m-3", func() bool { return b.Count(e2e.IsEvent("t", "notification")) >= 2 })
	if ids := e2e.IDs(b.All(e2e.IsEvent("t", "notification"))); ids != "m-1,m-3" {
		t.Fatalf("got %s, want m-1,m-3 (m-2 is refetched over REST)", ids)
	}
}

// Two gateways on one NATS: a user with a tab on each gets every message
// once per tab.
func TestTwoGateways(t *testing.T) {
	n := testkit.StartNATS(t)
	g1 := startGateway(t, n, testConfig())
	g2 := startGateway(t, n, testConfig())
	b := e2e.Start(t)
	user := testkit.UniqueID("user")
	b.Do(map[string]any{"cmd": "open", "tab": "g1", "url": g1.URL, "token": token(t, user, time.Hour), "transports": []string{"websocket"}})
	b.Do(map[string]any{"cmd": "open", "tab": "g2", "url": g2.URL, "token": token(t, user, time.Hour)})
	b.Wait("g1 connects", e2e.IsType("g1", "connect"))
	b.Wait("g2 connects", e2e.IsType("g2", "connect"))
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("m-%d", i)
		want = append(want, id)
		publish(t, n, user, contract.UserEventNotification, map[string]any{"id": id})
	}
	for _, tab := range []string{"g1", "g2"} {
		testkit.Eventually(t, 10*time.Second, tab+" gets 20", func() bool { return b.Count(e2e.IsEvent(tab, "notification")) >= 20 })
	}
	// A last message proves nothing more was on its way.
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "end"})
	want = append(want, "end")
	for _, tab := range []string{"g1", "g2"} {
		b.Wait(tab+" gets end", func(o e2e.Observation) bool {
			return o.Tab == tab && o.Type == "event" && len(o.Args) > 0 && strings.Contains(string(o.Args[0]), `"end"`)
		})
		if got := e2e.IDs(b.All(e2e.IsEvent(tab, "notification"))); got != strings.Join(want, ",") {
			t.Errorf("%s got %s", tab, got)
		}
	}
}

// Messages that arrive while a tab upgrades from polling to WebSocket are
// delivered once and in order across the switch.
func TestSocketIOClientMessagesDuringUpgrade(t *testing.T) {
	n := testkit.StartNATS(t)
	g := startGateway(t, n, testConfig())
	b := e2e.Start(t)
	user := testkit.UniqueID("user")
	b.Do(map[string]any{"cmd": "open", "tab": "t", "url": g.URL, "token": token(t, user, time.Hour)})
	b.Wait("connect", e2e.IsType("t", "connect"))
	var want []string
	for i := range 60 {
		id := fmt.Sprint(i)
		want = append(want, id)
		publish(t, n, user, contract.UserEventNotification, map[string]any{"id": id})
	}
	b.Wait("upgrade", e2e.IsType("t", "upgrade"))
	testkit.Eventually(t, 10*time.Second, "60 notifications", func() bool { return b.Count(e2e.IsEvent("t", "notification")) >= 60 })
	publish(t, n, user, contract.UserEventNotification, map[string]any{"id": "end"})
	want = append(want, "end")
	b.Wait("end", func(o e2e.Observation) bool { return o.Type == "event" && strings.Contains(string(o.Args[0]), `"end"`) })
	if got := e2e.IDs(b.All(e2e.IsEvent("t", "notification"))); got != strings.Join(want, ",") {
		t.Fatalf("got %s", got)
	}
}

// socket.io-client with its default transports opens on long-polling and
// upgrades to WebSocket. With the heartbeat at its production pace (a ping
// every 25 s), every one of 50 clients connecting at once is on WebSocket
// within a second of its connect: the gateway answers the long-poll that
// the client waits for during the upgrade probe at once, instead of holding
// it until the next packet (the next ping, 25 s later).
func TestSocketIOClientDefaultTransportsUpgradeWithinASecond(t *testing.T) {
	n := testkit.StartNATS(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PingTimeout = 25*time.Second, 20*time.Second
	g := startGateway(t, n, cfg)
	b := e2e.Start(t)
	const clients = 50
	for i := range clients {
		b.Do(map[string]any{"cmd": "open", "tab": fmt.Sprint("c", i), "url": g.URL, "token": token(t, testkit.UniqueID("user"), time.Hour)})
	}
	for i := range clients {
		tab := fmt.Sprint("c", i)
		c := b.Wait(tab+" connects", e2e.IsType(tab, "connect"))
		up := b.Wait(tab+" upgrades", func(o e2e.Observation) bool {
			return o.Tab == tab && o.Type == "upgrade" && o.Transport == "websocket"
		})
		if late := time.Duration((up.T - c.T) * float64(time.Millisecond)); late > time.Second {
			t.Errorf("%s: on WebSocket %s after connect (connected on %s), want within 1s", tab, late, c.Transport)
		}
	}
}
