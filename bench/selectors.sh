#!/usr/bin/env bash
# Issue 17, selectors that scale: 50,000 HTTP/2 subscriptions over TLS (500
# connections x 100 streams) holding distinct exact topics, distinct URI
# templates, or one shared template, and publishes that match none of them;
# prints the hub's CPU time per publish. Server on CPU 0, load on CPU 1;
# heartbeats every hour so that the idle hub costs next to nothing.
# KINDS="exact templates one-template" CONNECTIONS=500 STREAMS=100 RATE=30
# SECONDS_PER_WINDOW=15 OUT=dir (JSON results) LABEL=before|after;
# BIN=dir runs the ssehub and ssehub-bench found there instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --locked -p ssehub -p ssehub-bench
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
TMP=$(mktemp -d)
HUB=
trap '[ -n "$HUB" ] && kill $HUB 2>/dev/null; rm -rf "$TMP"' EXIT
CONNECTIONS=${CONNECTIONS:-500}
STREAMS=${STREAMS:-100}
SECRET=bench-secret-bench-secret-bench-secret
TOKEN=$($BIN/ssehub token --publish '*' --publisher-jwt-key "$SECRET")
for kind in ${KINDS:-exact templates one-template}; do
  rm -rf "$TMP/data"
  taskset -c 0 $BIN/ssehub serve --listen 127.0.0.1:18511 --tls-listen 127.0.0.1:18512 --http3 false \
    --data-dir "$TMP/data" --publisher-jwt-key "$SECRET" --anonymous --max-concurrent-streams 1000 --heartbeat 1h >"$TMP/hub.out" 2>&1 &
  HUB=$!
  until [ -f "$TMP/data/tls/cert.pem" ] && (exec 3<>/dev/tcp/127.0.0.1/18511) 2>/dev/null; do sleep 0.05; done
  echo "== $kind: $CONNECTIONS connections x $STREAMS streams ($(uptime | sed 's/.*load/load/'))"
  taskset -c 1 $BIN/ssehub-bench run --scenario selectors --selectors "$kind" \
    --subscribers $((CONNECTIONS * STREAMS)) --h2-streams "$STREAMS" \
    --ca-cert "$TMP/data/tls/cert.pem" --sub-url 'https://localhost:18512/.well-known/mercure?topic={topic}' \
    --pub-url http://127.0.0.1:18511/.well-known/mercure --pub-format mercure --pub-header "Authorization: Bearer $TOKEN" \
    --connect-rate 200 --rates "${RATE:-30}" --step-seconds "${SECONDS_PER_WINDOW:-15}" --server-pid $HUB \
    --label "${LABEL:-hub}-$kind" --json "${OUT:-$TMP}/${LABEL:-hub}-$kind.json" 2> >(tr '\r' '\n' | grep -E "^(${LABEL:-hub}-|ssehub-bench|worker|publish)" >&2)
  kill $HUB; wait $HUB 2>/dev/null || true; HUB=
done
