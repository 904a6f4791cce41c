package realtimegateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/realtime-gateway/internal/recovery"
)

// TestDisconnectBurstIsRecoverable drops 2,000 Socket.IO sessions at once,
// as a load balancer reset does, and checks that every one of them is
// recorded for recovery; then again while the gateway shuts down.
func TestDisconnectBurstIsRecoverable(t *testing.T) {
	t.Run("clients leave", func(t *testing.T) { testDisconnectBurst(t, false) })
	t.Run("clients leave as the gateway stops", func(t *testing.T) { testDisconnectBurst(t, true) })
}

func testDisconnectBurst(t *testing.T, stopping bool) {
	const sessions = 2000
	n := testkit.StartNATS(t)
	cfg := testConfig()
	// No heartbeat may end a session before the burst.
	cfg.PingInterval, cfg.PingTimeout = time.Minute, time.Minute
	g := startGateway(t, n, cfg)

	conns := make([]*websocket.Conn, sessions)
	pids := make([]string, sessions)
	errs := make(chan error, sessions)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range sessions {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ws, pid, err := openSession(t, g, token(t, fmt.Sprint("burst-", i), time.Hour))
			if err != nil {
				errs <- fmt.Errorf("session %d: %w", i, err)
				return
			}
			conns[i], pids[i] = ws, pid
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for _, ws := range conns {
		_ = ws.Close()
	}
	if stopping {
		g.stop()
	}

	ctx := context.Background()
	// Another gateway finds every session recoverable. Each was recorded
	// when established; when the clients left, the end of each is recorded
	// too (the window counts from it); the closes of a shutdown record
	// nothing, the gateway's last heartbeat standing for them.
	other, err := recovery.Open(ctx, n.JS, cfg.RecoveryWindow, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int) error {
		s, ok, err := other.Load(ctx, pids[i], time.Now())
		switch {
		case err != nil || !ok:
			return fmt.Errorf("session %d (%s) not recoverable: %v", i, pids[i], err)
		case s.User != fmt.Sprint("burst-", i):
			return fmt.Errorf("session %d recorded as %+v", i, s)
		case !stopping && s.Disconnected == 0:
			return fmt.Errorf("session %d: its end is not recorded: %+v", i, s)
		}
		return nil
	}
	var last error
	defer func() {
		if t.Failed() && last != nil {
			t.Log("last seen:", last)
		}
	}()
	testkit.Eventually(t, 30*time.Second, "every session recoverable", func() bool {
		for i := range pids {
			if last = check(i); last != nil {
				return false
			}
		}
		return true
	})
	if stopping {
		return
	}
	if got := metric(t, g, "gateway_recovery_save_errors_total"); got != "0" {
		t.Fatalf("gateway_recovery_save_errors_total = %s", got)
	}
}

// openSession does what socket.io-client does over WebSocket up to the
// CONNECT answer and returns the session's private id. It reports errors
// instead of failing, being called off the test's goroutine.
func openSession(t testing.TB, g *gateway, tok string) (*websocket.Conn, string, error) {
	ws, _, err := dialWS(t, wsURL(g, "/socket.io/?EIO=4&transport=websocket"), nil, false)
	if err != nil {
		return nil, "", err
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, open, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(open), `0{"sid":`) {
		return nil, "", fmt.Errorf("open packet %q: %v", open, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`40{"token":"`+tok+`"}`)); err != nil {
		return nil, "", err
	}
	_, reply, err := ws.ReadMessage()
	if err != nil || !strings.HasPrefix(string(reply), "40{") {
		return nil, "", fmt.Errorf("CONNECT answer %q: %v", reply, err)
	}
	var c connectReply
	if err := json.Unmarshal(reply[2:], &c); err != nil || c.PID == "" {
		return nil, "", fmt.Errorf("CONNECT answer %q without a pid: %v", reply, err)
	}
	return ws, c.PID, nil
}
