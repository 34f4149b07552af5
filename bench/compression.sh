#!/usr/bin/env bash
# Issue 17, compressed streams: ssehub alone on CPU 0, the load tool on CPU 1,
# 1 KiB JSON payloads (--payload-shape json). For each run and each variant
# (compression off; on with subscribers asking for zstd; on with gzip):
# fan-out to SUBS subscribers over HTTP/1.1 at RATES (bytes per delivery as
# received and decoded, hub CPU per delivery, latency), then SUBS idle
# subscriptions (hub RSS per stream). One JSON per run under $OUT; the
# figures are in docs/benchmarks.md, "Issue 17: compressed streams".
#
#   bash bench/compression.sh
#   env: RUNS=3 SUBS=10000 RATES=10,20 STEP=8 OUT=bench/results/2026-12-02/compression
#        IDLE=0 (skip the idle runs)
#        H2=1 (subscribe over HTTP/2 on TLS, 100 streams per connection, instead)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SUBS=${SUBS:-10000}
RATES=${RATES:-10,20}
STEP=${STEP:-8}
OUT=${OUT:-bench/results/2026-12-02/compression}
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"
cargo build --release --quiet -p ssehub -p ssehub-bench
TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
SECRET=compression-secret-$RANDOM
PORT=18400

# start COMPRESSION: ssehub on CPU 0 with --compression COMPRESSION.
start() {
  rm -rf "$TMP/data"
  taskset -c 0 "$BIN/ssehub" serve --listen 127.0.0.1:$PORT --tls-listen 127.0.0.1:$((PORT + 1)) --http3 false --metrics-listen none \
    --data-dir "$TMP/data" --publisher-jwt-key "$SECRET" --anonymous --history-size 1000000 \
    --compression "$1" >"$TMP/hub.out" 2>&1 &
  SERVER_PID=$!
  # Ready once the plain port answers and the TLS certificate is written.
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && [ -f "$TMP/data/tls/cert.pem" ] && return 0
    sleep 0.05
  done
  cat "$TMP/hub.out" >&2; return 1
}

# run NAME COMPRESSION ACCEPT SCENARIO [tool options]
run() {
  local name=$1 compression=$2 accept=$3 scenario=$4; shift 4
  start "$compression"
  local sub=(--sub-url "http://127.0.0.1:$PORT/.well-known/mercure?topic={topic}")
  if [ -n "${H2:-}" ]; then
    sub=(--sub-url "https://localhost:$((PORT + 1))/.well-known/mercure?topic={topic}" --h2-streams 100 --ca-cert "$TMP/data/tls/cert.pem")
  fi
  local ae=()
  [ "$accept" != none ] && ae=(--accept-encoding "$accept")
  echo "== $scenario, $name"
  taskset -c 1 "$BIN/ssehub-bench" run --scenario "$scenario" --label "$name" --server-pid "$SERVER_PID" \
    "${sub[@]}" "${ae[@]}" --pub-url "http://127.0.0.1:$PORT/.well-known/mercure" --pub-format mercure \
    --pub-header "Authorization: Bearer $("$BIN/ssehub" token --publish '*' --publisher-jwt-key "$SECRET")" \
    --json "$OUT/$scenario-$name.json" "$@" \
    2> >(tr '\r' '\n' | grep -E "^($name|ssehub-bench|worker):" >&2) || echo "$scenario, $name failed" >&2
  stop_server
  PORT=$((PORT + 2))
}

proto=h1; [ -n "${H2:-}" ] && proto=h2
echo "machine: $(nproc) cores, $(uname -r); $("$BIN/ssehub" --version)"
for r in $(seq "$RUNS"); do
  for variant in "off off none" "zstd on zstd" "gzip on gzip"; do
    set -- $variant
    run "$proto-$1-$r" "$2" "$3" fanout --subscribers "$SUBS" --payload 1024 --payload-shape json \
      --rates "$RATES" --step-seconds "$STEP" --p99-limit-ms 100000
  done
done
[ "${IDLE:-1}" = 0 ] && exit 0
for variant in "off off none" "zstd on zstd" "gzip on gzip"; do
  set -- $variant
  run "$proto-$1" "$2" "$3" idle --subscribers "$SUBS" --idle-seconds 3
done
