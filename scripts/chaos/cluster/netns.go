package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// isolation puts one NATS node in its own network namespace, joined to
// the host by a veth pair, so that the node can be cut off from the
// network (Partition) while it keeps running. The host reaches the node at
// NodeAddr over the veth; the node reaches the other nodes at HostAddr,
// an address of the host's loopback interface, so that it stays up for
// the other nodes while the veth is down. Every address is in a private
// range and only ever routed on this machine.
type isolation struct {
	ns       string // network namespace
	hostVeth string // host end of the veth pair
	HostAddr netip.Addr
	NodeAddr netip.Addr
	linkAddr netip.Addr // host end of the veth
}

// newIsolation creates the namespace, the veth pair and the dummy
// address. tag makes the names unique to this run (interface names are
// at most 15 bytes).
func newIsolation(tag string) (*isolation, error) {
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	b := subnet.As4()
	iso := &isolation{
		ns:       "chaos-" + tag,
		hostVeth: "chv" + tag,
		linkAddr: netip.AddrFrom4([4]byte{b[0], b[1], b[2], 1}),
		NodeAddr: netip.AddrFrom4([4]byte{b[0], b[1], b[2], 2}),
		HostAddr: netip.AddrFrom4([4]byte{b[0], b[1], b[2], 5}),
	}
	nsVeth := "chn" + tag
	steps := [][]string{
		{"netns", "add", iso.ns},
		{"link", "add", iso.hostVeth, "type", "veth", "peer", "name", nsVeth},
		{"link", "set", nsVeth, "netns", iso.ns},
		{"addr", "add", iso.linkAddr.String() + "/30", "dev", iso.hostVeth},
		{"link", "set", iso.hostVeth, "up"},
		{"addr", "add", iso.HostAddr.String() + "/32", "dev", "lo"},
		{"-n", iso.ns, "addr", "add", iso.NodeAddr.String() + "/30", "dev", nsVeth},
		{"-n", iso.ns, "link", "set", nsVeth, "up"},
		{"-n", iso.ns, "link", "set", "lo", "up"},
		{"-n", iso.ns, "route", "add", iso.HostAddr.String() + "/32", "via", iso.linkAddr.String()},
		// While the veth is down its route is gone: without this the
		// node's address would be routed to the default gateway, off the
		// machine. A blackhole drops the packets, as a partition does.
		{"route", "add", "blackhole", iso.subnet()},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			iso.remove()
			return nil, err
		}
	}
	return iso, nil
}

// freeSubnet picks a /29 of 10.213.0.0/16 that no interface of the host
// uses.
func freeSubnet() (netip.Addr, error) {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ip addr show: %w", err)
	}
	start := os.Getpid() % 250
	for i := range 250 {
		third := byte((start+i)%250 + 1)
		prefix := fmt.Sprintf("10.213.%d.", third)
		if !strings.Contains(string(out), " "+prefix) {
			return netip.AddrFrom4([4]byte{10, 213, third, 0}), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free subnet in 10.213.0.0/16")
}

func (iso *isolation) subnet() string {
	return netip.PrefixFrom(iso.linkAddr, 29).Masked().String()
}

// Cut takes the host end of the veth down: the node can reach nothing and
// nothing can reach it.
func (iso *isolation) Cut() error { return ip("link", "set", iso.hostVeth, "down") }

// Heal brings it back.
func (iso *isolation) Heal() error { return ip("link", "set", iso.hostVeth, "up") }

// remove deletes what newIsolation made (the peer goes with its pair).
func (iso *isolation) remove() {
	_ = ip("route", "del", "blackhole", iso.subnet())
	_ = ip("link", "del", iso.hostVeth)
	_ = ip("addr", "del", iso.HostAddr.String()+"/32", "dev", "lo")
	_ = ip("netns", "del", iso.ns)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
