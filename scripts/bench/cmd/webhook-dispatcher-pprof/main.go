// Command webhook-dispatcher-pprof is the webhook dispatcher with Go's
// profiler on a loopback-only port (PPROF_ADDR, default 127.0.0.1:28086),
// for make bench-webhooks PROFILE=1; see package profiled.
package main

import (
	"github.com/xpeditis/notify/scripts/bench/profiled"
	"github.com/xpeditis/notify/services/webhook-dispatcher/webhookdispatcher"
)

func main() { profiled.Main("webhook-dispatcher-pprof", "127.0.0.1:28086", webhookdispatcher.Main) }
