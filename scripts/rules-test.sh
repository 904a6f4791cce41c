#!/usr/bin/env bash
# Checks and unit-tests the Prometheus rules in deploy/prometheus with
# promtool (Debian's prometheus package, or the release tarball from
# prometheus.io). Which metrics they may name is checked by a Go test
# (deploy/standalone/notifyd/observability_test.go), part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	# As root with apt-get (CI), as the test set-ups do for Chromium and HAProxy.
	echo "rules-test: no promtool found: installing Debian's prometheus (which has it) with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! command -v promtool >/dev/null; then
	echo "rules-test: promtool is not installed; it comes with Prometheus:" >&2
	echo "  Debian/Ubuntu: apt-get install prometheus   macOS: brew install prometheus" >&2
	echo "  or the promtool binary of a release from https://prometheus.io/download/" >&2
	exit 1
fi
promtool --version 2>&1 | head -1
promtool check rules deploy/prometheus/notify.rules.yml
promtool test rules deploy/prometheus/notify.rules.test.yml
