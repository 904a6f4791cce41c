// Package cluster runs the production topology of Xpeditis Notify on one
// machine: a nats-server cluster with JetStream, a private PostgreSQL, and
// each service's binary in several replicas, every process supervised
// (restarted when it exits, as Kubernetes would) and killed with the
// cluster. The chaos suite injects faults into it; a `make cluster` can run
// it as it is, with a proxy in front.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/xpeditis/notify/pkg/auth"
)

// The services, in the order they are listed.
const (
	NotificationAPI   = "notification-api"
	RealtimeGateway   = "realtime-gateway"
	WebhookDispatcher = "webhook-dispatcher"
)

// ServiceNames lists the services.
var ServiceNames = []string{NotificationAPI, RealtimeGateway, WebhookDispatcher}

// Options of a cluster.
type Options struct {
	Root      string // the repository (bin/, .tools/)
	NATSNodes int    // 3 when zero
	Replicas  int    // of each service; 2 when zero
	// Partitionable runs the last NATS node in its own network namespace
	// so that Cut can isolate it (needs root and iproute2).
	Partitionable bool
	Env           []string // added to every service's environment
	KeepDir       bool     // leave the work directory (logs, data) at Close
}

// Replica is one process of a service.
type Replica struct {
	*Proc
	URL string // http://127.0.0.1:port
}

// Ready asks the replica's /readyz.
func (r *Replica) Ready(ctx context.Context) error { return httpOK(ctx, r.URL+"/readyz") }

// Cluster is a running topology.
type Cluster struct {
	Dir      string
	NATS     []*NATSNode
	Postgres *Postgres
	Services map[string][]*Replica
	// Gateway balances connections over the realtime-gateway replicas.
	Gateway *Balancer

	jwtSecret string
	opts      Options
	iso       *isolation
	mu        sync.Mutex
	procs     []*Proc
	given     map[int]bool // ports handed out by freePorts, under mu
}

// Start builds the binaries, installs nats-server and starts everything.
// The services are started together, as a first roll-out starts them; Start
// returns once the processes are launched (see WaitReady). On error,
// everything already started is stopped.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.NATSNodes == 0 {
		o.NATSNodes = 3
	}
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if err := Build(ctx, o.Root); err != nil {
		return nil, err
	}
	natsBin, err := NATSServer(ctx, o.Root)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "notify-cluster-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as another user and must reach its data directory.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, Services: map[string][]*Replica{}, opts: o, jwtSecret: randomHex(32)}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		return c, err
	}
	if o.Partitionable {
		if c.iso, err = newIsolation(strconv.Itoa(os.Getpid() % 100000)); err != nil {
			return c, fmt.Errorf("network namespace for the partitionable NATS node: %w", err)
		}
	}
	if err := c.startNATS(natsBin, o.NATSNodes, c.iso); err != nil {
		return c, err
	}
	if err := c.startPostgres(ctx); err != nil {
		return c, err
	}
	if err := c.startServices(o); err != nil {
		return c, err
	}
	c.Gateway, err = newBalancer(func() []string {
		var addrs []string
		for _, r := range c.Services[RealtimeGateway] {
			addrs = append(addrs, r.URL[len("http://"):])
		}
		return addrs
	})
	return c, err
}

func (c *Cluster) startServices(o Options) error {
	keys := "chaos:" + base64.StdEncoding.EncodeToString(randomBytes(32))
	for _, name := range ServiceNames {
		for i := 1; i <= o.Replicas; i++ {
			ports, err := c.freePorts(1)
			if err != nil {
				return err
			}
			addr := "127.0.0.1:" + strconv.Itoa(ports[0])
			env := []string{
				"NATS_URL=" + c.NATSURL(),
				"DATABASE_URL=" + c.Postgres.URL,
				"HTTP_ADDR=" + addr,
				"JWT_SECRET=" + c.jwtSecret,
				"STREAM_REPLICAS=" + strconv.Itoa(min(3, len(c.NATS))),
				"LOG_LEVEL=info",
			}
			switch name {
			case WebhookDispatcher:
				env = append(env, "WEBHOOK_SECRETS_KEYS="+keys, "WEBHOOK_ALLOW_PRIVATE_TARGETS=true")
			case RealtimeGateway:
				// HAProxy, on this machine, appends each client's
				// address to X-Forwarded-For (haproxy.cfg).
				env = append(env, "GATEWAY_TRUSTED_PROXIES=127.0.0.1")
			}
			env = append(env, o.Env...)
			replica := fmt.Sprintf("%s-%d", name, i)
			p, err := c.start(ProcSpec{
				Name: replica, Path: filepath.Join(o.Root, "bin", name), Env: env,
				LogPath: filepath.Join(c.Dir, "logs", replica+".log"),
			})
			if err != nil {
				return err
			}
			c.Services[name] = append(c.Services[name], &Replica{Proc: p, URL: "http://" + addr})
		}
	}
	return nil
}

// start launches a supervised process and remembers it for Close.
func (c *Cluster) start(spec ProcSpec) (*Proc, error) {
	p := newProc(spec)
	started := make(chan error, 1)
	go p.supervise(started)
	if err := <-started; err != nil {
		<-p.done
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// Replicas lists every service replica.
func (c *Cluster) Replicas() []*Replica {
	var out []*Replica
	for _, name := range ServiceNames {
		out = append(out, c.Services[name]...)
	}
	return out
}

// Procs lists every supervised process.
func (c *Cluster) Procs() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Proc(nil), c.procs...)
}

// WaitReady waits until every NATS node is healthy and every replica
// answers /readyz.
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, "every NATS node healthy and every replica ready", func() error {
		var errs []error
		for _, n := range c.NATS {
			if err := n.Healthy(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			}
		}
		for _, r := range c.Replicas() {
			if err := r.Ready(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.Name(), err))
			}
		}
		return errors.Join(errs...)
	})
}

// Token mints a JWT the services accept.
func (c *Cluster) Token(user, org, role string, ttl time.Duration) (string, error) {
	return auth.Mint(c.jwtSecret, auth.MintOptions{UserID: user, OrganizationID: org, Role: role, TTL: ttl})
}

// Close stops every process (PostgreSQL gracefully, the rest with
// SIGKILL), removes the network namespace and, unless KeepDir, the work
// directory.
func (c *Cluster) Close() {
	if c.Gateway != nil {
		c.Gateway.Close()
	}
	var wg sync.WaitGroup
	for _, p := range c.Procs() {
		wg.Go(p.close)
	}
	wg.Wait()
	if c.iso != nil {
		c.iso.remove()
	}
	if !c.opts.KeepDir {
		_ = os.RemoveAll(c.Dir)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
