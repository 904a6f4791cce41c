#!/usr/bin/env bash
# `make bench-pipeline` (part of `make bench`): what the whole pipeline costs,
# from an event published on EVENTS to the notification on its socket.
#
# Every party is a process of its own, so that the CPU time of each is
# known: nats-server and a PostgreSQL cluster of the benchmark's own
# (scripts/bench-lib.sh: production settings, removed at exit),
# ./bin/notification-api, ./bin/realtime-gateway, and the gateway
# benchmark's load generator (notifybench gateway: the producer, which
# publishes the events, and its worker processes, which hold the real
# Socket.IO clients, one user each, and time each notification).
#   1. a burst: BENCH_PIPELINE_BURST events released at once (as fast as
#      JetStream acknowledges them), one random connected user each;
#   2. paced: BENCH_PIPELINE_RATE events/s for BENCH_PIPELINE_SECONDS,
#      BENCH_RUNS runs.
# Each run connects the clients, then (notifybench gateway -sync) the CPU
# time of every process is read just before the first publish and again
# once the last notification has reached its socket: CPU-seconds per 1,000
# events of notification-api, realtime-gateway, nats-server, PostgreSQL
# (the whole cluster), the producer and the clients. A run fails when a
# notification is lost or duplicated. Its publish-to-socket latency comes
# with the load average and the CPU pressure of the run; on a shared machine
# only the CPU figures mean much.
# Logs are kept in bin/bench/pipeline-*.log.
# Settings (environment): BENCH_PIPELINE_CLIENTS (3000), BENCH_PIPELINE_RATE
# (5000), BENCH_PIPELINE_SECONDS (20), BENCH_PIPELINE_BURST (50000),
# BENCH_RUNS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

CLIENTS=${BENCH_PIPELINE_CLIENTS:-3000}
RATE=${BENCH_PIPELINE_RATE:-5000}
SECONDS_PACED=${BENCH_PIPELINE_SECONDS:-20}
BURST=${BENCH_PIPELINE_BURST:-50000}
RUNS=${BENCH_RUNS:-3}
PER_WORKER=5000 # clients per load-generator process

for bin in notification-api realtime-gateway notifybench; do
	[ -x "bin/$bin" ] || { echo "bench-pipeline: bin/$bin is missing: run make build bench-tools" >&2; exit 1; }
done
# The gateway holds every client's socket.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ $((CLIENTS + 200)) -le "$(ulimit -n)" ] ||
	{ echo "bench-pipeline: $CLIENTS clients need more open files than the $(ulimit -n) a process may open" >&2; exit 1; }
workers=$(((CLIENTS + PER_WORKER - 1) / PER_WORKER))
# Two loopback source addresses per load-generator process, as make
# bench-gateway does, so that no address runs out of ephemeral ports.
sources=$(seq 2 $((1 + 2 * workers)) | sed 's/^/127.0.0./' | paste -sd, -)

JWT_SECRET=$(head -c 48 /dev/urandom | base64)
export JWT_SECRET
trap 'bench_finish pipeline- notification-api realtime-gateway notifybench' EXIT

bench_begin
bench_sql "CREATE DATABASE notify_bench_pipeline"
bench_api_start notify_bench_pipeline
GW_ADDR=127.0.0.1:$(bench_free_port)
# The clients share a few source addresses: no per-address limit on
# connections still authenticating.
HTTP_ADDR=$GW_ADDR NATS_URL=$BENCH_NATS_URL LOG_LEVEL=warn \
	GATEWAY_MAX_PENDING_PER_IP=0 GATEWAY_MAX_PENDING=$((CLIENTS + 1000)) \
	./bin/realtime-gateway >>"$BENCH_TMP/realtime-gateway.log" 2>&1 &
GW_PID=$!
BENCH_PIDS+=("$GW_PID")
bench_wait_ready "$GW_PID" "http://$GW_ADDR/readyz" realtime-gateway
say "notification-api pid $BENCH_API_PID, realtime-gateway pid $GW_PID on $GW_ADDR"

# pipeline_run WHAT RATE SECONDS: connect the clients, publish RATE events/s
# for SECONDS, and print the cost of each process over the phase and what
# the clients received.
pipeline_run() {
	local what=$1 rate=$2 secs=$3 events=$(($2 * $3)) nb line out=$BENCH_TMP/run.json
	say "pipeline, $what: $CLIENTS clients, $events events at $rate/s over ${secs}s"
	rm -f "$out" "$BENCH_TMP/to-nb" "$BENCH_TMP/from-nb"
	mkfifo "$BENCH_TMP/to-nb" "$BENCH_TMP/from-nb"
	./bin/notifybench gateway -sync -label "$what" -url "http://$GW_ADDR" -pid "$GW_PID" -nats "$BENCH_NATS_URL" \
		-secret "$JWT_SECRET" -clients "$CLIENTS" -per-worker "$PER_WORKER" -sources "$sources" -idle 1s \
		-phases pipeline -rate "$rate" -duration "${secs}s" -out "$out" \
		<"$BENCH_TMP/to-nb" >"$BENCH_TMP/from-nb" 2>>"$BENCH_TMP/notifybench.log" &
	nb=$!
	BENCH_PIDS+=("$nb")
	# Should notifybench die while the script answers, the answer fails
	# (EPIPE) instead of killing the script before its cleanup.
	trap '' PIPE
	exec 7>"$BENCH_TMP/to-nb" 8<"$BENCH_TMP/from-nb"
	while IFS= read -r line <&8; do
		case $line in
		"phase pipeline start")
			bench_cost_start notification-api="$BENCH_API_PID" realtime-gateway="$GW_PID" nats-server="$BENCH_NATS_PID" \
				postgresql=cluster:"$BENCH_PG_PID" producer="$nb" clients=children:"$nb"
			echo >&7 || break
			;;
		"phase pipeline end")
			bench_cost_report "$events" events
			echo >&7 || break
			;;
		esac # the rest is notifybench's table, summed up below from its JSON
	done
	exec 7>&- 8<&-
	trap - PIPE
	if ! wait "$nb"; then
		echo "bench-pipeline: notifybench gateway failed; the end of its log:" >&2
		tail -n 20 "$BENCH_TMP/notifybench.log" >&2
		BENCH_FAILED+=("$what")
		return
	fi
	python3 - "$out" "$events" "$what" <<-'EOF' || BENCH_FAILED+=("$what")
		import json, sys
		r = json.load(open(sys.argv[1]))
		d, want = r["phases"][0], int(sys.argv[2])
		print(f"  published {d['published']} of {want} (publishing took {d['publishSeconds']:.1f}s), received {d['received']}, "
		      f"lost {d['lost']}, duplicated {d['duplicates']}, disconnects {d['disconnects']}")
		print(f"  publish→socket: p50 {d['p50Ms']:.1f} ms, p90 {d['p90Ms']:.1f} ms, p99 {d['p99Ms']:.1f} ms, max {d['maxMs']:.1f} ms; "
		      f"realtime-gateway waited for a CPU {d['serverWaitPercent']:.0f} % of the time while publishing")
		if sys.argv[3] != "burst" and d["publishSeconds"] > d["seconds"] * 1.1:
		    print(f"  the producer fell behind: {d['published'] / d['publishSeconds']:.0f} events/s instead of {d['rate']} "
		          "(the machine's cores were busy), so the run was closer to a burst than paced")
		wrong = d["published"] != want or d["lost"] or d["duplicates"] or d["publishErrors"]
		sys.exit("  FAILED: a notification was lost or duplicated, or an event not published" if wrong else 0)
	EOF
}

pipeline_run burst "$BURST" 1
for i in $(seq "$RUNS"); do
	pipeline_run "paced, run $i/$RUNS" "$RATE" "$SECONDS_PACED"
done
bench_end bench-pipeline
