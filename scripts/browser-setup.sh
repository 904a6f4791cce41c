# Sourced by the browser tests' setup scripts (test-setup-demo.sh,
# test-setup-portal.sh): browser_setup DIR WHAT finds a Chromium or Chrome,
# installs DIR's locked npm packages (playwright-core drives the browser) and
# writes the browser's path to DIR/node_modules/.chrome-path, where the Go
# test (testkit.BrowserTest) reads it.
#
# The browser is, in order: $CHROME_PATH; chromium, chromium-browser,
# google-chrome or google-chrome-stable on the PATH; the usual Linux and
# macOS locations. Only when none is found, and only as root with apt-get,
# is Debian's chromium installed (said first); otherwise the script stops
# and names what to install.

find_chrome() {
	local c
	if [ -n "${CHROME_PATH:-}" ]; then
		if [ -x "$CHROME_PATH" ]; then echo "$CHROME_PATH"; return 0; fi
		echo "browser-setup: CHROME_PATH=$CHROME_PATH is not an executable file" >&2
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

browser_setup() {
	local dir=$1 what=$2 chrome status=0
	say() { printf 'browser-setup (%s): %s\n' "$what" "$*" >&2; }
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		say "Node.js 20+ and npm are required (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node)"
		return 1
	fi
	chrome=$(find_chrome) || status=$?
	if [ "$status" = 2 ]; then
		return 1
	elif [ "$status" != 0 ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			say "no Chromium or Chrome found: installing Debian's chromium with apt-get (about 350 MB) for the browser tests"
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq
			apt-get install -y -qq chromium >/dev/null
			chrome=$(find_chrome)
		else
			say "the browser tests need Chromium or Google Chrome, and none was found."
			say "Install one (Debian: sudo apt-get install chromium; Ubuntu: sudo snap install chromium;"
			say "macOS: install Google Chrome or brew install --cask chromium), or set CHROME_PATH to its executable."
			return 1
		fi
	fi
	# npm ci starts from scratch; skip it when the tree was installed from
	# this very lock file.
	if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
		echo "==> npm ci ($dir)"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
	printf '%s\n' "$chrome" > "$dir/node_modules/.chrome-path"
	echo "==> browser for the $what test: $chrome"
}
