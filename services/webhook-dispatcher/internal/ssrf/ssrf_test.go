package ssrf

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// Every entry of the table is refused (or judged by its IPv4 address) at
// its first, last and a middle address, with the reason of the most
// specific entry holding that address.
func TestEveryEntryOfTheTable(t *testing.T) {
	for _, b := range Table {
		t.Run(b.Prefix.String()+" "+b.Why, func(t *testing.T) {
			for _, addr := range []netip.Addr{b.Prefix.Addr(), middle(b.Prefix), last(b.Prefix)} {
				want, _ := match(addr)
				if !b.Prefix.Contains(addr) {
					t.Fatalf("test address %s is outside %s", addr, b.Prefix)
				}
				got := Classify(addr)
				switch {
				case want.Verdict == ByIPv4:
					a := addr.As16()
					if v4 := Classify(netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]})); got != v4 {
						t.Errorf("%s: %q, want what its IPv4 address gets: %q", addr, got, v4)
					}
				case got == "":
					t.Errorf("%s (%s, %s) is allowed, want refused", addr, b.Why, b.Source)
				case !strings.HasPrefix(got, want.Why):
					t.Errorf("%s: refused as %q, want %q", addr, got, want.Why)
				}
			}
			if b.Verdict == ByIPv4 {
				for v4, refused := range map[string]bool{"8.8.8.8": false, "127.0.0.1": true, "10.1.2.3": true, "169.254.169.254": true} {
					a, p := b.Prefix.Addr().As16(), netip.MustParseAddr(v4).As4()
					copy(a[12:], p[:])
					if got := Classify(netip.AddrFrom16(a)); (got != "") != refused {
						t.Errorf("%s (%s of %s): %q, refused should be %v", netip.AddrFrom16(a), b.Why, v4, got, refused)
					}
				}
			}
		})
	}
}

// middle is the address halfway through p; last its last address.
func middle(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	if p.Bits() < len(a)*8 {
		a[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	}
	addr, _ := netip.AddrFromSlice(a)
	return addr
}

func last(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	addr, _ := netip.AddrFromSlice(a)
	return addr
}

// The blocks an audit found allowed, and the usual ones, named here
// independently of the table.
func TestClassify(t *testing.T) {
	refused := map[string]string{
		"127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback", "10.0.0.1": "private",
		"172.16.5.4": "private", "192.168.1.1": "private", "fd12::1": "private", "169.254.169.254": "cloud metadata",
		"169.254.1.1": "link-local", "fe80::1": "link-local", "100.64.0.1": "carrier-grade NAT", "224.0.0.1": "multicast",
		"ff02::1": "multicast", "0.0.0.0": "unspecified", "::": "unspecified", "::ffff:127.0.0.1": "loopback",
		"::ffff:10.1.2.3": "private", "64:ff9b::a00:1": "private", "fd00:ec2::254": "cloud metadata",
		"255.255.255.255": "broadcast", "240.0.0.1": "reserved",
		// 6to4 and Teredo tunnel to an IPv4 address; they are refused whole,
		// whatever that address is.
		"2002:7f00:1::": "6to4", "2002:a9fe:a9fe::": "6to4", "2002:808:808::1": "6to4",
		"2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo", "2001:0:4136:e378:8000:63bf:f7f7:f7f7": "Teredo",
		// IPv4-compatible (deprecated) and local-use NAT64 forms.
		"::7f00:1": "IPv4-compatible", "::a9fe:a9fe": "IPv4-compatible", "64:ff9b:1::7f00:1": "local-use NAT64",
		// Found allowed by the audit of issue 8.
		"3fff::1": "documentation", "3fff:fff:ffff::1": "documentation", "2001:2::1": "benchmarking",
		"fec0::1": "site-local", "::ffff:0:7f00:1": "IPv4-translated", "::ffff:0:808:808": "IPv4-translated",
		"192.88.99.1": "6to4 relay anycast", "192.88.99.2": "6a44 relay anycast",
		// Others of the registries the old list missed.
		"192.31.196.1": "AS112", "192.52.193.1": "AMT", "192.175.48.1": "AS112", "5f00::1": "SRv6",
		"2001:3::1": "AMT", "2001:20::1": "ORCHIDv2", "2620:4f:8000::1": "AS112", "4000::1": "reserved",
	}
	for s, why := range refused {
		if got := Classify(netip.MustParseAddr(s)); !strings.Contains(got, why) {
			t.Errorf("%s: %q, want refused as %s", s, got, why)
		}
	}
	allowed := []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2a00:1450:4007:80e::200e", "3fff:1000::1", "192.88.98.1", "192.0.1.1"}
	for _, s := range allowed {
		if why := Classify(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s is refused as %s, want allowed", s, why)
		}
	}
}

func TestGuardAllowances(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	if err := (Guard{}).Check(lo); !errors.Is(err, ErrBlocked) {
		t.Fatalf("default guard: err = %v, want ErrBlocked", err)
	}
	if err := (Guard{AllowPrivate: true}).Check(lo); err != nil {
		t.Fatalf("AllowPrivate: %v", err)
	}
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	if err := g.Check(netip.MustParseAddr("::ffff:127.0.0.1")); err != nil {
		t.Fatalf("allowed prefix through a mapped address: %v", err)
	}
	if err := g.Check(netip.MustParseAddr("127.0.0.2")); err == nil {
		t.Fatal("127.0.0.2 passed an allowance of 127.0.0.1/32")
	}
}

func TestCheckURL(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1/x", "http://localhost:8080/", "https://api.localhost/", "http://[::1]/",
		"http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/",
		"http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]:8080/", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
	} {
		u, _ := url.Parse(raw)
		if err := (Guard{}).CheckURL(u); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: err = %v, want ErrBlocked", raw, err)
		}
	}
	u, _ := url.Parse("https://erp.example.com/hooks")
	if err := (Guard{}).CheckURL(u); err != nil {
		t.Errorf("public name refused: %v", err)
	}
}

// The reason names the IPv4 address a 6to4 or Teredo address tunnels to, so
// that an operator sees what was aimed at; an allowance of that IPv4
// address does not open the tunnel to it.
func TestTunnelAddressesNameTheirIPv4(t *testing.T) {
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("169.254.169.254/32")}}
	for addr, want := range map[string]string{
		"2002:7f00:1::":                        "2002:7f00:1:: is 6to4 (an IPv6 tunnel to 127.0.0.1)",
		"2002:a9fe:a9fe::":                     "2002:a9fe:a9fe:: is 6to4 (an IPv6 tunnel to 169.254.169.254)",
		"2001:0:4136:e378:8000:63bf:80ff:fffe": "2001:0:4136:e378:8000:63bf:80ff:fffe is Teredo (an IPv6 tunnel to 127.0.0.1)",
	} {
		err := g.Check(netip.MustParseAddr(addr))
		if !errors.Is(err, ErrBlocked) || err.Error() != ErrBlocked.Error()+": "+want {
			t.Errorf("%s: err = %v, want %q", addr, err, want)
		}
	}
}
