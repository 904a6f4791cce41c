#!/usr/bin/env bash
# Prepares the `make cluster` test (scripts/chaos/suite/walkthrough_test.go):
# HAProxy, the proxy in front of the cluster. Only when it is missing, and
# only as root with apt-get, is Debian's haproxy installed (said first);
# otherwise the script stops and names what to install.
set -euo pipefail

say() { printf 'test-setup-cluster: %s\n' "$*" >&2; }

if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	say "no haproxy found: installing Debian's haproxy with apt-get for the make cluster test"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq haproxy >/dev/null
	exit 0
fi
say "the make cluster test needs HAProxy, and none was found."
say "Install it (Debian/Ubuntu: sudo apt-get install haproxy; macOS: brew install haproxy)."
exit 1
