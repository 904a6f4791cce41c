package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ProxyConfig is the HAProxy configuration compose runs too: one origin
// for the REST APIs, Socket.IO and /ws, 404 for every other path.
const ProxyConfig = "deploy/compose/haproxy.cfg"

// Proxy is HAProxy in front of the services.
type Proxy struct {
	*Proc
	URL string // http://host:port, the product's one origin
}

// ProxyServerVar names the variable of ProxyConfig that holds the address
// of a service's replica (1 or 2): NOTIFICATION_API_1, ….
func ProxyServerVar(service string, replica int) string {
	return fmt.Sprintf("%s_%d", strings.ReplaceAll(strings.ToUpper(service), "-", "_"), replica)
}

// haproxyPath finds haproxy or says how to install it.
func haproxyPath() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("haproxy is not installed: on Debian or Ubuntu `sudo apt-get install haproxy`, on macOS `brew install haproxy`")
}

// StartProxy runs HAProxy with ProxyConfig on addr (host:port; port 0
// picks a free one) in front of the replicas, supervised and stopped with
// the cluster. Start it once the replicas are ready (WaitReady): HAProxy
// takes a server as up until its checks of /readyz fail, so a replica
// that is still starting would get requests.
func (c *Cluster) StartProxy(ctx context.Context, addr string) (*Proxy, error) {
	bin, err := haproxyPath()
	if err != nil {
		return nil, err
	}
	if c.opts.Replicas != 2 {
		return nil, fmt.Errorf("%s names 2 replicas of each service; the cluster runs %d", ProxyConfig, c.opts.Replicas)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("proxy address %q: %w", addr, err)
	}
	if port == "0" {
		ports, err := c.freePorts(1)
		if err != nil {
			return nil, err
		}
		port = fmt.Sprint(ports[0])
	}
	addr = net.JoinHostPort(host, port)
	env := []string{"PROXY_BIND=" + addr}
	for _, name := range ServiceNames {
		for i, r := range c.Services[name] {
			env = append(env, ProxyServerVar(name, i+1)+"="+strings.TrimPrefix(r.URL, "http://"))
		}
	}
	cfg := filepath.Join(c.opts.Root, ProxyConfig)
	check := exec.CommandContext(ctx, bin, "-c", "-q", "-f", cfg)
	check.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if out, err := check.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy -c -f %s: %w: %s", cfg, err, out)
	}
	p, err := c.start(ProcSpec{
		Name: "haproxy", Path: bin, Args: []string{"-db", "-f", cfg}, Env: env,
		LogPath:    filepath.Join(c.Dir, "logs", "haproxy.log"),
		StopSignal: syscall.SIGUSR1, StopWait: 5 * time.Second, // a soft stop
	})
	if err != nil {
		return nil, err
	}
	proxy := &Proxy{Proc: p, URL: "http://" + addr}
	if host == "" || host == "0.0.0.0" || host == "::" {
		proxy.URL = "http://127.0.0.1:" + port
	}
	// Any path answers once HAProxy serves: an unknown one with its 404.
	return proxy, poll(ctx, 10*time.Second, "HAProxy to answer", func() error {
		err := httpOK(ctx, proxy.URL+"/api/v1/openapi.json")
		if exits := p.Stats().Exits; err != nil && len(exits) > 0 {
			last := exits[len(exits)-1]
			return fmt.Errorf("haproxy exited (%s): %s", last.Status, last.LastLine)
		}
		return err
	})
}

// WriteClientEnv writes, readable by its owner only, the variables that
// notifyctl and the README's walkthrough need to use the cluster: API (the
// proxy's URL), NATS_URL and JWT_SECRET (so that the secret is never
// printed).
func (c *Cluster) WriteClientEnv(path, api string) error {
	content := fmt.Sprintf("API=%s\nNATS_URL=%s\nJWT_SECRET=%s\n", api, c.NATSURL(), c.jwtSecret)
	return os.WriteFile(path, []byte(content), 0o600)
}

// Up is `make cluster`: it checks that addr is free, starts the cluster,
// waits until every replica is ready and starts the proxy on addr. On
// error everything is stopped.
func Up(ctx context.Context, o Options, addr string) (*Cluster, *Proxy, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, fmt.Errorf("proxy address %q: %w", addr, err)
	} else if port != "0" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("the proxy cannot listen on %s (choose another address: make cluster CLUSTER_ADDR=127.0.0.1:9090): %w", addr, err)
		}
		ln.Close()
	}
	if _, err := haproxyPath(); err != nil {
		return nil, nil, err
	}
	c, err := Start(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(os.Stderr, "==> waiting for every NATS node and replica (logs in %s)\n", filepath.Join(c.Dir, "logs"))
	if err := c.WaitReady(ctx, 90*time.Second); err != nil {
		c.Close()
		return nil, nil, err
	}
	proxy, err := c.StartProxy(ctx, addr)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, proxy, nil
}
