package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// pendingLimits counts the connections that have not authenticated yet, per
// client address and in total. A connection takes a slot before its
// handshake and gives it back when it authenticates or closes; the CONNECT
// timeout bounds how long it can hold one.
type pendingLimits struct {
	perPeer int // 0: no per-address limit
	total   int
	trusted []netip.Prefix // proxies whose X-Forwarded-For is believed
	refused func(limit string)

	mu     sync.Mutex
	n      int
	byPeer map[string]int
}

func newPendingLimits(perPeer, total int, trusted []netip.Prefix, refused func(limit string)) *pendingLimits {
	return &pendingLimits{perPeer: perPeer, total: total, trusted: trusted, refused: refused, byPeer: make(map[string]int)}
}

// acquire takes a slot for the client of r and returns its address, or
// reports false when a limit is reached.
func (p *pendingLimits) acquire(r *http.Request) (string, bool) {
	peer := clientAddress(r, p.trusted)
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

// clientAddress is the address the limits count the client of r under: the
// TCP peer, or, when the peer is one of the trusted proxies, the right-most
// address of X-Forwarded-For that is not a trusted proxy itself (each proxy
// appends the address it saw, so only what trusted proxies wrote can be
// believed; anything left of it may be forged by the client). A header
// that cannot be read counts the client under the last proxy that wrote it.
// An IPv6 client counts by its /64, since one host commonly has a whole
// /64 to pick addresses from.
func clientAddress(r *http.Request, trusted []netip.Prefix) string {
	addr, err := peerAddr(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if isTrusted(addr, trusted) {
		hops := forwardedFor(r.Header)
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// forwardedFor is every address of the request's X-Forwarded-For lines, in
// order.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(line, ",")...)
	}
	return hops
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the IP address of a RemoteAddr ("host:port").
func peerAddr(remoteAddr string) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err
}
