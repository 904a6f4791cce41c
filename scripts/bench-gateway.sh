#!/usr/bin/env bash
# make bench-gateway: the realtime gateway, the Node.js reference server and
# Centrifugo, measured one after the other in the same run with the same
# load generator (notifybench gateway), the same clients and the same rates,
# then printed side by side.
#
# All servers are fed by one notifyd (embedded NATS with JetStream,
# notification-api on PostgreSQL) so that the pipeline phase goes through
# the real ingest path. Each server runs as its own process, whose memory
# and CPU the load generator samples. Centrifugo (scripts/test-setup-centrifugo.sh
# installs it with go install at a pinned version) authenticates each client's
# JWT, subscribes it to its personal channel, and reads live.user.<id> from
# the same NATS through its NATS broker in raw mode, as the gateway does
# (notifybench centrifugo-config prints the configuration).
#
# Settings (environment): CLIENTS (15000), PER_WORKER (5000 clients per
# load-generator process), RATE (5000/s), PIPELINE_RATE (RATE), DURATION (60s), PHASES
# (fanout,pipeline), SERVERS ("go node centrifugo"), IDLE (15s), OUT (bin/bench-gateway),
# PROFILE (1: run the gateway with pprof on 28085 and save CPU profiles of
# the storm and of each phase and heap profiles at idle and after each
# phase in OUT), GATEWAYS (1: the number of Go gateway processes, which
# share the clients in turn; make bench-gateway-100k runs 6), GATEWAY_BIN (the
# gateway's binary, ./bin/realtime-gateway: another build, or a wrapper that
# sets its environment, for A/B runs).
# Ports: notifyd HTTP 28080 and NATS 24223, gateway 28081 (with GATEWAYS > 1:
# 28111, 28112, …), Node 28082, Centrifugo 28083.
# (below 32768, outside the range the kernel picks client ports from, so that
# none of the clients' sockets can hold one.)
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-15000}
PER_WORKER=${PER_WORKER:-5000}
RATE=${RATE:-5000}
PIPELINE_RATE=${PIPELINE_RATE:-$RATE}
DURATION=${DURATION:-60s}
PHASES=${PHASES:-fanout,pipeline}
SERVERS=${SERVERS:-go node centrifugo}
IDLE=${IDLE:-15s}
PROFILE=${PROFILE:-0}
GATEWAYS=${GATEWAYS:-1}
OUT=${OUT:-bin/bench-gateway}
NOTIFYD_HTTP=127.0.0.1:28080
NATS_LISTEN=127.0.0.1:24223
NODE_PORT=28082
CENTRIFUGO_PORT=28083
SECRET=bench-gateway-secret-0123456789-0123456789
BENCH_DB=notify_bench_gateway

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bench-gateway: %s\n' "$*" >&2; exit 1; }

# --- limits: say plainly what does not fit instead of failing mid-storm ---
[ "$GATEWAYS" -ge 1 ] || die "GATEWAYS=$GATEWAYS: want 1 or more"
[ "$GATEWAYS" = 1 ] || [ "$PROFILE" = 0 ] || die "PROFILE=1 profiles one gateway process: run with GATEWAYS=1"
# The most connections one server process holds: the gateway's processes
# share the clients; Node and Centrifugo run as one process each.
per_process=$(((CLIENTS + GATEWAYS - 1) / GATEWAYS))
case " $SERVERS " in *" node "* | *" centrifugo "*) per_process=$CLIENTS ;; esac
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ]; then
	if [ $((per_process + 200)) -gt "$hard" ]; then
		die "a server process must hold $per_process connections, but processes here may open at most $hard files (ulimit -Hn, a hard limit). Run with fewer CLIENTS, or more GATEWAYS and SERVERS=go."
	fi
	if [ $((PER_WORKER + 200)) -gt "$hard" ]; then
		die "PER_WORKER=$PER_WORKER clients per load-generator process exceeds the hard limit of $hard open files (ulimit -Hn). Lower PER_WORKER."
	fi
	ulimit -n "$hard"
fi
workers=$(((CLIENTS + PER_WORKER - 1) / PER_WORKER))
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
ports_per_source=$((port_hi - port_lo + 1))
# Two loopback source addresses per load-generator process, so that no
# address needs more ephemeral ports than the range holds.
sources=$(seq 2 $((1 + 2 * workers)) | sed 's/^/127.0.0./' | paste -sd, -)
if [ $((CLIENTS / (2 * workers) + 1000)) -gt "$ports_per_source" ]; then
	die "the ephemeral port range ($port_lo-$port_hi) is too small for $CLIENTS clients over $((2 * workers)) source addresses."
fi

for cmd in node curl psql; do
	command -v "$cmd" >/dev/null || die "$cmd is required"
done
gateway_ports=(28081)
[ "$GATEWAYS" = 1 ] || gateway_ports=($(seq 28111 $((28110 + GATEWAYS))))
for port in 28080 24223 "${gateway_ports[@]}" $NODE_PORT $CENTRIFUGO_PORT 28085; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is already in use: stop what listens there (another bench run?)"
	fi
done

say "building"
make -s build bench-tools
gateway_bin=${GATEWAY_BIN:-./bin/realtime-gateway}
[ "$PROFILE" = 1 ] && gateway_bin=./bin/realtime-gateway-pprof
[ -x "$gateway_bin" ] || die "GATEWAY_BIN=$gateway_bin is not an executable"
[ "$PROFILE" = 0 ] || [ -z "${GATEWAY_BIN:-}" ] || die "PROFILE=1 runs bin/realtime-gateway-pprof: leave GATEWAY_BIN unset" 
bash scripts/test-setup-gwbench.sh
case " $SERVERS " in *" centrifugo "*) bash scripts/test-setup-centrifugo.sh ;; esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# --- processes this script starts, stopped on any exit ---
pids=()
DATA=$(mktemp -d)
admin_url=${DATABASE_URL%/*}/postgres?${DATABASE_URL#*\?}
[ "$admin_url" = "$DATABASE_URL" ] && admin_url=$DATABASE_URL
bench_url=${DATABASE_URL%/*}/$BENCH_DB
case "$DATABASE_URL" in *\?*) bench_url=$bench_url?${DATABASE_URL#*\?} ;; esac
stop() { # pid: SIGTERM, then SIGKILL after 20s
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
	local pid
	for pid in "${pids[@]}"; do stop "$pid"; done
	wait 2>/dev/null || true
	rm -rf "$DATA"
	psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_http() { # url what
	local i
	for i in $(seq 300); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$2 did not answer $1 within 30s (see $OUT/*.log)"
}

say "starting notifyd (NATS $NATS_LISTEN, notification-api on a fresh database $BENCH_DB)"
psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "CREATE DATABASE $BENCH_DB" >/dev/null
# Development mode keeps the loopback NATS listener open to clients without
# credentials (production requires an NKey there): the servers measured, and
# Centrifugo's NATS broker (which has no NKey option), connect to it as they are.
NOTIFY_MODE=development HTTP_ADDR=$NOTIFYD_HTTP NATS_LISTEN=$NATS_LISTEN DATA_DIR=$DATA \
	DATABASE_URL=$bench_url JWT_SECRET=$SECRET LOG_LEVEL=info NOTIFY_MAX_AGE=30m \
	WEBHOOK_SECRETS_KEYS="bench:$(head -c 32 /dev/urandom | base64)" \
	./bin/notifyd >"$OUT/notifyd.log" 2>&1 &
notifyd_pid=$!
pids+=("$notifyd_pid")
wait_http "http://$NOTIFYD_HTTP/readyz" notifyd

machine() {
	echo "machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/{print $2}') GiB, $(uname -sr)"
	echo "open files (hard): $hard; ephemeral ports: $port_lo-$port_hi; load generator: $workers processes over $sources"
}
machine | tee "$OUT/machine.txt" >&2
read -r load1 _ </proc/loadavg
if awk "BEGIN{exit !($load1 > 1.0)}"; then
	echo "bench-gateway: WARNING: the 1-minute load is $load1 before the run: other work shares these $(nproc) cores, so latencies and rates will be pessimistic" | tee -a "$OUT/machine.txt" >&2
fi

results=()
for server in $SERVERS; do
	protocol=socketio
	case $server in
	go)
		say "Go realtime gateway: $GATEWAYS process(es) on port(s) ${gateway_ports[*]}"
		urls=() gw_pids=()
		for port in "${gateway_ports[@]}"; do
			# The load generator's clients share a few source addresses: no
			# per-address limit on connections still authenticating.
			HTTP_ADDR=127.0.0.1:$port NATS_URL=nats://$NATS_LISTEN JWT_SECRET=$SECRET LOG_LEVEL=warn \
				GATEWAY_MAX_PENDING_PER_IP=0 GATEWAY_MAX_PENDING=$((per_process + 1000)) \
				PPROF_ADDR=127.0.0.1:28085 $gateway_bin >"$OUT/gateway-$port.log" 2>&1 &
			gw_pids+=($!)
			pids+=($!)
			urls+=("http://127.0.0.1:$port")
			wait_http "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling" "the gateway on port $port"
		done
		pid=$(IFS=,; echo "${gw_pids[*]}")
		url=$(IFS=,; echo "${urls[*]}")
		label="Go gateway"
		[ "$GATEWAYS" = 1 ] || label="Go gateway, $GATEWAYS processes"
		ready="${urls[0]}/socket.io/?EIO=4&transport=polling"
		metrics=()
		[ "$GATEWAYS" = 1 ] && metrics=(-metrics "$url/metrics")
		[ "$PROFILE" = 1 ] && metrics+=(-pprof http://127.0.0.1:28085/debug/pprof -profile-dir "$OUT")
		;;
	node)
		say "Node.js reference server on 127.0.0.1:$NODE_PORT"
		(cd deploy/reference-node && PORT=$NODE_PORT HOST=127.0.0.1 NATS_URL=nats://$NATS_LISTEN JWT_SECRET=$SECRET \
			exec node server.js) >"$OUT/node.log" 2>&1 &
		pid=$!
		label="Node reference (socket.io $(node -p 'require("./deploy/reference-node/node_modules/socket.io/package.json").version'))"
		url=http://127.0.0.1:$NODE_PORT
		ready="$url/socket.io/?EIO=4&transport=polling"
		metrics=()
		;;
	centrifugo)
		say "Centrifugo on 127.0.0.1:$CENTRIFUGO_PORT"
		./bin/notifybench centrifugo-config -port "$CENTRIFUGO_PORT" -nats "nats://$NATS_LISTEN" -secret "$SECRET" >"$OUT/centrifugo.conf.json"
		./.tools/centrifugo -c "$OUT/centrifugo.conf.json" >"$OUT/centrifugo.log" 2>&1 &
		pid=$!
		label="Centrifugo $(sed -n 's/^CENTRIFUGO_VERSION=//p' scripts/test-setup-centrifugo.sh) (NATS raw mode)"
		url=http://127.0.0.1:$CENTRIFUGO_PORT
		protocol=centrifugo
		ready=$url/health
		metrics=()
		;;
	*) die "unknown server $server (want go, node or centrifugo)" ;;
	esac
	[ "$server" = go ] || pids+=("$pid") # the gateway's are in already
	wait_http "$ready" "$label"
	echo "uptime before $server: $(uptime)" | tee -a "$OUT/machine.txt" >&2
	./bin/notifybench gateway -label "$label" -protocol "$protocol" -url "$url" -pid "$pid" -nats "nats://$NATS_LISTEN" \
		-secret "$SECRET" -clients "$CLIENTS" -per-worker "$PER_WORKER" -sources "$sources" \
		-rate "$RATE" -pipeline-rate "$PIPELINE_RATE" -duration "$DURATION" -phases "$PHASES" -idle "$IDLE" "${metrics[@]}" -out "$OUT/$server.json" >/dev/null
	echo "uptime after $server: $(uptime)" | tee -a "$OUT/machine.txt" >&2
	if ! kill -0 "$notifyd_pid" 2>/dev/null; then
		die "notifyd (pid $notifyd_pid) exited during the $server run, so its figures are not valid: see $OUT/notifyd.log"
	fi
	if [ "$server" = go ]; then
		for u in ${url//,/ }; do
			curl -fsS "$u/metrics" >"$OUT/gateway-metrics-${u##*:}.txt" || true
		done
	fi
	stoppers=()
	for p in ${pid//,/ }; do
		stop "$p" &
		stoppers+=($!)
	done
	wait "${stoppers[@]}"
	results+=("$OUT/$server.json")
done

# notification-api's ingest figures (batch sizes and times) explain the
# pipeline column.
curl -fsS "http://$NOTIFYD_HTTP/metrics" >"$OUT/notifyd-metrics.txt" || true

say "results ($OUT)"
./bin/notifybench gateway-report "${results[@]}" | tee "$OUT/report.md"
