package ssrf

import (
	"errors"
	"net/netip"
	"net/url"
	"testing"
)

func TestClassify(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "fd12::1",
		"169.254.169.254", "169.254.1.1", "fe80::1", "100.64.0.1", "224.0.0.1", "ff02::1",
		"0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "64:ff9b::a00:1", "fd00:ec2::254",
		"255.255.255.255", "240.0.0.1",
		// 6to4 and Teredo tunnel to an IPv4 address; they are refused whole,
		// whatever that address is.
		"2002:7f00:1::", "2002:a9fe:a9fe::", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
		"2001:0:4136:e378:8000:63bf:f7f7:f7f7",
		// IPv4-compatible (deprecated) and local-use NAT64 forms.
		"::7f00:1", "::a9fe:a9fe", "64:ff9b:1::7f00:1",
	}
	for _, s := range refused {
		if Classify(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s is allowed, want refused", s)
		}
	}
	allowed := []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"}
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
