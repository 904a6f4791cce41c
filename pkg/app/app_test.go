package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/app"
	"github.com/xpeditis/notify/pkg/buildinfo"
	"github.com/xpeditis/notify/pkg/config"
	"github.com/xpeditis/notify/pkg/logx"
	"github.com/xpeditis/notify/pkg/natsx"
	"github.com/xpeditis/notify/pkg/testkit"
)

// process is app.Run with no service: the shared set-up alone.
type process struct {
	base string
	logs *testkit.LogBuffer
}

func run(t *testing.T, natsURL string, replicas int) *process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	common := config.ReadCommon(config.FromMap(map[string]string{
		"NATS_URL": natsURL, "JWT_SECRET": testkit.JWTSecret, "STREAM_REPLICAS": fmt.Sprint(replicas),
	}), false, true)
	p := &process{base: "http://" + ln.Addr().String(), logs: &testkit.LogBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{Name: "test", Common: common, Log: logx.New(p.logs, "info"), Listener: ln, ShutdownGrace: 5 * time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return p
}

func (p *process) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// poll calls check until it returns nil or timeout passes.
func poll(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *process) waitReadyz(t *testing.T, timeout time.Duration, code int, want ...string) string {
	t.Helper()
	var body string
	poll(t, timeout, func() error {
		var got int
		got, body = p.get(t, "/readyz")
		if got != code {
			return fmt.Errorf("/readyz %d %s, want %d", got, body, code)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("/readyz body %s does not name %q", body, w)
			}
		}
		return nil
	})
	return body
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A service started before NATS is alive at once, not ready, says it waits
// for NATS (once), and becomes ready when NATS comes, without a restart.
func TestAServiceStartedBeforeNATSIsAliveThenReadyWhenItComes(t *testing.T) {
	addr := freeAddr(t)
	p := run(t, "nats://"+addr, 1)
	poll(t, 5*time.Second, func() error {
		if code, body := p.get(t, "/healthz"); code != http.StatusOK {
			return fmt.Errorf("/healthz %d %s", code, body)
		}
		return nil
	})
	p.waitReadyz(t, 5*time.Second, http.StatusServiceUnavailable, `"nats"`, `"stream:EVENTS"`)
	if code, body := p.get(t, "/api/v1/anything"); code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for") {
		t.Errorf("a route while starting: %d %s", code, body)
	}
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Listen: addr, Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	p.waitReadyz(t, 15*time.Second, http.StatusOK)
	t.Logf("logs:\n%s", p.logs)
	if n := strings.Count(p.logs.String(), `"msg":"waiting for nats"`); n != 1 {
		t.Errorf("%d lines saying it waits for nats, want 1:\n%s", n, p.logs)
	}
}

// A stream that exists with settings JetStream can change is updated; one
// it cannot change is reported with what differs and what to do, and the
// service stays not ready.
func TestMetricsNameTheBuildFromTheFirstSecond(t *testing.T) {
	// No NATS at this address: the build is known before anything is set up.
	p := run(t, "nats://"+freeAddr(t), 1)
	want := fmt.Sprintf(`notify_build_info{commit=%q,goversion=%q,service="test",version=%q} 1`,
		buildinfo.Get().Commit, runtime.Version(), buildinfo.Get().Version)
	poll(t, 5*time.Second, func() error {
		code, body := p.get(t, "/metrics")
		if code != http.StatusOK || !strings.Contains(body, want) {
			return fmt.Errorf("/metrics %d without %s", code, want)
		}
		return nil
	})
}

func TestAnIncompatibleStreamIsReportedAndTheServiceStaysNotReady(t *testing.T) {
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgs := natsx.StreamConfigs(testkit.StreamsConfig())
	events, notify := cfgs[0], cfgs[1]
	events.MaxAge = time.Hour // changeable
	notify.Storage = jetstream.MemoryStorage
	for _, c := range []jetstream.StreamConfig{events, notify} {
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	p := run(t, srv.ClientURL(), 1)
	body := p.waitReadyz(t, 10*time.Second, http.StatusServiceUnavailable, `"stream:NOTIFY"`, "storage is Memory, want File", "nats stream rm NOTIFY", `"stream:EVENTS":"ok"`)
	t.Logf("readyz: %s", body)
	s, err := js.Stream(ctx, natsx.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != cfgs[0].MaxAge {
		t.Errorf("EVENTS max age %s, want it updated to %s", got, cfgs[0].MaxAge)
	}
	if n := strings.Count(p.logs.String(), `"msg":"waiting for stream:NOTIFY"`); n != 1 {
		t.Errorf("%d lines for the NOTIFY stream, want 1:\n%s", n, p.logs)
	}
	// The operator follows the advice: the service converges.
	if err := js.DeleteStream(ctx, natsx.StreamNotify); err != nil {
		t.Fatal(err)
	}
	p.waitReadyz(t, 15*time.Second, http.StatusOK)
}

// STREAM_REPLICAS larger than the cluster is an error that names both
// numbers.
func TestMoreReplicasThanServersIsAnErrorNamingBoth(t *testing.T) {
	n := testkit.StartCluster(t, 3)
	p := run(t, n.URL, 5)
	body := p.waitReadyz(t, 20*time.Second, http.StatusServiceUnavailable, "STREAM_REPLICAS is 5", "has 3 servers")
	t.Logf("readyz: %s", body)

	single, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", Name: "single"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(single.Shutdown)
	p = run(t, single.ClientURL(), 3)
	p.waitReadyz(t, 10*time.Second, http.StatusServiceUnavailable, "STREAM_REPLICAS is 3", "not part of a cluster")
	var status map[string]string
	_, body = p.get(t, "/readyz")
	if err := json.Unmarshal([]byte(body), &status); err != nil {
		t.Fatal(err)
	}
}

// A NATS outage (the server stopped, then started again on its data) is
// one WARN when it starts and one INFO when it ends, no ERROR, and /readyz
// names nats meanwhile.
func TestANATSOutageIsOneWarningAndOneEnd(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	srv, err := natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: dir, Listen: addr, Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	p := run(t, "nats://"+addr, 1)
	p.waitReadyz(t, 10*time.Second, http.StatusOK)
	srv.Shutdown()
	srv.WaitForShutdown()
	p.waitReadyz(t, 5*time.Second, http.StatusServiceUnavailable, `"nats":"`)
	srv, err = natsx.RunEmbedded(natsx.EmbeddedOptions{StoreDir: dir, Listen: addr, Name: "again"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	p.waitReadyz(t, 10*time.Second, http.StatusOK)
	logs := p.logs.String()
	if strings.Count(logs, `"msg":"waiting for nats"`) != 1 || strings.Count(logs, `"msg":"nats available"`) != 1 || strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("want one WARN, one INFO and no ERROR for the outage:\n%s", logs)
	}
}
