package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// pendingLimits counts the connections that have not authenticated yet, per
// client address and in total. A connection takes a slot before its
// handshake and gives it back when it authenticates or closes; the CONNECT
// timeout bounds how long it can hold one.
type pendingLimits struct {
	perPeer int // 0: no per-address limit
	total   int
	refused func(limit string)

	mu     sync.Mutex
	n      int
	byPeer map[string]int
}

func newPendingLimits(perPeer, total int, refused func(limit string)) *pendingLimits {
	return &pendingLimits{perPeer: perPeer, total: total, refused: refused, byPeer: make(map[string]int)}
}

// acquire takes a slot for the client of r and returns its address, or
// reports false when a limit is reached.
func (p *pendingLimits) acquire(r *http.Request) (string, bool) {
	peer := peerOf(r.RemoteAddr)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.n >= p.total:
		p.refused("total")
		return "", false
	case p.perPeer > 0 && p.byPeer[peer] >= p.perPeer:
		p.refused("per_address")
		return "", false
	}
	p.n++
	p.byPeer[peer]++
	return peer, true
}

// release gives back a slot acquire returned.
func (p *pendingLimits) release(peer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if p.byPeer[peer] <= 1 {
		delete(p.byPeer, peer)
	} else {
		p.byPeer[peer]--
	}
}

// count is how many slots are taken.
func (p *pendingLimits) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// peerOf is the address the limits count a client under: the TCP peer (the
// gateway trusts no forwarding header), an IPv6 client by its /64, since
// one host commonly has a whole /64 to pick addresses from.
func peerOf(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
