#!/usr/bin/env bash
# Everything the JavaScript client needs checked, from a clean checkout:
# npm ci, the build (tsc) and the type check of the tests, the size budget,
# the unit tests (vitest), npm pack (and the packed tarball imported from a
# scratch project), and the end-to-end tests (in Node and in Chromium)
# against a release ssehub.
#
# Environment: SSEHUB_BIN, the release binary to test against (built with
# cargo when unset); CHROMIUM, the browser (default /usr/bin/chromium,
# installed with apt-get when missing).
#
# Usage, from anywhere: bash clients/js/test.sh
set -euo pipefail

JS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$JS_DIR/../.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
started=$(date +%s)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"; log "finished in $(($(date +%s) - started)) s"' EXIT

log() { printf 'clients/js: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v node >/dev/null || { log "node is required (v20 or later)"; exit 1; }
cd "$JS_DIR"

log "npm ci"
npm ci --no-audit --no-fund --loglevel=error

log "build and type checks"
rm -rf dist
npm run --silent build
npm run --silent typecheck

log "size budget"
npm run --silent size

log "unit tests"
npx vitest run

log "npm pack"
npm pack --silent --pack-destination "$TMP" >"$TMP/pack.txt"
TARBALL="$TMP/$(tail -n 1 "$TMP/pack.txt")"
[ -f "$TARBALL" ] || { log "npm pack produced no tarball"; exit 1; }
tar -tzf "$TARBALL" | sort >"$TMP/files.txt"
for want in package/package.json package/dist/index.js package/dist/index.d.ts package/README.md; do
  grep -qx "$want" "$TMP/files.txt" || { log "the package lacks $want"; cat "$TMP/files.txt" >&2; exit 1; }
done
if grep -qE '^package/(src|test|browser|node_modules)/' "$TMP/files.txt"; then
  log "the package carries files it should not:"; cat "$TMP/files.txt" >&2; exit 1
fi
# The packed package, installed in a scratch project, imports in Node.
mkdir "$TMP/consumer"
(cd "$TMP/consumer" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "$TARBALL" >/dev/null)
(cd "$TMP/consumer" && node --input-type=module -e '
  const m = await import("ssehub-client");
  for (const name of ["subscribe", "publish", "discover", "client", "encodeBinary", "decodeData"]) {
    if (typeof m[name] !== "function") throw new Error(`ssehub-client exports no ${name}`);
  }
  console.log("clients/js: the packed package imports");')

if [ -z "${SSEHUB_BIN:-}" ]; then
  log "cargo build --release -p ssehub"
  (cd "$ROOT" && cargo build --release --quiet -p ssehub)
  SSEHUB_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ssehub"
fi
[ -x "$SSEHUB_BIN" ] || { log "no hub binary at $SSEHUB_BIN"; exit 1; }
if [ ! -x "$CHROMIUM" ]; then
  log "installing chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

log "end-to-end tests, Node and Chromium ($("$CHROMIUM" --version 2>/dev/null), $("$SSEHUB_BIN" --version))"
SSEHUB_BIN="$SSEHUB_BIN" CHROMIUM="$CHROMIUM" node --test --test-concurrency=1 e2e/
