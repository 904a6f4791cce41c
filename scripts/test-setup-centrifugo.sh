#!/usr/bin/env bash
# Installs Centrifugo, the Go real-time server make bench-gateway measures
# next to the gateway and the Node.js reference, into .tools/centrifugo (a
# link to .tools/centrifugo-<version>/centrifugo), with go install at a
# pinned version. The gwbench tests and make bench-gateway run it.
# The first build takes minutes (a large module); later runs find it.
set -euo pipefail
cd "$(dirname "$0")/.."
CENTRIFUGO_VERSION=v6.9.1
dir=$PWD/.tools/centrifugo-$CENTRIFUGO_VERSION
if [ ! -x "$dir/centrifugo" ]; then
	echo "==> go install github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION (into .tools/)"
	GOBIN=$dir GOWORK=off go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
fi
ln -sfn "centrifugo-$CENTRIFUGO_VERSION/centrifugo" .tools/centrifugo
