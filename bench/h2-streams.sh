#!/usr/bin/env bash
# HTTP/2 subscriptions: 1,000 TLS connections with 1 stream each, then with
# 100 streams each (100,000 subscriptions in one hub process); prints the
# server's RSS and the cost of each extra stream. Server on CPU 0, load on 1.
# H2_OPEN=one-by-one opens each stream once the one before it was answered
# (default: together, a connection's streams all at once).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
BIN=target/release
TMP=$(mktemp -d)
HUB=
trap '[ -n "$HUB" ] && kill $HUB 2>/dev/null; rm -rf "$TMP"' EXIT
CONNECTIONS=${CONNECTIONS:-1000}
for streams in 1 ${STREAMS:-100}; do
  rm -rf "$TMP/data"
  taskset -c 0 $BIN/ssehub serve --listen 127.0.0.1:18501 --tls-listen 127.0.0.1:18502 --http3 false \
    --data-dir "$TMP/data" --publisher-jwt-key k --anonymous --max-concurrent-streams 1000 >"$TMP/hub.out" 2>&1 &
  HUB=$!
  until [ -f "$TMP/data/tls/cert.pem" ] && (exec 3<>/dev/tcp/127.0.0.1/18501) 2>/dev/null; do sleep 0.05; done
  echo "== $CONNECTIONS connections x $streams streams"
  taskset -c 1 $BIN/ssehub-bench run --scenario idle --subscribers $((CONNECTIONS * streams)) --h2-streams "$streams" --h2-open "${H2_OPEN:-together}" \
    --ca-cert "$TMP/data/tls/cert.pem" --sub-url 'https://localhost:18502/.well-known/mercure?topic={topic}' \
    --pub-url http://127.0.0.1:18501/.well-known/mercure --connect-rate 500 --idle-seconds 10 --server-pid $HUB \
    --label "h2x$streams" --json "${OUT:-$TMP}/h2-idle-x$streams.json" 2> >(tr '\r' '\n' | grep -E '^(h2x|ssehub-bench|worker)' >&2)
  kill $HUB; wait $HUB 2>/dev/null || true; HUB=
done
