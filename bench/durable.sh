#!/usr/bin/env bash
# Durable-history benchmarks (issue 3): durable publishes per second with 64
# keep-alive publishers, replay of 100,000 events, time to the first event
# when resuming 1,000,000 events back, and restart time with that history.
# Needs h2load (Debian nghttp2-client); installs it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client; }
cargo build --release --quiet --workspace

PORT=${PORT:-18181}
DATA=$(mktemp -d)
SECRET=bench-secret-$RANDOM
BIN=target/release/ssehub
URL=http://127.0.0.1:$PORT/.well-known/mercure
HUB_PID=
trap '[ -n "$HUB_PID" ] && kill $HUB_PID 2>/dev/null; rm -rf "$DATA"' EXIT

start_hub() {
  $BIN serve --listen 127.0.0.1:$PORT --data-dir "$DATA/hub" --publisher-jwt-key "$SECRET" \
    --history-size 2000000 --history-bytes 4000000000 >"$DATA/hub.log" 2>&1 &
  HUB_PID=$!
  until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do sleep 0.01; done
}

PUB=$($BIN token --publish '*' --publisher-jwt-key "$SECRET")
SUB=$($BIN token --subscribe '*' --publisher-jwt-key "$SECRET")
printf 'topic=urn%%3Abench&data=%s' "$(head -c 100 /dev/zero | tr '\0' x)" >"$DATA/body"
publish_many() {
  h2load --h1 -c 64 -n "$1" -d "$DATA/body" -H "Authorization: Bearer $PUB" \
    -H 'Content-Type: application/x-www-form-urlencoded' "$URL" | grep -E '^finished in|^requests:'
}
marker() { curl -sf -o /dev/null -H "Authorization: Bearer $PUB" -d topic=urn:bench -d "id=$1" -d data=m "$URL"; }

echo "machine: $(nproc) cores, $(uname -r), $(df -T "$DATA" | awk 'NR==2 {print $2}') on $(df "$DATA" | awk 'NR==2 {print $1}')"
start_hub
echo "== durable publishes, 64 publishers over HTTP/1.1 keep-alive, 100-byte data (3 runs of 100,000)"
for _ in 1 2 3; do publish_many 100000; done
marker bench-start
publish_many 900000 >/dev/null
marker bench-100k
publish_many 100000 >/dev/null
echo "== replay of 100,000 events to one reconnecting client (3 runs)"
for _ in 1 2 3; do target/release/ssehub-bench replay "$URL" urn:bench bench-100k 100000 "$SUB"; done
echo "== resume from an id 1,000,000 events back: time to the first event (3 runs)"
for _ in 1 2 3; do target/release/ssehub-bench replay "$URL" urn:bench bench-start 1 "$SUB"; done
echo "== kill -9 and restart with $(du -sh "$DATA/hub/log" | cut -f1) of history"
kill -9 $HUB_PID; wait $HUB_PID 2>/dev/null || true
t0=$(date +%s%N); start_hub; t1=$(date +%s%N)
echo "ready after $(( (t1 - t0) / 1000000 )) ms, RSS $(( $(awk '/VmRSS/ {print $2}' /proc/$HUB_PID/status) / 1024 )) MiB"
target/release/ssehub-bench replay "$URL" urn:bench bench-start 1 "$SUB"
