#!/usr/bin/env bash
# Prepares the demo page's browser test: a Chromium or Chrome, and the locked
# npm packages (playwright-core drives the browser; socket.io-client is the
# source of the page's embedded bundle).
#
# The browser is, in order: $CHROME_PATH; chromium, chromium-browser,
# google-chrome or google-chrome-stable on the PATH; the usual Linux and
# macOS locations. Only when none is found, and only as root with apt-get,
# is Debian's chromium installed (said first); otherwise the script stops
# and names what to install. The path found is written to
# node_modules/.chrome-path, where the Go test reads it.
set -euo pipefail
cd "$(dirname "$0")/../deploy/standalone/demo/e2e"

say() { printf 'test-setup-demo: %s\n' "$*" >&2; }

find_chrome() {
	local c
	if [ -n "${CHROME_PATH:-}" ]; then
		if [ -x "$CHROME_PATH" ]; then echo "$CHROME_PATH"; return 0; fi
		say "CHROME_PATH=$CHROME_PATH is not an executable file"
		return 2
	fi
	for c in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
	done
	for c in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome /usr/bin/google-chrome-stable \
		/snap/bin/chromium /opt/google/chrome/chrome \
		"/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" \
		"/Applications/Chromium.app/Contents/MacOS/Chromium" \
		"$HOME/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" \
		"$HOME/Applications/Chromium.app/Contents/MacOS/Chromium"; do
		if [ -x "$c" ]; then echo "$c"; return 0; fi
	done
	return 1
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	say "Node.js 20+ and npm are required (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node)"
	exit 1
fi

status=0
chrome=$(find_chrome) || status=$?
if [ "$status" = 2 ]; then
	exit 1
elif [ "$status" != 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "no Chromium or Chrome found: installing Debian's chromium with apt-get (about 350 MB) for the demo page's browser test"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq chromium >/dev/null
		chrome=$(find_chrome)
	else
		say "the demo page's browser test needs Chromium or Google Chrome, and none was found."
		say "Install one (Debian: sudo apt-get install chromium; Ubuntu: sudo snap install chromium;"
		say "macOS: install Google Chrome or brew install --cask chromium), or set CHROME_PATH to its executable."
		exit 1
	fi
fi

# npm ci starts from scratch; skip it when the tree was installed from this
# very lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "==> npm ci (deploy/standalone/demo/e2e)"
	npm ci --no-audit --no-fund --loglevel=error
fi
printf '%s\n' "$chrome" > node_modules/.chrome-path
echo "==> browser for the demo test: $chrome"
