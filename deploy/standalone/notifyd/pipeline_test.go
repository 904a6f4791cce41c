package notifyd_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
	"github.com/xpeditis/notify/services/realtime-gateway/e2e"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

// The whole path the frontend relies on, composed as notifyd composes it:
// a domain event becomes a notification in every tab of its recipient
// (through notification-api, PostgreSQL, NOTIFY and the gateway), and
// marking it read over REST in one tab updates the other.
func TestPipelineToEveryTab(t *testing.T) {
	n := testkit.StartNATS(t)
	env := config.FromMap(map[string]string{"DATABASE_URL": testkit.Database(t), "NATS_URL": n.URL, "JWT_SECRET": testkit.JWTSecret, "INGEST_MAX_WAIT": "5ms"})
	common := config.ReadCommon(env, true, true)
	apiCfg := notificationapi.ReadConfig(env)
	gwCfg := realtimegateway.ReadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Name: "notifyd-test", Common: common, Log: testkit.Logger(), NeedDB: true, Listener: ln,
			Services:      []app.Builder{notificationapi.New(apiCfg), realtimegateway.New(gwCfg)},
			ShutdownGrace: 5 * time.Second,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("notifyd stopped with: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	testkit.Eventually(t, 10*time.Second, "ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	alice, bob := testkit.UniqueID("alice"), testkit.UniqueID("bob")
	tok := func(user string) string {
		s, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: user, OrganizationID: "org-1", Role: "USER", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b := e2e.Start(t)
	// The frontend's own call: io(url, {auth: {token}}), default options.
	b.Do(map[string]any{"cmd": "open", "tab": "alice1", "url": base, "token": tok(alice)})
	b.Do(map[string]any{"cmd": "open", "tab": "alice2", "url": base, "token": tok(alice)})
	b.Do(map[string]any{"cmd": "open", "tab": "bob", "url": base, "token": tok(bob)})
	for _, tab := range []string{"alice1", "alice2", "bob"} {
		b.Wait(tab+" connects", e2e.IsType(tab, "connect"))
	}

	data, _ := structpb.NewStruct(map[string]any{"bookingId": "BK-1"})
	ev := &contract.Event{Id: testkit.UniqueID("ev"), Type: "BOOKING_CREATED", OrganizationId: "org-1", Recipients: []string{alice}, Data: data}
	pubCtx, pubCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pubCancel()
	if _, err := publisher.New(n.JS).Publish(pubCtx, ev); err != nil {
		t.Fatal(err)
	}
	var id string
	for _, tab := range []string{"alice1", "alice2"} {
		o := b.Wait(tab+" gets the notification", e2e.IsEvent(tab, contract.UserEventNotification))
		var nt contract.Notification
		if err := json.Unmarshal(o.Args[0], &nt); err != nil || nt.Type != "BOOKING_CREATED" || nt.EventID != ev.Id || nt.Read {
			t.Fatalf("%s got %s (%v)", tab, o.Args[0], err)
		}
		id = nt.ID
	}

	req, _ := http.NewRequest(http.MethodPatch, base+"/api/v1/notifications/"+id+"/read", nil)
	req.Header.Set("Authorization", "Bearer "+tok(alice))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mark read: %d", resp.StatusCode)
	}
	for _, tab := range []string{"alice1", "alice2"} {
		o := b.Wait(tab+" gets notification:read", e2e.IsEvent(tab, contract.UserEventRead))
		if !strings.Contains(string(o.Args[0]), id) {
			t.Fatalf("%s: notification:read %s", tab, o.Args[0])
		}
	}
	if got := b.Count(func(o e2e.Observation) bool { return o.Tab == "bob" && o.Type == "event" }); got != 0 {
		t.Fatalf("bob got %d of alice's events", got)
	}
}
