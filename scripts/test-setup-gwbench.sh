#!/usr/bin/env bash
# Installs the Node.js reference server's locked packages, which the load
# generator's tests (scripts/bench/gwbench) and make bench-gateway run against.
set -euo pipefail
cd "$(dirname "$0")/../deploy/reference-node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "test-setup-gwbench: node and npm are required (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi
# npm ci starts from scratch; skip it when the tree was installed from this
# very lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "==> npm ci (deploy/reference-node)"
	npm ci --no-audit --no-fund --loglevel=error
fi
