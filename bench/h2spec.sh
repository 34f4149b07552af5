#!/usr/bin/env bash
# HTTP/2 conformance (issue 15): runs h2spec (github.com/summerwind/h2spec)
# against a hub on its TLS port (ALPN h2) and its plain port (h2c with prior
# knowledge), and prints h2spec's summary and failures for each.
#
#   bash bench/h2spec.sh H2SPEC_SOURCE_DIR
#
# h2spec is neither a Debian nor a crates.io/npm/PyPI package, so it is
# built here from a checkout of its sources (any copy of the repository:
# `git clone https://github.com/summerwind/h2spec`, bare or not, or an unpacked tree) with Debian's Go and the
# Go libraries it needs as Debian packages (GOPATH mode, no module download).
# This is why CI does not run it; CI runs the HTTP/2 cases it found instead
# (tests/integration/wire.rs). Results: docs/reliability.md.
set -euo pipefail
SRC=${1:?usage: bench/h2spec.sh H2SPEC_SOURCE_DIR}
SRC=$(cd "$SRC" && pwd)
cd "$(dirname "$0")/.."

GO_PACKAGES="golang-go golang-github-fatih-color-dev golang-github-spf13-cobra-dev
  golang-golang-x-net-dev golang-github-mattn-go-colorable-dev golang-github-mattn-go-isatty-dev
  golang-github-spf13-pflag-dev golang-github-inconshreveable-mousetrap-dev golang-golang-x-sys-dev"
# shellcheck disable=SC2086
dpkg -s $GO_PACKAGES >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $GO_PACKAGES
}

WORK=$(mktemp -d)
HUB_PID=
trap '[ -n "$HUB_PID" ] && kill $HUB_PID 2>/dev/null; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/go/src/github.com/summerwind"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then # a clone, bare or not
  git clone -q "$SRC" "$WORK/go/src/github.com/summerwind/h2spec"
else # a source tree
  cp -r "$SRC" "$WORK/go/src/github.com/summerwind/h2spec"
fi
(cd "$WORK/go/src/github.com/summerwind/h2spec/cmd/h2spec" &&
  GOPATH="$WORK/go:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="$WORK/cache" \
    go build -o "$WORK/h2spec" .)

cargo build --release --quiet -p ssehub
PLAIN=127.0.0.1:${PLAIN_PORT:-18480}
TLS=127.0.0.1:${TLS_PORT:-18443}
target/release/ssehub serve --listen "$PLAIN" --tls-listen "$TLS" --metrics-listen none \
  --data-dir "$WORK/hub" --publisher-jwt-key "h2spec-$RANDOM-$RANDOM-$RANDOM" >"$WORK/hub.log" 2>&1 &
HUB_PID=$!
until curl -sf "http://$PLAIN/readyz" >/dev/null; do sleep 0.05; done

echo "ssehub $(git rev-parse --short HEAD), h2spec $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)')"
for target in "TLS $TLS -t -k" "h2c $PLAIN"; do
  read -r name addr flags <<<"$target"
  echo "== $name ($addr)"
  # shellcheck disable=SC2086
  "$WORK/h2spec" -h "${addr%:*}" -p "${addr##*:}" $flags -o 5 >"$WORK/out" 2>&1 || true
  sed -n '/^Failures:/,/^Finished/p' "$WORK/out" | sed '/^Finished/d'
  tail -n 1 "$WORK/out"
done
