// Command notification-api-pprof is notification-api with Go's profiler on a
// loopback-only port (PPROF_ADDR, default 127.0.0.1:28087), for profiling
// make bench runs (BENCH_API_BIN=bin/notification-api-pprof); see package
// profiled.
package main

import (
	"github.com/xpeditis/notify/scripts/bench/profiled"
	"github.com/xpeditis/notify/services/notification-api/notificationapi"
)

func main() { profiled.Main("notification-api-pprof", "127.0.0.1:28087", notificationapi.Main) }
