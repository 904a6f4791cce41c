#!/usr/bin/env bash
# The webhook-dispatcher benchmark (make bench-webhooks): 100 webhooks on a
# local keep-alive receiver, one delivery per event, on the benchmark's own
# PostgreSQL cluster (scripts/bench-lib.sh, removed at exit).
#   1. burst: EVENTS events as fast as they can be published (throughput),
#      with all endpoints healthy and with 10 of them hanging until the
#      10 s timeout;
#   2. paced: PACED_EVENTS events at RATE events/s, RUNS times (latency, and
#      the cost of deliveries at a steady rate).
# Each run reports CPU-seconds per 1,000 deliveries of webhook-bench (one
# process: the dispatcher, its embedded NATS, the receiver and the
# publisher) and of the PostgreSQL cluster, with the load average and CPU
# pressure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
BENCH=${BENCH:-./bin/webhook-bench}
EVENTS=${EVENTS:-50000}
RATE=${RATE:-800}
PACED_EVENTS=${PACED_EVENTS:-16000}
RUNS=${RUNS:-3}
[ -x "$BENCH" ] || { echo "bench: $BENCH is missing: run make bench-tools" >&2; exit 1; }
trap bench_cleanup EXIT

say "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(uptime)"
bench_postgres_start
export DATABASE_URL=$BENCH_PG_URL

# run EVENTS RATE HANGING: one webhook-bench run and its cost.
run() {
	echo
	say "$1 events at ${2/#0/full} rate, $3 hanging endpoints; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	bench_cost_start webhook-bench=self postgresql=cluster:"$BENCH_PG_PID"
	"$BENCH" -webhooks 100 -events "$1" -rate "$2" -hanging "$3"
	bench_cost_report "$1" deliveries
}
run "$EVENTS" 0 0
run "$EVENTS" 0 10
for i in $(seq "$RUNS"); do
	say "paced, run $i/$RUNS"
	run "$PACED_EVENTS" "$RATE" 0
done
