package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xpeditis/notify/scripts/chaos/cluster"
)

// Fault is one thing done to the cluster while events flow.
type Fault struct {
	Kind    string // sigkill, sigterm, nats-leader, postgres-stop, partition
	Service string // for sigkill and sigterm
}

// Fault kinds.
const (
	SigKill      = "sigkill"
	SigTerm      = "sigterm"
	NATSLeader   = "nats-leader"
	PostgresStop = "postgres-stop"
	Partition    = "partition"
)

// How long the faults last.
const (
	natsDown     = 5 * time.Second  // a killed NATS node stays down this long
	postgresDown = 10 * time.Second // PostgreSQL stopped
	cutFor       = 15 * time.Second // a NATS node partitioned
)

func (f Fault) String() string {
	switch f.Kind {
	case SigKill:
		return "kill -9 " + f.Service
	case SigTerm:
		return "SIGTERM " + f.Service
	case NATSLeader:
		return "kill -9 EVENTS leader"
	case PostgresStop:
		return fmt.Sprintf("PostgreSQL stop %s", postgresDown)
	case Partition:
		return fmt.Sprintf("partition NATS node %s", cutFor)
	}
	return f.Kind
}

// ParseFaults reads "sigkill:notification-api,nats-leader,…".
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, svc, _ := strings.Cut(item, ":")
		f := Fault{Kind: kind, Service: svc}
		switch kind {
		case SigKill, SigTerm:
			known := false
			for _, n := range cluster.ServiceNames {
				known = known || n == svc
			}
			if !known {
				return nil, fmt.Errorf("fault %q: name a service: %s", item, strings.Join(cluster.ServiceNames, ", "))
			}
		case NATSLeader, PostgresStop, Partition:
		default:
			return nil, fmt.Errorf("fault %q: unknown kind (sigkill:<service>, sigterm:<service>, nats-leader, postgres-stop, partition)", item)
		}
		out = append(out, f)
	}
	return out, nil
}

// Full and short suites: the full one does each kind to each service; the
// short one each kind once.
const (
	FullFaults = "sigkill:notification-api,sigkill:realtime-gateway,sigkill:webhook-dispatcher," +
		"sigterm:notification-api,sigterm:realtime-gateway,sigterm:webhook-dispatcher," +
		"nats-leader,postgres-stop,partition"
	ShortFaults = "sigkill:realtime-gateway,sigterm:notification-api,nats-leader,postgres-stop,partition"
)

// inject does the fault and returns once it is over (the killed process
// may still be starting again). It says what it hit.
func inject(ctx context.Context, c *cluster.Cluster, nc *nats.Conn, js jetstream.JetStream, f Fault, n int) (string, error) {
	switch f.Kind {
	case SigKill, SigTerm:
		replicas := c.Services[f.Service]
		r := replicas[n%len(replicas)]
		sig := syscall.SIGKILL
		if f.Kind == SigTerm {
			sig = syscall.SIGTERM
		}
		before := r.Stats().Starts
		if err := r.Signal(sig, 0); err != nil {
			return r.Name(), err
		}
		// Over when the replica has exited and been started again: a
		// draining replica still answers /readyz.
		return r.Name(), wait(ctx, time.Minute, r.Name()+" started again", func() error {
			if r.Stats().Starts == before {
				return fmt.Errorf("not exited yet")
			}
			return nil
		})
	case NATSLeader:
		info, err := streamInfo(ctx, js, "EVENTS")
		if err != nil {
			return "", err
		}
		node := c.NodeByName(info.Cluster.Leader)
		if node == nil {
			return "", fmt.Errorf("EVENTS leader %q is not a node of the cluster", info.Cluster.Leader)
		}
		if err := node.Signal(syscall.SIGKILL, natsDown); err != nil {
			return "", err
		}
		return node.Name + fmt.Sprintf(" (down %s)", natsDown), sleep(ctx, natsDown)
	case PostgresStop:
		// SIGINT is PostgreSQL's fast shutdown (pg_ctl stop -m fast).
		if err := c.Postgres.Signal(syscall.SIGINT, postgresDown); err != nil {
			return "", err
		}
		return "postgres", sleep(ctx, postgresDown)
	case Partition:
		var node *cluster.NATSNode
		for _, n := range c.NATS {
			if n.Partitionable() {
				node = n
			}
		}
		if node == nil {
			return "", fmt.Errorf("no NATS node runs in its own network namespace (needs root)")
		}
		// A partitioned leader is the harder case: its clients and its
		// followers lose it at once. Ask for the move; if JetStream
		// declines, the node is cut as it is and the table says what it led.
		preferLeader(ctx, nc, "EVENTS", node.Name)
		led := leads(ctx, js, node.Name)
		if err := node.Cut(); err != nil {
			return "", err
		}
		err := sleep(ctx, cutFor)
		if herr := node.Heal(); herr != nil {
			return "", herr
		}
		return fmt.Sprintf("%s (leading %s)", node.Name, led), err
	}
	return "", fmt.Errorf("unknown fault %s", f.Kind)
}

// preferLeader asks the stream's leader to step down in favour of node and
// waits up to 10 s for node to lead.
func preferLeader(ctx context.Context, nc *nats.Conn, stream, node string) {
	req, _ := json.Marshal(map[string]any{"placement": map[string]any{"preferred": node}})
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	_ = wait(ctx, 10*time.Second, stream+" led by "+node, func() error {
		info, err := streamInfo(ctx, js, stream)
		if err != nil {
			return err
		}
		if info.Cluster.Leader == node {
			return nil
		}
		_, _ = nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
		time.Sleep(time.Second) // an election takes a moment; asking again at once would start another
		return fmt.Errorf("led by %s", info.Cluster.Leader)
	})
}

// leads names the streams whose leader is node.
func leads(ctx context.Context, js jetstream.JetStream, node string) string {
	var out []string
	for _, s := range []string{"EVENTS", "NOTIFY"} {
		if info, err := streamInfo(ctx, js, s); err == nil && info.Cluster != nil && info.Cluster.Leader == node {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "no stream"
	}
	return strings.Join(out, ", ")
}

func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", name, err)
	}
	if info.Cluster == nil {
		return nil, fmt.Errorf("stream %s: no cluster information", name)
	}
	return info, nil
}

// streamsCurrent checks that the streams have a leader and every replica
// is current.
func streamsCurrent(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{"EVENTS", "NOTIFY"} {
		info, err := streamInfo(ctx, js, name)
		if err != nil {
			return err
		}
		if info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader", name)
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return fmt.Errorf("stream %s: replica %s is not current", name, p.Name)
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
