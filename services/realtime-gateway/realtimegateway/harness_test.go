package realtimegateway_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

// testConfig is the gateway's configuration with heartbeats fast enough for
// tests.
func testConfig() realtimegateway.Config {
	c := realtimegateway.ReadConfig(config.FromMap(nil))
	c.PingInterval, c.PingTimeout, c.Tick = 500*time.Millisecond, 400*time.Millisecond, 20*time.Millisecond
	c.ShutdownGrace = 3 * time.Second
	return c
}

// gateway is a gateway running in the test process.
type gateway struct {
	URL  string // http://127.0.0.1:port
	stop func()
}

// startGateway runs a gateway on a random port against n until cleanup.
func startGateway(t testing.TB, n *testkit.NATS, cfg realtimegateway.Config) *gateway {
	t.Helper()
	return startGatewayHTTP(t, n, cfg, config.HTTP{})
}

// startGatewayHTTP is startGateway with the HTTP server's limits (zero
// fields: the defaults).
func startGatewayHTTP(t testing.TB, n *testkit.NATS, cfg realtimegateway.Config, limits config.HTTP) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startGatewayOn(t, n, cfg, limits, ln)
}

// startGatewayOn is startGatewayHTTP serving ln.
func startGatewayOn(t testing.TB, n *testkit.NATS, cfg realtimegateway.Config, limits config.HTTP, ln net.Listener) *gateway {
	t.Helper()
	common := config.Common{NATSURL: n.URL, HTTPAddr: ln.Addr().String(), LogLevel: "error", Streams: testkit.StreamsConfig(), JWT: testkit.JWTConfig(), HTTP: limits}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: realtimegateway.Name, Common: common, Log: testkit.Logger(), Listener: ln,
			Services: []app.Builder{realtimegateway.New(cfg)}, ShutdownGrace: 5 * time.Second,
		})
	}()
	g := &gateway{URL: "http://" + ln.Addr().String()}
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("gateway: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("gateway did not stop")
			}
		})
	}
	t.Cleanup(g.stop)
	// Ready, not merely listening: the ops endpoints answer from the first
	// second, the gateway's routes once its bucket is set up.
	testkit.Eventually(t, 10*time.Second, "gateway ready", func() bool {
		resp, err := http.Get(g.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return g
}

// token mints a test token for user.
func token(t testing.TB, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: user, OrganizationID: "org-1", Role: "USER", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publish stores a user message in NOTIFY, as notification-api does, and
// returns its offset.
func publish(t testing.TB, n *testkit.NATS, user, event string, data any) uint64 {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(contract.UserMessage{Event: event, Data: raw})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := n.JS.Publish(ctx, contract.NotifySubject(user), body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}
