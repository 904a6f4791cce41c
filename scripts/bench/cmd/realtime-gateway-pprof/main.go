// Command realtime-gateway-pprof is the realtime gateway with Go's profiler
// on a loopback-only port (PPROF_ADDR, default 127.0.0.1:28085), for make
// bench-gateway PROFILE=1; see package profiled.
package main

import (
	"github.com/xpeditis/notify/scripts/bench/profiled"
	"github.com/xpeditis/notify/services/realtime-gateway/realtimegateway"
)

func main() { profiled.Main("realtime-gateway-pprof", "127.0.0.1:28085", realtimegateway.Main) }
