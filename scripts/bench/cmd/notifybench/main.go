// Command notifybench runs the benchmarks of Xpeditis Notify against running
// servers: notification-api's ingest and list, and the Socket.IO gateway
// benchmark (the realtime gateway, the Node.js reference, Centrifugo). The
// make bench* targets start the servers and call it; BENCHMARKS.md has the
// figures.
package main

import "github.com/xpeditis/notify/pkg/cmd/cli"

const usage = `usage: notifybench <benchmark> [flags]

benchmarks:
  ingest          events through JetStream into notification-api's table, against a running service
  list            GET /api/v1/notifications at a constant rate over a large seeded table
  gateway         one real-time server under many clients (the gateway, the Node.js reference, Centrifugo)
  gateway-report  print saved gateway results side by side and check them against the targets
  centrifugo-config  print the configuration the gateway benchmark runs Centrifugo with

Run 'notifybench <benchmark> -h' for its flags and examples; BENCHMARKS.md
has the figures and the make targets that run them.

examples:
  notifybench ingest -events 200000 -db "$DATABASE_URL"
  notifybench list -h`

// benchmarks are notifybench's subcommands; each lives in its own file.
var benchmarks = map[string]cli.Subcommand{
	"gateway":           runBenchGateway,
	"gateway-worker":    runBenchGatewayWorker,
	"gateway-report":    runBenchGatewayReport,
	"centrifugo-config": runCentrifugoConfig,
	"ingest":            runBenchIngest,
	"list":              runBenchList,
}

func main() { cli.Main("notifybench", usage, benchmarks) }
