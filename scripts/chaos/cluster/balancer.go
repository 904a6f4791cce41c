package cluster

import (
	"io"
	"net"
	"sync"
	"time"
)

// Balancer spreads TCP connections over the replicas of a service, as a
// Kubernetes Service does: each new connection goes to the next replica
// that accepts it. Clients of a replica that dies reconnect through it and
// land on a live one.
type Balancer struct {
	ln       net.Listener
	backends func() []string

	mu     sync.Mutex
	next   int
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// maxBalancedConns bounds the connections one balancer holds.
const maxBalancedConns = 4096

func newBalancer(backends func() []string) (*Balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Balancer{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	b.wg.Go(b.serve)
	return b, nil
}

// Addr is where clients connect.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

func (b *Balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if !b.track(c) {
			c.Close()
			continue
		}
		b.wg.Go(func() { b.proxy(c) })
	}
}

func (b *Balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.conns) >= maxBalancedConns {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *Balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.conns, c)
		c.Close()
	}
}

func (b *Balancer) dial() net.Conn {
	addrs := b.backends()
	b.mu.Lock()
	start := b.next
	b.next++
	b.mu.Unlock()
	for i := range addrs {
		if up, err := net.DialTimeout("tcp", addrs[(start+i)%len(addrs)], time.Second); err == nil {
			return up
		}
	}
	return nil
}

func (b *Balancer) proxy(down net.Conn) {
	up := b.dial()
	if up == nil || !b.track(up) {
		if up != nil {
			up.Close()
		}
		b.untrack(down)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, down)
	go pipe(down, up)
	<-done // either side closing ends both, as a reset would
	b.untrack(up, down)
	<-done
}

// Close stops accepting and cuts every connection.
func (b *Balancer) Close() {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.ln.Close()
	b.wg.Wait()
}
