#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a PostgreSQL that answers:
#   1. DATABASE_URL when it is set;
#   2. otherwise the server on 127.0.0.1:5432, as user postgres without a
#      password (database "notify", created if missing);
#   3. otherwise a private server started from the machine's PostgreSQL
#      binaries (Debian, Homebrew, Postgres.app), with its data in .pgdata/
#      and listening on 127.0.0.1:54329, run as the current user (as root:
#      as the postgres user).
# Portable to macOS's bash 3.2: no empty arrays, no GNU-only options.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'with-postgres: %s\n' "$*" >&2; }

# pg_dirs lists the directories that may hold PostgreSQL binaries, newest
# major version first.
pg_dirs() {
	for d in /usr/lib/postgresql/*/bin /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin \
		/opt/homebrew/opt/postgresql/bin /usr/local/opt/postgresql/bin \
		/Applications/Postgres.app/Contents/Versions/*/bin /usr/local/pgsql/bin; do
		[ -d "$d" ] && printf '%s\n' "$d"
	done | awk '{ v = $0; sub(/^[^0-9]*/, "", v); print (v + 0) "\t" $0 }' | sort -rn | cut -f2
}

find_bin() {
	local name=$1 dir
	if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
	for dir in $(pg_dirs); do
		if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
	done
	return 1
}

answers() { # host port
	local pg_isready
	if pg_isready=$(find_bin pg_isready); then
		"$pg_isready" -q -h "$1" -p "$2" -t 2
	else
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
	fi
}

# accepts_postgres_user tells whether url lets user postgres in without a
# password (true when psql is missing: the services will say otherwise).
accepts_postgres_user() {
	local psql
	psql=$(find_bin psql) || return 0
	"$psql" "$1" -tAc 'SELECT 1' >/dev/null 2>&1
}

ensure_database() { # base-url dbname
	local psql
	psql=$(find_bin psql) || return 0
	if ! "$psql" "$1" -tAc "SELECT 1 FROM pg_database WHERE datname = '$2'" | grep -q 1; then
		"$psql" "$1" -qc "CREATE DATABASE $2" >/dev/null
	fi
}

# as_owner runs a command as the owner of the private server: PostgreSQL
# refuses to run as root.
RUN_AS=
as_owner() {
	if [ -n "$RUN_AS" ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

LOCAL=postgres://postgres@127.0.0.1:5432
if [ -n "${DATABASE_URL:-}" ]; then
	say "using DATABASE_URL from the environment"
elif answers 127.0.0.1 5432 && accepts_postgres_user "$LOCAL/postgres?sslmode=disable"; then
	ensure_database "$LOCAL/postgres?sslmode=disable" notify
	export DATABASE_URL="$LOCAL/notify?sslmode=disable"
	say "using the PostgreSQL on 127.0.0.1:5432 (database notify)"
else
	if answers 127.0.0.1 5432; then
		say "the PostgreSQL on 127.0.0.1:5432 does not let user postgres in without a password;"
		say "starting a private one instead (or set DATABASE_URL to a role that may create databases)."
	fi
	PORT=54329
	DATA=$PWD/.pgdata
	if ! INITDB=$(find_bin initdb) || ! PG_CTL=$(find_bin pg_ctl); then
		say "no PostgreSQL answers on 127.0.0.1:5432 and no PostgreSQL binaries (initdb, pg_ctl) were found."
		say "Install them (Debian/Ubuntu: 'apt-get install postgresql'; macOS: 'brew install postgresql@15') or set DATABASE_URL."
		exit 1
	fi
	if [ "$(id -u)" = 0 ]; then
		RUN_AS=postgres
		id "$RUN_AS" >/dev/null 2>&1 || RUN_AS=nobody
	fi
	if [ ! -f "$DATA/PG_VERSION" ]; then
		say "starting a private PostgreSQL in $DATA on 127.0.0.1:$PORT (first run: initdb)"
		mkdir -p "$DATA"
		if [ -n "$RUN_AS" ]; then chown "$RUN_AS" "$DATA"; fi
		as_owner "$INITDB" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
	fi
	if ! answers 127.0.0.1 $PORT; then
		say "starting the private PostgreSQL in $DATA on 127.0.0.1:$PORT"
		as_owner "$PG_CTL" -D "$DATA" -l "$DATA/server.log" -w -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=300" start >/dev/null
	fi
	ensure_database "postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable" notify
	export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/notify?sslmode=disable"
	say "using the private PostgreSQL on 127.0.0.1:$PORT (database notify)"
fi
exec "$@"
