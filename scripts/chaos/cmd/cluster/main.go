// Command cluster is `make cluster`: the production topology on this
// machine (3 nats-server nodes with JetStream, a private PostgreSQL, 2
// replicas of each service, HAProxy in front on one port), in the
// foreground until Ctrl-C. It is the chaos suite's cluster (package
// cluster) without the faults.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/xpeditis/notify/scripts/chaos/cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8080", "where the proxy listens: the product's one origin (port 0: any free port)")
	root := flag.String("root", ".", "the repository")
	keep := flag.Bool("keep", false, "keep the work directory (logs, data) at exit")
	flag.Parse()
	abs, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, proxy, err := cluster.Up(ctx, cluster.Options{Root: abs, KeepDir: *keep}, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	env := filepath.Join(c.Dir, "client.env")
	if err := c.WriteClientEnv(env, proxy.URL); err != nil {
		return err
	}
	fmt.Printf(`
cluster is ready: 3 NATS nodes (JetStream, STREAM_REPLICAS=3), PostgreSQL, 2 replicas of each service, HAProxy in front
  one origin   %[1]s   (REST %[1]s/api/v1/notifications and %[1]s/api/v1/webhooks, OpenAPI %[1]s/api/v1/openapi.json and %[1]s/api/v1/webhooks/openapi.json, Socket.IO %[1]s/socket.io/, WebSocket %[4]s/ws)
  walkthrough  set -a; . %[2]s; set +a   (API, NATS_URL and JWT_SECRET for notifyctl and the README's walkthrough)
  logs         %[3]s
Ctrl-C stops everything.
`, proxy.URL, env, filepath.Join(c.Dir, "logs"), "ws"+strings.TrimPrefix(proxy.URL, "http"))
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}
