#!/usr/bin/env bash
# Installs the realtime gateway's end-to-end test client (the real npm
# socket.io-client, at the version locked in package-lock.json). test.sh runs
# every scripts/test-setup-*.sh before the Go tests.
set -euo pipefail
cd "$(dirname "$0")/../services/realtime-gateway/e2e"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "test-setup-gateway: node and npm are required (Node.js 20+); on Debian: apt-get install nodejs npm" >&2
	exit 1
fi
# Skip the install when node_modules was installed from this lock file.
if cmp -s package-lock.json node_modules/.installed-from-lock 2>/dev/null; then
	exit 0
fi
echo "==> npm ci (services/realtime-gateway/e2e)"
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.installed-from-lock
