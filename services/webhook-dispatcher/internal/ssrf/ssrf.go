// Package ssrf keeps outbound webhook requests away from addresses an
// integrator must not reach through us: every special-purpose block of the
// IANA registries (loopback, private, link-local where cloud metadata
// lives, CGNAT, documentation, benchmarking, …), multicast, reserved and
// deprecated ranges, and IPv6 tunnels (6to4, Teredo) to IPv4 addresses
// (Table). The check runs
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

// Verdicts of the table.
const (
	// Refused: no webhook receiver lives here.
	Refused = iota
	// ByIPv4: the address stands for the IPv4 address in its last 32 bits,
	// which is judged instead.
	ByIPv4
)

// Block is one row of the table: a prefix, what it is, where that comes
// from, and the verdict. Why is the phrase a refusal gives.
type Block struct {
	Prefix  netip.Prefix
	Why     string
	Source  string // registry and RFC
	Verdict int
}

func block(prefix, why, source string) Block {
	return Block{Prefix: netip.MustParsePrefix(prefix), Why: why, Source: source}
}

// Table is every address block outbound requests are refused, or judged by
// their IPv4 address. It holds every entry of the IANA IPv4 and IPv6
// Special-Purpose Address Registries (iana-ipv4-special-registry,
// iana-ipv6-special-registry, as of 2025), the multicast and reserved
// blocks of the IPv4 and IPv6 Address Space registries, and deprecated
// forms. Every entry is refused, even the few the registries call
// globally reachable (anycast service addresses, AS112, AMT, ORCHIDv2,
// drone tags): no webhook receiver lives at one. The exceptions are
// IPv4-mapped and well-known NAT64 addresses, which stand for a public or
// private IPv4 address and are judged as that address. The most specific
// matching entry decides.
var Table = []Block{
	// IPv4 Special-Purpose Address Registry.
	block("0.0.0.0/8", "this-network", "IPv4 special-purpose, RFC 791"),
	block("0.0.0.0/32", "unspecified", "IPv4 special-purpose (this host on this network), RFC 1122"),
	block("10.0.0.0/8", "private", "IPv4 special-purpose (private-use), RFC 1918"),
	block("100.64.0.0/10", "carrier-grade NAT", "IPv4 special-purpose (shared address space), RFC 6598"),
	block("127.0.0.0/8", "loopback", "IPv4 special-purpose, RFC 1122"),
	block("169.254.0.0/16", "link-local", "IPv4 special-purpose, RFC 3927"),
	block("172.16.0.0/12", "private", "IPv4 special-purpose (private-use), RFC 1918"),
	block("192.0.0.0/24", "IETF protocol assignments", "IPv4 special-purpose, RFC 6890"),
	block("192.0.0.0/29", "IPv4 service continuity prefix", "IPv4 special-purpose, RFC 7335"),
	block("192.0.0.8/32", "IPv4 dummy address", "IPv4 special-purpose, RFC 7600"),
	block("192.0.0.9/32", "port control protocol anycast", "IPv4 special-purpose, RFC 7723"),
	block("192.0.0.10/32", "TURN anycast", "IPv4 special-purpose, RFC 8155"),
	block("192.0.0.170/31", "NAT64/DNS64 discovery", "IPv4 special-purpose, RFC 7050, RFC 8880"),
	block("192.0.2.0/24", "documentation", "IPv4 special-purpose (TEST-NET-1), RFC 5737"),
	block("192.31.196.0/24", "AS112", "IPv4 special-purpose (AS112-v4), RFC 7535"),
	block("192.52.193.0/24", "AMT", "IPv4 special-purpose, RFC 7450"),
	block("192.88.99.0/24", "6to4 relay anycast (deprecated)", "IPv4 special-purpose, RFC 7526"),
	block("192.88.99.2/32", "6a44 relay anycast", "IPv4 special-purpose, RFC 6751"),
	block("192.168.0.0/16", "private", "IPv4 special-purpose (private-use), RFC 1918"),
	block("192.175.48.0/24", "AS112", "IPv4 special-purpose (direct delegation AS112 service), RFC 7534"),
	block("198.18.0.0/15", "benchmarking", "IPv4 special-purpose, RFC 2544"),
	block("198.51.100.0/24", "documentation", "IPv4 special-purpose (TEST-NET-2), RFC 5737"),
	block("203.0.113.0/24", "documentation", "IPv4 special-purpose (TEST-NET-3), RFC 5737"),
	block("240.0.0.0/4", "reserved", "IPv4 special-purpose, RFC 1112"),
	block("255.255.255.255/32", "broadcast", "IPv4 special-purpose (limited broadcast), RFC 919, RFC 8190"),
	// IPv4 Address Space registry.
	block("224.0.0.0/4", "multicast", "IPv4 address space, RFC 5771"),
	// Cloud metadata services, named so that a refusal says what was aimed at.
	block("169.254.169.254/32", "cloud metadata", "link-local; AWS, GCP, Azure, OpenStack"),
	block("fd00:ec2::254/128", "cloud metadata", "unique-local; AWS"),

	// IPv6 Special-Purpose Address Registry.
	block("::/128", "unspecified", "IPv6 special-purpose, RFC 4291"),
	block("::1/128", "loopback", "IPv6 special-purpose, RFC 4291"),
	{Prefix: netip.MustParsePrefix("::ffff:0:0/96"), Why: "IPv4-mapped", Source: "IPv6 special-purpose, RFC 4291", Verdict: ByIPv4},
	{Prefix: netip.MustParsePrefix("64:ff9b::/96"), Why: "NAT64", Source: "IPv6 special-purpose (IPv4-IPv6 translation), RFC 6052", Verdict: ByIPv4},
	block("64:ff9b:1::/48", "local-use NAT64", "IPv6 special-purpose, RFC 8215"),
	block("100::/64", "discard-only", "IPv6 special-purpose, RFC 6666"),
	block("100:0:0:1::/64", "dummy IPv6 prefix", "IPv6 special-purpose, RFC 9780"),
	block("2001::/23", "IETF protocol assignments", "IPv6 special-purpose, RFC 2928"),
	block("2001::/32", "Teredo", "IPv6 special-purpose, RFC 4380, RFC 8190"),
	block("2001:1::1/128", "port control protocol anycast", "IPv6 special-purpose, RFC 7723"),
	block("2001:1::2/128", "TURN anycast", "IPv6 special-purpose, RFC 8155"),
	block("2001:1::3/128", "DNS-SD service registration anycast", "IPv6 special-purpose, RFC 9665"),
	block("2001:2::/48", "benchmarking", "IPv6 special-purpose, RFC 5180"),
	block("2001:3::/32", "AMT", "IPv6 special-purpose, RFC 7450"),
	block("2001:4:112::/48", "AS112", "IPv6 special-purpose (AS112-v6), RFC 7535"),
	block("2001:10::/28", "ORCHID (deprecated)", "IPv6 special-purpose, RFC 4843"),
	block("2001:20::/28", "ORCHIDv2", "IPv6 special-purpose, RFC 7343"),
	block("2001:30::/28", "drone remote ID tags", "IPv6 special-purpose (DETs), RFC 9374"),
	block("2001:db8::/32", "documentation", "IPv6 special-purpose, RFC 3849"),
	block("2002::/16", "6to4", "IPv6 special-purpose, RFC 3056"),
	block("2620:4f:8000::/48", "AS112", "IPv6 special-purpose (direct delegation AS112 service), RFC 7534"),
	block("3fff::/20", "documentation", "IPv6 special-purpose, RFC 9637"),
	block("5f00::/16", "SRv6 SIDs", "IPv6 special-purpose, RFC 9602"),
	block("fc00::/7", "private", "IPv6 special-purpose (unique-local), RFC 4193"),
	block("fe80::/10", "link-local", "IPv6 special-purpose (link-local unicast), RFC 4291"),
	// IPv6 Address Space registry: outside 2000::/3 nothing is assigned for
	// global unicast.
	block("::/8", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("::/96", "IPv4-compatible IPv6 (deprecated)", "IPv6 address space, RFC 4291"),
	block("::ffff:0:0:0/96", "IPv4-translated IPv6 (deprecated)", "RFC 2765, obsoleted by RFC 6145"),
	block("100::/8", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("200::/7", "reserved by IETF", "IPv6 address space, RFC 4048"),
	block("400::/6", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("800::/5", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("1000::/4", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("4000::/3", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("6000::/3", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("8000::/3", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("a000::/3", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("c000::/3", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("e000::/4", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("f000::/5", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("f800::/6", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("fe00::/9", "reserved by IETF", "IPv6 address space, RFC 4291"),
	block("fec0::/10", "site-local (deprecated)", "IPv6 address space, RFC 3879"),
	block("ff00::/8", "multicast", "IPv6 address space, RFC 4291"),
}

// match returns the most specific entry of the table holding addr.
func match(addr netip.Addr) (Block, bool) {
	var best Block
	found := false
	for _, b := range Table {
		if b.Prefix.Contains(addr) && (!found || b.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = b, true
		}
	}
	return best, found
}

// tunnelled names the IPv4 address a 6to4 or Teredo address tunnels to.
// Both are refused whole, not judged by that address as NAT64 is: both
// mechanisms are deprecated (RFC 7526; Teredo is off by default where it
// still exists), so no webhook receiver needs them, and where their packets
// end up depends on relays and tunnel interfaces we cannot see (Teredo also
// names a server, a second IPv4 address). An operator who needs one lists
// it in the allowances.
func tunnelled(b Block, addr netip.Addr) string {
	a := addr.As16()
	switch b.Why {
	case "6to4": // the IPv4 address is bits 16 to 48
		return fmt.Sprintf("6to4 (an IPv6 tunnel to %s)", netip.AddrFrom4([4]byte{a[2], a[3], a[4], a[5]}))
	case "Teredo": // the client's IPv4 address is the last 32 bits, inverted
		return fmt.Sprintf("Teredo (an IPv6 tunnel to %s)", netip.AddrFrom4([4]byte{^a[12], ^a[13], ^a[14], ^a[15]}))
	}
	return b.Why
}

// Classify says why addr is refused, or "" when it may be dialled.
// IPv4-mapped and NAT64 IPv6 addresses are judged by their IPv4 address.
func Classify(addr netip.Addr) string {
	addr = addr.WithZone("")
	if !addr.IsValid() {
		return "invalid address"
	}
	b, ok := match(addr)
	if !ok {
		return ""
	}
	if b.Verdict == ByIPv4 {
		a := addr.As16()
		return Classify(netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]}))
	}
	return tunnelled(b, addr)
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
