#!/usr/bin/env bash
# The webhook-dispatcher benchmark (make bench-webhooks): 100 webhooks on a
# local keep-alive receiver, one delivery per event. Every party is its own
# process, so that the CPU time of each is known: bin/webhook-dispatcher,
# the benchmark's own nats-server and PostgreSQL cluster (scripts/bench-lib.sh,
# removed at exit), and bin/webhook-bench, the load generator (the receiver
# and the publisher).
#   1. burst: EVENTS events as fast as they can be published (throughput),
#      with all endpoints healthy and with 10 of them hanging until the
#      10 s timeout;
#   2. paced: PACED_EVENTS events at RATE events/s, RUNS times (latency, and
#      the cost of deliveries at a steady rate).
# Each run has a fresh database and a fresh dispatcher process, and reports,
# over its delivery phase (first publish to last result recorded),
# CPU-seconds per 1,000 deliveries of the dispatcher, nats-server,
# PostgreSQL and the load generator, PostgreSQL's write transactions and WAL
# bytes per delivery, the load average and CPU pressure.
# DISPATCHER names another dispatcher binary (A/B runs); PROFILE=1 runs
# bin/webhook-dispatcher-pprof instead and keeps a CPU and an
# allocation profile of each paced run in bin/bench/.
# The dispatcher's log is kept in bin/bench/webhook-dispatcher.log.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
EVENTS=${EVENTS:-50000}
RATE=${RATE:-800}
PACED_EVENTS=${PACED_EVENTS:-16000}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-}
DISPATCHER=${DISPATCHER:-./bin/webhook-dispatcher} # another build, for A/B runs
[ -n "$PROFILE" ] && DISPATCHER=./bin/webhook-dispatcher-pprof
for bin in "$DISPATCHER" ./bin/webhook-bench; do
	[ -x "$bin" ] || { echo "bench: $bin is missing: run make build bench-tools" >&2; exit 1; }
done
JWT_SECRET=$(head -c 48 /dev/urandom | base64)
export JWT_SECRET
KEYS="bench:$(head -c 32 /dev/urandom | base64)"
DISP_PID=""
trap 'bench_finish "" webhook-dispatcher' EXIT

bench_begin

# start_dispatcher DB: bin/webhook-dispatcher on a free port.
start_dispatcher() {
	DISP_ADDR=127.0.0.1:$(bench_free_port)
	PPROF_ADDR=127.0.0.1:$(bench_free_port)
	DATABASE_URL=$(bench_db_url "$1") NATS_URL=$BENCH_NATS_URL HTTP_ADDR=$DISP_ADDR LOG_LEVEL=warn \
		WEBHOOK_SECRETS_KEYS=$KEYS WEBHOOK_ALLOW_PRIVATE_TARGETS=true PPROF_ADDR=$PPROF_ADDR \
		"$DISPATCHER" >>"$BENCH_TMP/webhook-dispatcher.log" 2>&1 &
	DISP_PID=$!
	BENCH_PIDS+=("$DISP_PID")
	bench_wait_ready "$DISP_PID" "http://$DISP_ADDR/readyz" webhook-dispatcher
}

stop_dispatcher() {
	kill "$DISP_PID" 2>/dev/null || true
	wait "$DISP_PID" 2>/dev/null || true
}

# run EVENTS RATE HANGING: one webhook-bench run on a fresh database and
# dispatcher.
n=0
run() {
	n=$((n + 1))
	local db=webhook_bench_$n prof=""
	echo
	say "$1 events at ${2/#0/full} rate, $3 hanging endpoints; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	bench_sql "CREATE DATABASE $db"
	start_dispatcher "$db"
	if [ -n "$PROFILE" ] && [ "$2" != 0 ]; then
		mkdir -p bin/bench
		# The CPU profile covers most of the paced run (PACED_EVENTS / RATE s).
		curl -s -o "bin/bench/webhook-dispatcher-run$n.cpu.pprof" \
			"http://$PPROF_ADDR/debug/pprof/profile?seconds=$(($1 / $2 - 2))" &
		prof=$!
	fi
	DATABASE_URL=$(bench_db_url "$db") ./bin/webhook-bench -api "http://$DISP_ADDR" -nats "$BENCH_NATS_URL" \
		-cost "webhook-dispatcher=$DISP_PID,nats-server=$BENCH_NATS_PID,postgresql=cluster:$BENCH_PG_PID" \
		-webhooks 100 -events "$1" -rate "$2" -hanging "$3"
	if [ -n "$prof" ]; then
		wait "$prof" || true
		curl -s -o "bin/bench/webhook-dispatcher-run$n.allocs.pprof" "http://$PPROF_ADDR/debug/pprof/allocs"
		say "profiles: bin/bench/webhook-dispatcher-run$n.{cpu,allocs}.pprof"
	fi
	echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg); CPU pressure (some avg10): $(awk '/^some/ { print $2 }' /proc/pressure/cpu 2>/dev/null || echo n/a)"
	stop_dispatcher
	bench_sql "DROP DATABASE $db WITH (FORCE)"
}
run "$EVENTS" 0 0
run "$EVENTS" 0 10
for i in $(seq "$RUNS"); do
	say "paced, run $i/$RUNS"
	run "$PACED_EVENTS" "$RATE" 0
done
