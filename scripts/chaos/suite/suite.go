// Package suite is the chaos suite: it starts the cluster, sends events
// through it from a producer to a webhook receiver and Socket.IO clients,
// injects faults one after another while the events flow, and reports per
// fault what was lost, duplicated or late.
package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/pkg/webhook"
	"github.com/xpeditis/notify/scripts/chaos/cluster"
)

// Config of a run.
type Config struct {
	Root        string
	Faults      []Fault
	Rate        int           // events per second
	Users       int           // recipients, each with TabsPerUser sockets
	TabsPerUser int           //
	Baseline    time.Duration // events flow this long before the first fault
	Window      time.Duration // each fault's phase lasts at least this long
	Lead        time.Duration // events flow this long in a phase before its fault
	Settle      time.Duration // after the producer stops, how long to wait for stragglers
	KeepDir     bool
	Out         io.Writer
	Log         io.Writer
}

const org = "chaos-org"

// phase is a span of the run: the baseline, or one fault with the events
// published while it was prepared, done and recovered from.
type phase struct {
	name    string
	detail  string
	start   time.Time
	faultAt time.Time // zero for the baseline
	end     time.Time
	healthy time.Duration // from the fault to every check passing again
	err     string
}

// Run runs the suite and returns the report; it fails when the report
// shows a loss, a duplicated row or a missed socket message.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "%s chaos: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	if err := setupNode(ctx, cfg.Root); err != nil {
		return nil, err
	}
	partition := os.Geteuid() == 0
	if !partition {
		logf("not root: the NATS nodes share the host's network and the partition fault is skipped")
	}
	started := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Root: cfg.Root, Partitionable: partition, KeepDir: cfg.KeepDir})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	logf("cluster in %s (NATS %s; PostgreSQL port %d; logs in %s/logs)", c.Dir, c.NATSURL(), c.Postgres.Port, c.Dir)

	launched := time.Now()
	if err := c.WaitReady(ctx, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("start-up: %w", err)
	}
	startup := phase{name: "start-up (all replicas at once)", start: launched, end: time.Now()}
	startup.healthy = startup.end.Sub(launched)
	logf("every replica ready %s after launch (%s with the build)", startup.healthy.Round(time.Millisecond), time.Since(started).Round(time.Second))

	nc, err := nats.Connect(c.NATSURL(), nats.Name("chaos-harness"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("harness connect nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	secret := webhook.GenerateSecret()
	recv, err := startReceiver(secret)
	if err != nil {
		return nil, err
	}
	defer recv.Close()
	if err := createWebhook(ctx, c, recv.URL(), secret); err != nil {
		return nil, err
	}

	b, err := startBrowsers(cfg.Root)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = fmt.Sprintf("user-%02d", i)
		tok, err := c.Token(users[i], org, "MEMBER", 6*time.Hour)
		if err != nil {
			return nil, err
		}
		for t := range cfg.TabsPerUser {
			// WebSocket only: the balancer in front of the gateways is not
			// sticky, and long-polling needs sticky sessions
			// (docs/realtime-gateway.md).
			if err := b.open(fmt.Sprintf("%s-tab%d", users[i], t), users[i], "http://"+c.Gateway.Addr(), tok, []string{"websocket"}); err != nil {
				return nil, err
			}
		}
	}
	want := cfg.Users * cfg.TabsPerUser
	if err := wait(ctx, 30*time.Second, "every socket connected", func() error {
		if n := b.connected(); n < want {
			return fmt.Errorf("%d of %d connected", n, want)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	logf("%d sockets connected through %s; webhook receiver at %s", want, c.Gateway.Addr(), recv.URL())

	run := fmt.Sprintf("%x", time.Now().Unix()%0xfffff)
	prod, err := newProducer(nc, run, org, users)
	if err != nil {
		return nil, err
	}
	prodCtx, stopProducer := context.WithCancel(ctx)
	prodDone := make(chan struct{})
	go func() { defer close(prodDone); prod.runAt(prodCtx, cfg.Rate) }()
	defer func() { stopProducer(); <-prodDone }()

	phases := []*phase{{name: "baseline (no fault)", start: time.Now()}}
	logf("producing %d events/s; baseline %s", cfg.Rate, cfg.Baseline)
	if err := sleep(ctx, cfg.Baseline); err != nil {
		return nil, err
	}
	for i, f := range cfg.Faults {
		if f.Kind == Partition && !partition {
			continue
		}
		now := time.Now()
		phases[len(phases)-1].end = now
		ph := &phase{name: f.String(), start: now}
		phases = append(phases, ph)
		prod.phase.Store(int64(len(phases) - 1))
		if err := sleep(ctx, cfg.Lead); err != nil {
			return nil, err
		}
		ph.faultAt = time.Now()
		logf("fault %d/%d: %s", i+1, len(cfg.Faults), f)
		ph.detail, err = inject(ctx, c, nc, js, f, i)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			ph.err = err.Error()
			logf("fault %s: %v", f, err)
		}
		// The next fault waits for the cluster to be whole again and for
		// the window to pass, so that faults never overlap.
		if err := waitHealthy(ctx, c, js); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			ph.err = strings.TrimSpace(ph.err + " " + err.Error())
			logf("after %s: %v", f, err)
		}
		ph.healthy = time.Since(ph.faultAt)
		logf("%s: healthy again %s after the fault", f, ph.healthy.Round(100*time.Millisecond))
		if err := sleep(ctx, time.Until(ph.start.Add(cfg.Window))); err != nil {
			return nil, err
		}
	}
	phases[len(phases)-1].end = time.Now()
	stopProducer()
	<-prodDone

	logf("producer stopped; waiting up to %s for the last events", cfg.Settle)
	settled := settle(ctx, c, prod, recv, b, cfg.Settle)
	logf("settled: %v", settled)
	return analyze(ctx, c, prod, recv, b, startup, phases, run)
}

// setupNode installs socket.io-client for client.mjs (npm ci, skipped
// when already installed from the lock file).
func setupNode(ctx context.Context, root string) error {
	return runCmd(ctx, root, "bash", "scripts/test-setup-gateway.sh")
}

// createWebhook registers the receiver for BOOKING_CREATED through the
// REST API of the dispatchers, as an organization admin would.
func createWebhook(ctx context.Context, c *cluster.Cluster, url, secret string) error {
	var apis []string
	for _, r := range c.Services[cluster.WebhookDispatcher] {
		apis = append(apis, r.URL)
	}
	return createWebhookAt(ctx, c, apis, org, url, secret)
}

// createWebhookAt creates the webhook of org through the first of apis
// (base URLs) that answers, waiting while they are not ready (503) and
// failing at once on any other refusal.
func createWebhookAt(ctx context.Context, c *cluster.Cluster, apis []string, org, url, secret string) error {
	tok, err := c.Token("chaos-admin", org, "ADMIN", time.Hour)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"url": url, "events": []string{"BOOKING_CREATED"}, "secret": secret, "description": "chaos receiver"})
	var refused error
	err = wait(ctx, 30*time.Second, "webhook created", func() error {
		for _, api := range apis {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/api/v1/webhooks", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
				return nil
			case http.StatusServiceUnavailable:
				return fmt.Errorf("POST /api/v1/webhooks: %s %s", resp.Status, excerpt)
			default:
				refused = fmt.Errorf("POST %s/api/v1/webhooks: %s %s", api, resp.Status, excerpt)
				return nil
			}
		}
		return errors.New("no dispatcher answered")
	})
	if err != nil {
		return err
	}
	return refused
}

// waitHealthy waits until the cluster is whole again: every NATS node
// healthy, the streams' replicas current, every service replica ready.
func waitHealthy(ctx context.Context, c *cluster.Cluster, js jetstream.JetStream) error {
	if err := c.WaitReady(ctx, 90*time.Second); err != nil {
		return err
	}
	return wait(ctx, 60*time.Second, "streams current on every node", func() error { return streamsCurrent(ctx, js) })
}

// wait polls check until it succeeds or timeout passes; the error says
// what was last seen.
func wait(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	return waitEvery(ctx, timeout, 250*time.Millisecond, what, check)
}

// waitEvery is wait with another interval between checks.
func waitEvery(ctx context.Context, timeout, interval time.Duration, what string, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}
