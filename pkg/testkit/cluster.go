package testkit

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is an in-process NATS cluster with JetStream, every node on
// loopback with its store in a temporary directory.
type Cluster struct {
	Servers []*server.Server
	URL     string // every node's client URL, comma-separated, as NATS_URL takes them
}

// StartCluster starts n nodes at once and returns without waiting for them
// to meet or to elect a JetStream leader: what a fresh deployment starting
// all at once looks like to the services. The nodes stop at cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	// One call: two could return the same port, free again between them.
	ports := freePorts(t, 2*n)
	clientPorts, routePorts := ports[:n], ports[n:]
	routes := make([]*url.URL, n)
	for i, p := range routePorts {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	c := &Cluster{}
	var urls []string
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("node-%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "test-cluster", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     routes,
			// Every node knows every route; none needs to learn them.
			JetStreamMaxMemory: 64 << 20,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("cluster node %d: %v", i+1, err)
		}
		t.Cleanup(srv.Shutdown)
		go srv.Start()
		c.Servers = append(c.Servers, srv)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	c.URL = strings.Join(urls, ",")
	return c
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}
