#!/usr/bin/env bash
# CI, run as root after `make test`: proves that a normal user runs the tests
# too, with nothing installed for them. It creates the user notifyci (or
# TEST_USER), copies the checkout and the Go module cache into its home, and
# runs as that user, through with-postgres.sh and the test setup (which must
# find the browser, not install it), the tests of the CLI, the
# cannot-listen errors, and notifyd (the README walkthrough against the
# binary, the demo page in the browser).
set -euo pipefail
cd "$(dirname "$0")/.."

user=${TEST_USER:-notifyci}
if [ "$(id -u)" != 0 ]; then
	echo "test-as-user: run it as root: it creates the user $user" >&2
	exit 1
fi
if ! id "$user" >/dev/null 2>&1; then
	echo "==> creating the user $user"
	useradd --create-home --shell /bin/bash "$user"
fi
home=$(getent passwd "$user" | cut -d: -f6)
work=$home/notify
echo "==> copying the checkout and the Go module cache to $home"
rm -rf "$work"
mkdir -p "$work" "$home/go/pkg"
tar --exclude=./.git --exclude=./.pgdata --exclude=./data --exclude=./bin --exclude=./.tools -cf - . | tar -xf - -C "$work"
rm -rf "$home/go/pkg/mod"
cp -a "$(go env GOMODCACHE)" "$home/go/pkg/mod"
chown -R "$user:" "$home"

echo "==> tests as $user (uid $(id -u "$user"))"
runuser -u "$user" -- env -i HOME="$home" USER="$user" \
	PATH="$(dirname "$(command -v go)"):/usr/local/bin:/usr/bin:/bin" \
	GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=readonly \
	bash -c 'set -euo pipefail
		cd "$HOME/notify"
		./scripts/with-postgres.sh bash -c "
			bash scripts/test-setup-demo.sh
			bash scripts/test-setup-gateway.sh
			(cd pkg && go test -race -count=1 ./cmd/notifyctl ./netx ./config)
			(cd deploy/standalone && go test -race -count=1 ./notifyd)
		"'
