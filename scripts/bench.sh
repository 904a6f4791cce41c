#!/usr/bin/env bash
# `make bench`: what notification-api costs, and its latency, on this machine.
#
# Runs after `make build bench-tools` on its own PostgreSQL cluster and
# nats-server (scripts/bench-lib.sh: production settings, everything removed
# at exit), with ./bin/notification-api as a process of its own, so that the
# CPU time of each process is known:
#   1. cost of ingest: bursts of events with 1, 10 and 100 recipients each;
#      CPU-seconds per 1,000 events of notification-api, nats-server, the
#      PostgreSQL cluster and the benchmark (these do not depend on how busy
#      the machine is);
#   2. latency of ingest: BENCH_PACED_RATE events/s, 3 runs, each with its
#      load average, CPU pressure and cost;
#   3. the list endpoint over a BENCH_LIST_ROWS-row table: 3 runs, each with
#      its latency, load, and CPU per request.
# notification-api's log is kept in bin/bench/notification-api.log.
# Settings (environment): BENCH_EVENTS (events of the 1-recipient burst; the
# 10- and 100-recipient bursts carry as many notifications), BENCH_PACED_RATE,
# BENCH_PACED_EVENTS, BENCH_RUNS, BENCH_LIST_ROWS, BENCH_LIST_USERS,
# BENCH_LIST_RATE, BENCH_LIST_DURATION, BENCH_RECIPIENTS (the bursts' recipients
# per event, "1 10 100"), BENCH_PHASES (any of "cost latency list": e.g.
# BENCH_PHASES=cost BENCH_RECIPIENTS=1 for the 1-recipient burst alone, or
# BENCH_PHASES=list BENCH_LIST_ROWS=500000 BENCH_LIST_USERS=1000, which seeds
# in seconds, to iterate on the list's cost), BENCH_API_BIN (the
# notification-api binary, ./bin/notification-api: for A/B runs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

EVENTS=${BENCH_EVENTS:-100000}
PACED_RATE=${BENCH_PACED_RATE:-10000}
PACED_EVENTS=${BENCH_PACED_EVENTS:-100000}
RUNS=${BENCH_RUNS:-3}
LIST_ROWS=${BENCH_LIST_ROWS:-5000000}
LIST_USERS=${BENCH_LIST_USERS:-10000}
LIST_RATE=${BENCH_LIST_RATE:-500}
LIST_DURATION=${BENCH_LIST_DURATION:-30s}
RECIPIENTS=${BENCH_RECIPIENTS:-1 10 100}
PHASES=" ${BENCH_PHASES:-cost latency list} "
phase() { [[ $PHASES == *" $1 "* ]]; }
for p in ${BENCH_PHASES:-}; do
	case $p in cost | latency | list) ;; *) echo "bench: BENCH_PHASES: unknown phase $p (cost, latency, list)" >&2; exit 1 ;; esac
done

export BENCH_API_BIN=${BENCH_API_BIN:-./bin/notification-api}
for bin in "$BENCH_API_BIN" ./bin/notifybench; do
	[ -x "$bin" ] || { echo "bench: $bin is missing: run make build bench-tools" >&2; exit 1; }
done

# The tokens of the list benchmark: notifybench signs them with the same
# $JWT_SECRET.
JWT_SECRET=$(head -c 48 /dev/urandom | base64)
export JWT_SECRET
trap 'bench_finish "" notification-api' EXIT

bench_begin
if phase cost || phase latency; then
	bench_sql "CREATE DATABASE notify_bench_ingest"
	bench_api_start notify_bench_ingest
	INGEST=(./bin/notifybench ingest -nats "$BENCH_NATS_URL" -db "$(bench_db_url notify_bench_ingest)" -pid "$BENCH_API_PID" -copy=false)
	PARTIES=(notification-api="$BENCH_API_PID" nats-server="$BENCH_NATS_PID" postgresql=cluster:"$BENCH_PG_PID" benchmark=self)
fi

phase cost && for r in $RECIPIENTS; do
	n=$((EVENTS / r))
	say "ingest cost, $r recipient(s) per event: $n events ($((n * r)) notifications) as fast as JetStream takes them"
	bench_cost_start "${PARTIES[@]}"
	"${INGEST[@]}" -events "$n" -recipients "$r"
	bench_cost_report "$n" events
	bench_cost_report "$((n * r))" notifications
done

phase latency && for i in $(seq "$RUNS"); do
	say "ingest latency, run $i/$RUNS: $PACED_EVENTS events paced at $PACED_RATE/s"
	bench_cost_start "${PARTIES[@]}"
	"${INGEST[@]}" -events "$PACED_EVENTS" -rate "$PACED_RATE" || BENCH_FAILED+=("ingest latency run $i")
	bench_cost_report "$PACED_EVENTS" events
done

if phase list; then
	say "list: $LIST_ROWS rows over $LIST_USERS users (seeded once), $RUNS runs at $LIST_RATE requests/s"
	bench_sql "CREATE DATABASE notify_bench_list"
	bench_api_start notify_bench_list
	for i in $(seq "$RUNS"); do
		say "list, run $i/$RUNS"
		./bin/notifybench list -url "http://$BENCH_API_ADDR" -db "$(bench_db_url notify_bench_list)" -pid "$BENCH_API_PID" \
			-rows "$LIST_ROWS" -users "$LIST_USERS" -rate "$LIST_RATE" -duration "$LIST_DURATION" || BENCH_FAILED+=("list run $i")
	done
fi
bench_end bench
