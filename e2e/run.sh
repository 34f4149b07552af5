#!/usr/bin/env bash
# End-to-end suite: real third-party SSE clients (the npm `eventsource`
# package, `eventsource-parser` over fetch, and Chromium's EventSource) against
# a release build of ssehub on a free loopback port.
#
# Usage, from anywhere: bash e2e/run.sh [extra node --test arguments]
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
CHROMIUM="${E2E_CHROMIUM:-/usr/bin/chromium}"
started=$(date +%s)

log() { printf 'e2e: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v node >/dev/null; then
  log "node is required (v20 or later)"
  exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
  log "installing chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

log "npm ci"
(cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)

log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)

# Two free loopback ports: the hub's and the test page's (the page's origin is
# the one allowed by CORS). Bound to port 0, then released.
read -r HUB_PORT PAGE_PORT < <(node -e '
  const net = require("node:net");
  const grab = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); });
  Promise.all([grab(), grab()]).then((servers) => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')
SECRET="$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))')"
# The trusted issuer of Mercure 1.0 access tokens, set rather than left to
# the default so the tests mint tokens for the issuer the hub was told.
ISSUER="https://auth.e2e.example"
TMP="$(mktemp -d)"
HUB_PID=

cleanup() {
  local status=$?
  if [ -n "$HUB_PID" ] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$TMP/hub.log" ]; then
    log "hub log (last 40 lines):"
    tail -n 40 "$TMP/hub.log" >&2
  fi
  rm -rf "$TMP"
  log "finished in $(($(date +%s) - started)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HUB="http://127.0.0.1:$HUB_PORT"
SSEHUB="${CARGO_TARGET_DIR:-$ROOT/target}/release/ssehub"
log "starting the hub on $HUB"
# The 1.0 access token cookie is renamed from its default,
# __Secure-mercure_access_token: browsers refuse __Secure- cookies for plain
# http origins, and this hub is plain http on loopback (browser.test.mjs sets
# the cookie in Chromium; mercure-v1.test.mjs covers the default name).
"$SSEHUB" serve \
  --listen "127.0.0.1:$HUB_PORT" \
  --tls-listen none \
  --metrics-listen 127.0.0.1:0 \
  --data-dir "$TMP/data" \
  --publisher-jwt-key "$SECRET" \
  --jwt-issuer "$ISSUER" \
  --access-token-cookie mercure_access_token \
  --subscriptions \
  --anonymous \
  --heartbeat 1s \
  --cors-origins "http://127.0.0.1:$PAGE_PORT" \
  >"$TMP/hub.log" 2>&1 &
HUB_PID=$!

# Bounded wait for /readyz.
node -e '
  const url = process.argv[1] + "/readyz";
  const deadline = Date.now() + 10000;
  (async () => {
    for (;;) {
      try { if ((await fetch(url)).ok) return; } catch {}
      if (Date.now() > deadline) { console.error("e2e: the hub did not answer " + url + " within 10 s"); process.exit(1); }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();' "$HUB"

export E2E_HUB="$HUB" E2E_SECRET="$SECRET" E2E_JWT_ISSUER="$ISSUER" E2E_PAGE_PORT="$PAGE_PORT" \
  E2E_CHROMIUM="$CHROMIUM" E2E_SSEHUB="$SSEHUB"
cd "$E2E_DIR"
node --test --test-concurrency=1 --test-timeout=60000 "$@" ./*.test.mjs

# The deployment configs (deploy/) and the browser's connection limit.
bash "$E2E_DIR/deploy.sh"

# Three nodes sharing one Redis stream behind deploy/cluster/ (nginx, HAProxy).
bash "$E2E_DIR/cluster.sh"
