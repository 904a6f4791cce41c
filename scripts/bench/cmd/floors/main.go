// Command floors measures what the building blocks of Xpeditis Notify cost
// on this machine, in CPU time per operation of each process (utime +
// stime from /proc, package proccpu), the way the service benchmarks
// measure the services: NATS and JetStream operations against a running
// nats-server (`floors nats`), and a minimal net/http server with and
// without one PostgreSQL round trip (`floors http`). What the services
// spend above these floors is theirs to cut; what the floors already
// spend, no code change in the services removes. `make bench-floors` runs
// both on the benchmark's own nats-server and PostgreSQL
// (scripts/bench-floors.sh); BENCHMARKS.md has the figures.
package main

import "github.com/xpeditis/notify/pkg/cmd/cli"

const usage = `usage: floors <benchmark> [flags]

benchmarks:
  nats   core NATS, JetStream publish, republish, pull consumer, and the whole
         chain of one ingest event: nats-server's CPU per message
  http   a minimal net/http server (a child process) with and without one
         prepared PostgreSQL statement: its CPU and PostgreSQL's per request

Run 'floors <benchmark> -h' for its flags.

examples:
  floors nats -nats nats://127.0.0.1:4222 -pid "$(pgrep -n nats-server)" -n 100000
  floors http -db "$DATABASE_URL" -rate 500 -duration 20s`

var benchmarks = map[string]cli.Subcommand{
	"nats":        runNATS,
	"http":        runHTTP,
	"http-server": runHTTPServer, // the child process of 'floors http'
}

func main() { cli.Main("floors", usage, benchmarks) }
