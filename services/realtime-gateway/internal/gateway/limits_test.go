package gateway

import (
	"net/http"
	"net/netip"
	"testing"
)

// The limits count a client under the address its TCP peer gives, unless
// that peer is a trusted proxy: then under the right-most address of
// X-Forwarded-For that is not itself a trusted proxy, since every proxy
// appends the address it saw and only the trusted ones can be believed.
func TestClientAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies trusted: the peer, whatever the header says", nil, "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"an untrusted peer's header is ignored", trusted, "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"a trusted proxy: the address it saw", trusted, "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a spoofed left part is skipped", trusted, "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"a chain of trusted proxies", trusted, "127.0.0.1:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines in order", trusted, "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.1 , 10.0.0.5"}, "198.51.100.1"},
		{"a trusted proxy without the header: the proxy", trusted, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"garbage in the header: the last proxy that wrote it", trusted, "10.1.2.3:5000", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3"},
		{"all trusted: the left-most", trusted, "10.1.2.3:5000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"IPv6 clients count by their /64", trusted, "10.1.2.3:5000", []string{"2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"},
		{"IPv4-mapped peers are IPv4", trusted, "[::ffff:10.1.2.3]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddress(r, c.trusted); got != c.want {
				t.Fatalf("clientAddress = %q, want %q", got, c.want)
			}
		})
	}
}

// Behind a trusted proxy the per-address limit applies to each client, not
// to the proxy: a proxy's many clients are not refused together.
func TestPendingLimitsBehindAProxy(t *testing.T) {
	refused := 0
	p := newPendingLimits(1, 100, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, func(string) { refused++ })
	req := func(client string) *http.Request {
		r := &http.Request{RemoteAddr: "10.0.0.2:4000", Header: http.Header{}}
		r.Header.Set("X-Forwarded-For", client)
		return r
	}
	if _, ok := p.acquire(req("198.51.100.1")); !ok {
		t.Fatal("first client refused")
	}
	if _, ok := p.acquire(req("198.51.100.2")); !ok {
		t.Fatal("second client behind the same proxy refused")
	}
	if _, ok := p.acquire(req("198.51.100.1")); ok || refused != 1 {
		t.Fatalf("the first client's second pending connection was accepted (refused %d)", refused)
	}
}
