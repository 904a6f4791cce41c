// Package ssrf keeps outbound webhook requests away from addresses an
// integrator must not reach through us: loopback, private, link-local
// (cloud metadata lives there), CGNAT, multicast, unspecified and reserved
// ranges, and IPv6 tunnels (6to4, Teredo) to IPv4 addresses. The check runs
// in the dialer's Control hook, on the address being connected, so neither
// DNS answers nor redirects can get around it.
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by every refusal.
var ErrBlocked = errors.New("destination address is not allowed")

// blockedPrefixes are refused besides what netip's predicates classify.
var blockedPrefixes = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 (deprecated)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4 address
// in their last 32 bits, which is checked instead.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// 6to4 (2002::/16) and Teredo (2001::/32) addresses carry an IPv4 address
// that a host with such a tunnel sends to. They are refused whole, not
// judged by that IPv4 address as NAT64 is: both mechanisms are deprecated
// (RFC 7526; Teredo is off by default where it still exists), so no webhook
// receiver needs them, and where their packets end up depends on relays and
// tunnel interfaces we cannot see (Teredo also names a server, a second
// IPv4 address). A refusal cannot be gotten wrong by a decoding mistake. An
// operator who needs one lists it in the allowances.
var (
	sixToFour = netip.MustParsePrefix("2002::/16")
	teredo    = netip.MustParsePrefix("2001::/32")
)

// tunnelled says why a 6to4 or Teredo address is refused, naming the IPv4
// address it tunnels to, or "" for any other address.
func tunnelled(addr netip.Addr) string {
	b := addr.As16()
	switch {
	case sixToFour.Contains(addr): // the IPv4 address is bits 16 to 48
		return fmt.Sprintf("6to4 (an IPv6 tunnel to %s)", netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	case teredo.Contains(addr): // the client's IPv4 address is the last 32 bits, inverted
		return fmt.Sprintf("Teredo (an IPv6 tunnel to %s)", netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
	}
	return ""
}

// Classify says why addr is refused, or "" when it is a public unicast
// address. IPv4-mapped and NAT64 IPv6 addresses are judged by their IPv4;
// 6to4 and Teredo addresses are refused.
func Classify(addr netip.Addr) string {
	addr = addr.WithZone("")
	if nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid address"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr == netip.AddrFrom4([4]byte{169, 254, 169, 254}) || addr == netip.MustParseAddr("fd00:ec2::254"):
		return "cloud metadata"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsPrivate():
		return "private"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	if why := tunnelled(addr); why != "" {
		return why
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(addr) {
			return b.why
		}
	}
	return ""
}

// Guard decides which addresses outbound requests may reach.
type Guard struct {
	// AllowPrivate lifts every restriction (development only).
	AllowPrivate bool
	// Allow lists prefixes an operator trusts despite their class (an
	// internal ERP, or a test receiver on 127.0.0.1).
	Allow []netip.Prefix
}

// Check returns nil when addr may be dialled, else an error wrapping
// ErrBlocked that names the address class.
func (g Guard) Check(addr netip.Addr) error {
	if g.AllowPrivate {
		return nil
	}
	unmapped := addr.WithZone("").Unmap()
	for _, p := range g.Allow {
		if p.Contains(unmapped) {
			return nil
		}
	}
	if why := Classify(addr); why != "" {
		return fmt.Errorf("%w: %s is %s", ErrBlocked, unmapped, why)
	}
	return nil
}

// Control is a net.Dialer Control hook enforcing the guard on the address
// about to be connected.
func (g Guard) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrBlocked, address)
	}
	return g.Check(ap.Addr())
}

// Lookup resolves a host name to addresses.
type Lookup func(ctx context.Context, host string) ([]netip.Addr, error)

// Dialer returns a DialContext for http.Transport that resolves with lookup
// (nil: the system resolver) and connects only to allowed addresses.
func (g Guard) Dialer(connectTimeout time.Duration, lookup Lookup) func(ctx context.Context, network, address string) (net.Conn, error) {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, Control: g.Control}
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else if addrs, err = lookup(ctx, host); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		var firstErr error
		for _, a := range addrs {
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("resolve %s: no addresses", host)
		}
		return nil, firstErr
	}
}

// CheckURL refuses, at create and update time, targets that are plainly not
// allowed: a literal address of a refused class, or a localhost name. Other
// names are judged when they are dialled.
func (g Guard) CheckURL(u *url.URL) error {
	if g.AllowPrivate {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback name", ErrBlocked, host)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return g.Check(addr)
	}
	return nil
}
