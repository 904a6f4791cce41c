#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a PostgreSQL that answers:
#   1. DATABASE_URL when it is set;
#   2. otherwise the server on localhost:5432 (database "notify", created if missing);
#   3. otherwise a private server started from the machine's PostgreSQL
#      binaries, with its data in .pgdata/ and listening on 127.0.0.1:54329.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'with-postgres: %s\n' "$*" >&2; }

find_bin() {
	local name=$1 dir
	if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
	for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/pgsql/bin; do
		if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
	done
	return 1
}

answers() { # host port
	if PG_ISREADY=$(find_bin pg_isready); then
		"$PG_ISREADY" -q -h "$1" -p "$2" -t 2
	else
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
	fi
}

ensure_database() { # base-url dbname
	local psql
	psql=$(find_bin psql) || return 0
	if ! "$psql" "$1" -tAc "SELECT 1 FROM pg_database WHERE datname = '$2'" | grep -q 1; then
		"$psql" "$1" -qc "CREATE DATABASE $2" >/dev/null
	fi
}

if [ -n "${DATABASE_URL:-}" ]; then
	say "using DATABASE_URL from the environment"
elif answers 127.0.0.1 5432; then
	ensure_database "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" notify
	export DATABASE_URL="postgres://postgres@127.0.0.1:5432/notify?sslmode=disable"
	say "using the PostgreSQL on 127.0.0.1:5432 (database notify)"
else
	PORT=54329
	DATA=$PWD/.pgdata
	if ! INITDB=$(find_bin initdb) || ! PG_CTL=$(find_bin pg_ctl); then
		say "no PostgreSQL answers on 127.0.0.1:5432 and no PostgreSQL binaries were found."
		say "Install them (Debian/Ubuntu: 'apt-get install postgresql'; macOS: 'brew install postgresql@15') or set DATABASE_URL."
		exit 1
	fi
	run_as=()
	if [ "$(id -u)" = 0 ]; then # PostgreSQL refuses to run as root
		user=postgres
		id "$user" >/dev/null 2>&1 || user=nobody
		run_as=(runuser -u "$user" --)
	fi
	if [ ! -f "$DATA/PG_VERSION" ]; then
		say "starting a private PostgreSQL in $DATA on 127.0.0.1:$PORT (first run: initdb)"
		mkdir -p "$DATA"
		[ ${#run_as[@]} -gt 0 ] && chown "$user" "$DATA"
		"${run_as[@]}" "$INITDB" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
	fi
	if ! answers 127.0.0.1 $PORT; then
		say "starting the private PostgreSQL in $DATA on 127.0.0.1:$PORT"
		"${run_as[@]}" "$PG_CTL" -D "$DATA" -l "$DATA/server.log" -w -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=300" start >/dev/null
	fi
	ensure_database "postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable" notify
	export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/notify?sslmode=disable"
fi
exec "$@"
