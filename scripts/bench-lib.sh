# Shared by the cost benchmarks (scripts/bench.sh, scripts/bench-webhooks.sh);
# source it, then call bench_postgres_start and bench_nats_start.
#
# Each benchmark runs on its own PostgreSQL cluster (initdb in a temporary
# directory, a port chosen by the OS) and its own nats-server, so that:
#   - the CPU time of every process of the run is known: the cluster's
#     postmaster, its backends, WAL writer, checkpointer and autovacuum (a
#     backend that exits is charged to the postmaster's children's time, which
#     /proc reports too), and NATS apart from the services;
#   - PostgreSQL runs with the settings a production deployment would use
#     (BENCH_PG_SETTINGS below), which nobody would apply to a shared server;
#   - nothing is left behind: the cluster, its data (the list benchmark's
#     5-million-row seed is 2.3 GB) and the JetStream store are removed at exit.
# Needs the PostgreSQL server binaries (initdb, pg_ctl; Debian: postgresql),
# psql, python3 (to ask the OS for free ports), and Go (nats-server is built
# from the version pinned in scripts/bench/go.mod).

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/notify-bench.XXXXXX")
chmod 755 "$BENCH_TMP"
BENCH_PIDS=()

# The production settings of the benchmark's cluster: durable commits
# (synchronous_commit and fsync stay on), memory for a dedicated 2-core
# server, checkpoints spaced so that a burst does not trigger one every few
# seconds, WAL compressed, no JIT (short OLTP queries only).
BENCH_PG_SETTINGS=(
	-c shared_buffers=1GB -c effective_cache_size=4GB -c work_mem=16MB -c maintenance_work_mem=256MB
	-c max_wal_size=8GB -c min_wal_size=1GB -c checkpoint_timeout=15min -c checkpoint_completion_target=0.9
	-c wal_buffers=64MB -c wal_compression=on -c jit=off -c max_connections=200
)

say() { printf '==> %s\n' "$*"; }

bench_find_pg() { # name: a PostgreSQL binary
	local d
	command -v "$1" 2>/dev/null && return
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin; do
		[ -x "$d/$1" ] && { echo "$d/$1"; return; }
	done
	echo "bench: PostgreSQL's $1 not found (Debian: apt-get install postgresql)" >&2
	return 1
}

bench_free_port() { # a TCP port the OS has just handed out
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_postgres_start: initdb and start the cluster; sets BENCH_PG_URL
# (database postgres), BENCH_PG_PID (the postmaster) and BENCH_PSQL.
bench_postgres_start() {
	local initdb pg_ctl port owner=()
	initdb=$(bench_find_pg initdb) && pg_ctl=$(bench_find_pg pg_ctl) && BENCH_PSQL=$(bench_find_pg psql) || exit 1
	port=$(bench_free_port)
	mkdir -p "$BENCH_TMP/pg"
	if [ "$(id -u)" = 0 ]; then # PostgreSQL refuses to run as root
		chown postgres "$BENCH_TMP/pg"
		owner=(runuser -u postgres --)
	fi
	"${owner[@]}" "$initdb" -D "$BENCH_TMP/pg" -U postgres -A trust >/dev/null
	"${owner[@]}" "$pg_ctl" -D "$BENCH_TMP/pg" -l "$BENCH_TMP/pg/server.log" -w \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $BENCH_TMP/pg ${BENCH_PG_SETTINGS[*]}" start >/dev/null
	BENCH_PG_PID=$(head -n 1 "$BENCH_TMP/pg/postmaster.pid")
	BENCH_PG_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	BENCH_PG_STOP=("${owner[@]}" "$pg_ctl" -D "$BENCH_TMP/pg" -m fast stop)
	say "PostgreSQL $("$BENCH_PSQL" "$BENCH_PG_URL" -qAtc 'SHOW server_version'): own cluster on 127.0.0.1:$port, postmaster $BENCH_PG_PID, settings: ${BENCH_PG_SETTINGS[*]}"
}

bench_db_url() { echo "${BENCH_PG_URL%%/postgres\?*}/$1?sslmode=disable"; }
bench_sql() { "$BENCH_PSQL" "$BENCH_PG_URL" -qAtc "$1"; }

# bench_nats_start: a nats-server with JetStream on a free port; sets
# BENCH_NATS_URL and BENCH_NATS_PID.
bench_nats_start() {
	local port
	[ -x bin/nats-server ] || (cd scripts/bench && go build -o ../../bin/nats-server github.com/nats-io/nats-server/v2) || exit 1
	port=$(bench_free_port)
	bin/nats-server -a 127.0.0.1 -p "$port" -js -sd "$BENCH_TMP/nats" >"$BENCH_TMP/nats.log" 2>&1 &
	BENCH_NATS_PID=$!
	BENCH_PIDS+=("$BENCH_NATS_PID")
	BENCH_NATS_URL=nats://127.0.0.1:$port
	for _ in $(seq 100); do
		grep -q "Server is ready" "$BENCH_TMP/nats.log" && return 0
		sleep 0.1
	done
	echo "bench: nats-server did not start; its log:" >&2
	cat "$BENCH_TMP/nats.log" >&2
	exit 1
}

# bench_wait_ready PID URL WHAT: wait until URL answers, failing when the
# process exits or after 30 s.
bench_wait_ready() {
	for _ in $(seq 150); do
		curl -sf "$2" >/dev/null 2>&1 && return 0
		kill -0 "$1" 2>/dev/null || break
		sleep 0.2
	done
	echo "bench: $3 did not become ready at $2" >&2
	exit 1
}

# bench_finish PREFIX LOG...: the EXIT trap of a benchmark script. Keeps each
# $BENCH_TMP/LOG.log as bin/bench/PREFIXLOG.log, prints the end of each when
# the script failed, then removes what the benchmark started.
bench_finish() {
	local status=$? prefix=$1 log
	shift
	mkdir -p bin/bench
	for log in "$@"; do
		[ -f "$BENCH_TMP/$log.log" ] || continue
		if [ "$status" -ne 0 ]; then
			echo "bench: failed; the end of $log's log:" >&2
			tail -n 20 "$BENCH_TMP/$log.log" >&2
		fi
		cp "$BENCH_TMP/$log.log" "bin/bench/$prefix$log.log" 2>/dev/null || true
	done
	bench_cleanup
}

# bench_api_start DB: notification-api on a free port, against the bench's
# NATS, logging to $BENCH_TMP/notification-api.log; sets BENCH_API_ADDR and BENCH_API_PID
# (and stops the one started before).
BENCH_API_PID=""
bench_api_start() {
	[ -z "$BENCH_API_PID" ] || { kill "$BENCH_API_PID"; wait "$BENCH_API_PID" 2>/dev/null || true; }
	BENCH_API_ADDR=127.0.0.1:$(bench_free_port)
	DATABASE_URL=$(bench_db_url "$1") NATS_URL=$BENCH_NATS_URL HTTP_ADDR=$BENCH_API_ADDR LOG_LEVEL=warn \
		"${BENCH_API_BIN:-./bin/notification-api}" >>"$BENCH_TMP/notification-api.log" 2>&1 &
	BENCH_API_PID=$!
	BENCH_PIDS+=("$BENCH_API_PID")
	bench_wait_ready "$BENCH_API_PID" "http://$BENCH_API_ADDR/readyz" notification-api
}

# bench_begin: say what machine and commit this is and how loaded, then
# start the cluster and nats-server.
bench_begin() {
	say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	say "uptime: $(uptime)"
	BENCH_STARTED=$(date +%s)
	bench_postgres_start
	bench_nats_start
	say "nats-server $BENCH_NATS_URL (pid $BENCH_NATS_PID)"
}

# bench_end NAME: the load at the end, and fail when a run added itself to
# BENCH_FAILED (the runs after it still ran and printed).
BENCH_FAILED=()
bench_end() {
	say "uptime: $(uptime)"
	say "done in $(($(date +%s) - BENCH_STARTED))s; removing the cluster and the JetStream store"
	if [ ${#BENCH_FAILED[@]} -gt 0 ]; then
		echo "$1: failed (each run's reason above): ${BENCH_FAILED[*]}" >&2
		exit 1
	fi
}

bench_cleanup() {
	local pid
	for pid in "${BENCH_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	BENCH_PIDS=()
	[ -n "${BENCH_PG_STOP+x}" ] && "${BENCH_PG_STOP[@]}" >/dev/null 2>&1
	rm -rf "$BENCH_TMP"
}

# CPU accounting from /proc, in clock ticks (USER_HZ, 100 a second).
bench_ticks() { # pid: utime + stime of a process (0 once it is gone)
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
bench_cluster_ticks() { # postmaster pid: the whole cluster, exited backends included
	bench_tree_ticks "$1" 1
}
bench_children_ticks() { # pid: its children alive now (a load generator's workers)
	bench_tree_ticks "$1" 0
}
bench_tree_ticks() { # pid, own (1: add the process's own and its reaped children's time)
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v p="$1" -v own="$2" '{ # processes come and go while cat reads
		pid = $1; sub(/.*\) /, "")
		if (pid == p) { if (own) t += $12 + $13 + $14 + $15 } else if ($2 == p) t += $12 + $13
	} END { print t + 0 }'
}

# bench_cost_start NAME=PID...: remember the CPU time of each party;
# NAME=cluster:PID is a PostgreSQL cluster (the process, its children alive
# and exited); NAME=children:PID the children alive of a process (a load
# generator's workers); NAME=self is what the shell
# starts in between (the benchmark's commands, finished by then, and the
# few tools of this script).
bench_cost_start() {
	BENCH_COST=("$@")
	BENCH_COST_AT=()
	local p
	for p in "$@"; do BENCH_COST_AT+=("$(bench_party_ticks "${p#*=}")"); done
	BENCH_PG_AT=$(bench_pg_mark)
	BENCH_PSI_AT="$(bench_psi_total) $(date +%s%N)"
}

# bench_psi_total: microseconds during which some runnable task waited for
# a CPU since boot (/proc/pressure/cpu; empty without PSI).
bench_psi_total() {
	awk '/^some/ { sub(/.*total=/, ""); print }' /proc/pressure/cpu 2>/dev/null || true
}

# bench_pg_mark: write transactions so far (transaction ids handed out) and
# the WAL position of the cluster; both survive a dropped database.
bench_pg_mark() {
	bench_sql "SELECT txid_current(), pg_current_wal_lsn() - '0/0'" | tr '|' ' '
}
bench_party_ticks() {
	case $1 in
	cluster:*) bench_cluster_ticks "${1#cluster:}" ;;
	self) awk '{ sub(/.*\) /, ""); print $14 + $15 }' "/proc/$$/stat" ;; # reaped children of this shell
	children:*) bench_children_ticks "${1#children:}" ;;
	*) bench_ticks "$1" ;;
	esac
}

# bench_cost_report UNITS WHAT: CPU-seconds per 1,000 UNITS of each party
# since bench_cost_start, and in all.
bench_cost_report() {
	local units=$1 what=$2 i ticks total=0 line=""
	for i in "${!BENCH_COST[@]}"; do
		ticks=$(($(bench_party_ticks "${BENCH_COST[$i]#*=}") - BENCH_COST_AT[i]))
		total=$((total + ticks))
		line+=$(awk -v n="${BENCH_COST[$i]%%=*}" -v t="$ticks" -v u="$units" 'BEGIN { printf "%s %.3f, ", n, t / 100 / u * 1000 }')
	done
	awk -v l="$line" -v t="$total" -v u="$units" -v w="$what" 'BEGIN {
		printf "  cost: CPU-seconds per 1,000 %s: %stotal %.3f (%.0f µs each)\n", w, l, t / 100 / u * 1000, t / 100 / u * 1e6 }'
	read -r x0 w0 <<<"$BENCH_PG_AT"
	read -r x1 w1 <<<"$(bench_pg_mark)"
	awk -v x=$((x1 - x0 - 1)) -v w=$((w1 - w0)) -v u="$units" -v what="$what" 'BEGIN {
		printf "  PostgreSQL: %d write transactions (%.2f per 1,000 %s), %.0f bytes of WAL each\n", x, x / u * 1000, what, w / u }'
	local p0 t0 p1 t1 over=n/a
	read -r p0 t0 <<<"$BENCH_PSI_AT"
	p1=$(bench_psi_total)
	t1=$(date +%s%N)
	[ -n "$p0" ] && [ -n "$p1" ] && over=$(awk -v p=$((p1 - p0)) -v t=$(((t1 - t0) / 1000)) 'BEGIN { q = p / t * 100; printf "%.0f %%", (q > 100 ? 100 : q) }')
	echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg); CPU pressure (some): avg10 $(awk '/^some/ { sub(/avg10=/, "", $2); print $2 " %" }' /proc/pressure/cpu 2>/dev/null || echo n/a), over the run $over of the time"
}
