package notifyd_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/xpeditis/notify/deploy/standalone/notifyd"
	"github.com/xpeditis/notify/pkg/auth"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/contract"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/publisher"
	"github.com/xpeditis/notify/pkg/testkit"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

var producerURL = regexp.MustCompile(`"msg":"embedded NATS listening for producers"[^}]*"url":"(nats://[^"]+)"`)

// runNotifydListening runs notifyd with its producer listener on a random
// loopback port and returns its HTTP base URL, the listener's NATS URL and
// its log.
func runNotifydListening(t *testing.T, vars map[string]string) (base, natsURL string, logs *testkit.LogBuffer) {
	t.Helper()
	m := map[string]string{
		"DATABASE_URL": testkit.Database(t), "NATS_LISTEN": "127.0.0.1:0", "JWT_SECRET": testkit.JWTSecret,
		"WEBHOOK_SECRETS_KEYS": webhookdispatcher.NewSecretKeySpec("test1"), "INGEST_MAX_WAIT": "5ms",
	}
	for k, v := range vars {
		m[k] = v
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs = &testkit.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan string, 1)
	go func() {
		done <- notifyd.Run(ctx, config.FromMap(m), logs, notifyd.RunOptions{Listener: ln, Ready: func(addr string) { ready <- addr }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("notifyd: %v", err)
		}
	})
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		done <- err // for the cleanup, which waits for Run
		t.Fatalf("notifyd did not start: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("notifyd did not start within 30s\n%s", logs)
	}
	match := producerURL.FindStringSubmatch(logs.String())
	if match == nil {
		t.Fatalf("notifyd does not say where producers connect:\n%s", logs)
	}
	return base, match[1], logs
}

// publishAndSee publishes an event for a fresh user through nc and waits
// until the user's inbox in notifyd lists it: the services inside notifyd
// work with the producer's event.
func publishAndSee(t *testing.T, nc *nats.Conn, base string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	user := testkit.UniqueID("user")
	ev := &contract.Event{Id: testkit.UniqueID("ev"), Type: "BOOKING_CREATED", OrganizationId: "org-1", Recipients: []string{user}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := publisher.New(js).Publish(ctx, ev); err != nil {
		t.Fatalf("publish: %v", err)
	}
	tok, err := auth.Mint(testkit.JWTSecret, auth.MintOptions{UserID: user, OrganizationID: "org-1", Role: "USER", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the notification in the user's inbox", func() bool {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/notifications", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var page struct {
			Data []contract.Notification `json:"data"`
		}
		return json.NewDecoder(resp.Body).Decode(&page) == nil && len(page.Data) == 1 && page.Data[0].EventID == ev.Id
	})
}

func connectProducer(t *testing.T, url string, a config.NATSAuth) (*nats.Conn, error) {
	t.Helper()
	opts, err := natsx.ClientOptions(a)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(opts, nats.PermissionErrOnSubscribe(true))...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// In production the embedded NATS lets no one in without credentials: on
// first start notifyd makes a producer NKey, keeps its seed in DATA_DIR
// (mode 0600), says where without printing it, and a producer with that
// seed publishes events (and nothing else) while the services inside keep
// working.
func TestProductionNotifydRequiresTheProducerNKey(t *testing.T) {
	dataDir := t.TempDir()
	base, url, logs := runNotifydListening(t, map[string]string{"NOTIFY_MODE": "production", "DATA_DIR": dataDir})

	if _, err := connectProducer(t, url, config.NATSAuth{}); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("an unauthenticated producer: %v, want an authorization violation", err)
	}
	if _, err := connectProducer(t, url, config.NATSAuth{User: "producer", Password: "guess"}); err == nil {
		t.Fatal("a producer with a guessed password got in")
	}

	seedFile := filepath.Join(dataDir, notifyd.ProducerSeedFile)
	st, err := os.Stat(seedFile)
	if err != nil {
		t.Fatalf("no producer seed: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", seedFile, st.Mode().Perm())
	}
	seed, _ := os.ReadFile(seedFile)
	if out := logs.String(); !strings.Contains(out, seedFile) || strings.Contains(out, strings.TrimSpace(string(seed))) {
		t.Errorf("the log must name %s and never print the seed:\n%s", seedFile, out)
	}

	nc, err := connectProducer(t, url, config.NATSAuth{NKeySeedFile: seedFile})
	if err != nil {
		t.Fatalf("the producer with the seed: %v", err)
	}
	publishAndSee(t, nc, base)
	sub, err := nc.SubscribeSync("live.user.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("the producer subscribing to live.user.>: %v, want a permissions violation", err)
	}
}

// Producer keys given in NATS_LISTEN_NKEYS are the ones let in; notifyd
// makes none of its own.
func TestProductionNotifydTakesGivenProducerKeys(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "producer.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	base, url, _ := runNotifydListening(t, map[string]string{"NOTIFY_MODE": "production", "DATA_DIR": dataDir, "NATS_LISTEN_NKEYS": pub})
	if _, err := os.Stat(filepath.Join(dataDir, notifyd.ProducerSeedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("notifyd made a producer key although NATS_LISTEN_NKEYS is set (%v)", err)
	}
	if _, err := connectProducer(t, url, config.NATSAuth{}); err == nil {
		t.Fatal("an unauthenticated producer got in")
	}
	nc, err := connectProducer(t, url, config.NATSAuth{NKeySeedFile: seedFile})
	if err != nil {
		t.Fatalf("the producer with the given key: %v", err)
	}
	publishAndSee(t, nc, base)
}

// In development the listener stays open (on loopback) and no key is made.
func TestDevelopmentNotifydListenerStaysOpen(t *testing.T) {
	dataDir := t.TempDir()
	base, url, _ := runNotifydListening(t, map[string]string{"NOTIFY_MODE": "development", "DATA_DIR": dataDir})
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Errorf("development listener at %s, want loopback", url)
	}
	nc, err := connectProducer(t, url, config.NATSAuth{})
	if err != nil {
		t.Fatalf("an unauthenticated producer in development: %v", err)
	}
	publishAndSee(t, nc, base)
	if _, err := os.Stat(filepath.Join(dataDir, notifyd.ProducerSeedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("development made a producer key (%v)", err)
	}
}

// A producer key that is not a public user NKey stops start-up, named.
func TestNotifydRefusesABadProducerKey(t *testing.T) {
	env := config.FromMap(map[string]string{
		"NOTIFY_MODE": "production", "DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://unused", "NATS_LISTEN": "127.0.0.1:0",
		"JWT_SECRET": testkit.JWTSecret, "WEBHOOK_SECRETS_KEYS": webhookdispatcher.NewSecretKeySpec("test1"),
		"NATS_LISTEN_NKEYS": "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU",
	})
	err := notifyd.Run(context.Background(), env, &testkit.LogBuffer{}, notifyd.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "NATS_LISTEN_NKEYS") || strings.Contains(err.Error(), "SUAMLK2") {
		t.Fatalf("start with a seed in NATS_LISTEN_NKEYS: %v, want an error naming the variable without echoing the secret", err)
	}
}
