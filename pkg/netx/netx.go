// Package netx makes "cannot listen" errors say how to fix them: the
// variable that sets the address, the address, and, when the port is taken,
// which process holds it.
package netx

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Listen listens on TCP addr, the value of the environment variable
// variable. Its error names both (see ListenError).
func Listen(variable, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, ListenError(variable, addr, err)
	}
	return ln, nil
}

// ListenError explains why addr (set by variable) cannot be listened on.
// For an address in use it adds the process that holds the port when this
// machine lets us see it.
func ListenError(variable, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		who := ""
		if _, p, serr := net.SplitHostPort(addr); serr == nil {
			if port, perr := strconv.Atoi(p); perr == nil && port > 0 {
				if h := PortHolder(port); h != "" {
					who = ", held by " + h
				}
			}
		}
		return fmt.Errorf("cannot listen on %s=%s: the port is in use%s; stop that process or set %s to a free address: %w", variable, addr, who, variable, err)
	}
	return fmt.Errorf("cannot listen on %s=%s (set %s to a host:port this machine can listen on): %w", variable, addr, variable, err)
}
