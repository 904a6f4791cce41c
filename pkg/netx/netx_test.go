package netx_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/xpeditis/notify/pkg/netx"
)

func TestAPortInUseNamesTheVariableTheAddressAndTheHolder(t *testing.T) {
	held, err := netx.Listen("FIRST_ADDR", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	_, err = netx.Listen("HTTP_ADDR", addr)
	if err == nil {
		t.Fatalf("second listener on %s accepted", addr)
	}
	msg := err.Error()
	for _, want := range []string{"HTTP_ADDR=" + addr, "in use", "set HTTP_ADDR to a free address"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	// This process holds the port; where the holder can be found, it is named.
	if _, err := os.Stat("/proc/net/tcp"); err == nil && !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())+" (") {
		t.Errorf("error %q does not name this process (pid %d) as the holder", msg, os.Getpid())
	}
}

func TestAnAddressThatCannotBeListenedOnNamesTheVariable(t *testing.T) {
	_, err := netx.Listen("NATS_LISTEN", "not-an-address")
	if err == nil || !strings.Contains(err.Error(), "NATS_LISTEN=not-an-address") {
		t.Fatalf("err = %v, want one naming NATS_LISTEN and the address", err)
	}
}
