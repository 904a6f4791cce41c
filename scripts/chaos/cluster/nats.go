package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// NATSNode is one nats-server of the cluster, with JetStream.
type NATSNode struct {
	Name       string // server_name, as the JetStream API reports leaders
	ClientURL  string
	MonitorURL string
	*Proc
	iso *isolation // set on the node that can be partitioned
}

// Partitionable says whether the node can be cut off the network.
func (n *NATSNode) Partitionable() bool { return n.iso != nil }

// Cut isolates the node from the network; Heal undoes it.
func (n *NATSNode) Cut() error {
	if n.iso == nil {
		return fmt.Errorf("%s runs without its own network namespace", n.Name)
	}
	return n.iso.Cut()
}

// Heal reconnects a node cut by Cut.
func (n *NATSNode) Heal() error {
	if n.iso == nil {
		return nil
	}
	return n.iso.Heal()
}

// Healthy asks the node's monitoring endpoint whether JetStream is current.
func (n *NATSNode) Healthy(ctx context.Context) error {
	return httpOK(ctx, n.MonitorURL+"/healthz")
}

type natsAddrs struct {
	host               string // where the node listens
	client, cluster, m int
}

// startNATS writes one configuration file per node and starts the nodes.
// With iso set, the last node runs inside its network namespace.
func (c *Cluster) startNATS(bin string, count int, iso *isolation) error {
	addrs := make([]natsAddrs, count)
	for i := range addrs {
		host := "127.0.0.1"
		if iso != nil && i == count-1 {
			host = iso.NodeAddr.String()
		}
		ports, err := c.freePorts(3)
		if err != nil {
			return err
		}
		addrs[i] = natsAddrs{host: host, client: ports[0], m: ports[2], cluster: ports[1]}
	}
	clusterAddr := func(i int) string {
		if iso == nil {
			return "127.0.0.1"
		}
		if i == count-1 {
			return iso.NodeAddr.String()
		}
		return iso.HostAddr.String()
	}
	for i, a := range addrs {
		name := fmt.Sprintf("nats-%d", i+1)
		dir := filepath.Join(c.Dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var routes []string
		for j := range addrs {
			if j != i {
				routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats://%s:%d", clusterAddr(j), addrs[j].cluster)))
			}
		}
		conf := fmt.Sprintf(`server_name: %q
listen: "%s:%d"
http: "%s:%d"
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: "chaos"
  listen: "%s:%d"
  routes: [%s]
}
`, name, a.host, a.client, a.host, a.m, filepath.Join(dir, "jetstream"), clusterAddr(i), a.cluster, strings.Join(routes, ", "))
		confPath := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return err
		}
		spec := ProcSpec{Name: name, Path: bin, Args: []string{"-c", confPath}, LogPath: filepath.Join(c.Dir, "logs", name+".log")}
		node := &NATSNode{Name: name, ClientURL: fmt.Sprintf("nats://%s:%d", a.host, a.client), MonitorURL: fmt.Sprintf("http://%s:%d", a.host, a.m)}
		if iso != nil && i == count-1 {
			spec.Netns = iso.ns
			node.iso = iso
		}
		p, err := c.start(spec)
		if err != nil {
			return err
		}
		node.Proc = p
		c.NATS = append(c.NATS, node)
	}
	return nil
}

// NATSURL lists every node, as the services are given it.
func (c *Cluster) NATSURL() string {
	urls := make([]string, len(c.NATS))
	for i, n := range c.NATS {
		urls[i] = n.ClientURL
	}
	return strings.Join(urls, ",")
}

// NodeByName returns the node a JetStream API answer names.
func (c *Cluster) NodeByName(name string) *NATSNode {
	for _, n := range c.NATS {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// freePorts returns n ports the kernel says are free and that no earlier
// call handed out. A port is free only until a process listens on it, and
// the processes of a cluster start listening some time after they are
// started: without the record, the kernel could offer a port of a replica
// still starting to the next one, which then could not listen, while the
// checks of its address reached the other process (a dispatcher's URL
// answered by a notification-api).
func (c *Cluster) freePorts(n int) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.given == nil {
		c.given = make(map[int]bool)
	}
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100*n {
			return nil, fmt.Errorf("find a free port: the kernel keeps choosing ports already given to processes not yet listening")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		port := l.Addr().(*net.TCPAddr).Port
		if c.given[port] {
			continue
		}
		c.given[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// httpOK asks url and wants 200, within 2 s.
func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
