#!/usr/bin/env bash
# Cross-node fan-out on the Redis store: the fanout scenario of ssehub-bench
# against
#   redis-1node   one node with --store redis://
#   redis-3nodes  three nodes sharing one Redis stream, subscriptions spread
#                 over the three (worker w on node w % 3) and publishes taking
#                 the nodes in turn (one in flight per topic, so still one
#                 sequence per topic)
#   disk-1node    for reference, one node with the default disk store
# RUNS times each (setups interleaved within a run), fresh redis-server and
# nodes for every measurement. Everything on the server side (the nodes and
# redis-server) runs on CPU 0, the load tool on CPU 1, as in compare.sh.
# redis-server runs without persistence (--save '' --appendonly no): this
# measures the hub, not Redis's fsync. One JSON per run goes to $OUT;
# `python3 bench/report.py --vs redis-1node --vs disk-1node $OUT` prints the
# tables.
#
#   bash bench/cluster.sh
# Rates rise as in compare.sh but a step must pass p99 250 ms (not 100 ms)
# to end a run, so that one slow step does not cut a run short and most
# rows are medians of every run. Other processes on the machine skew the
# numbers: load.txt gives, per measurement, the load average before it and
# the CPU time other processes used during it.
#
#   bash bench/cluster.sh
#   env: RUNS=3 SUBS=6000 RATES=5,10,20,50,100,200 STEP=5 P99_LIMIT=250
#        OUT=bench/results/DATE/cluster SETUPS="redis-1node redis-3nodes disk-1node"
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SUBS=${SUBS:-6000}
RATES=${RATES:-5,10,20,50,100,200}
STEP=${STEP:-5}
P99_LIMIT=${P99_LIMIT:-250}
OUT=${OUT:-bench/results/$(date +%F)/cluster}
SETUPS=${SETUPS:-redis-1node redis-3nodes disk-1node}
mkdir -p "$OUT"

command -v redis-server >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
}
cargo build --release --quiet --workspace
BIN=${CARGO_TARGET_DIR:-target}/release
# shellcheck source=bench/lib.sh
source bench/lib.sh
SECRET=cluster-secret-$RANDOM
TOKEN=$($BIN/ssehub token --publish '*' --publisher-jwt-key "$SECRET")

start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$TMP/redis"
  taskset -c 0 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$TMP/redis" \
    --save '' --appendonly no --daemonize no --loglevel warning >"$TMP/redis.out" 2>&1 &
  PIDS+=($!)
  REDIS_PID=$!
  wait_redis "$REDIS_PORT" "$TMP/redis.out"
}

# Starts node $1 with store $2; appends to NODE_PIDS, SUB_URLS, PUB_URLS.
start_node() {
  local i=$1 store=$2 port
  port=$(free_port)
  rm -rf "$TMP/node$i" && mkdir -p "$TMP/node$i"
  taskset -c 0 $BIN/ssehub serve --listen 127.0.0.1:"$port" --tls-listen none --metrics-listen 127.0.0.1:0 --data-dir "$TMP/node$i" \
    --publisher-jwt-key "$SECRET" --anonymous --history-size 1000000 --store "$store" \
    --redis-stream bench >"$TMP/node$i.out" 2>&1 &
  PIDS+=($!)
  NODE_PIDS+=($!)
  wait_url "http://127.0.0.1:$port/readyz" "node $i" "$TMP/node$i.out"
  SUB_URLS+=(--sub-url "http://127.0.0.1:$port/.well-known/mercure?topic={topic}")
  PUB_URLS+=(--pub-url "http://127.0.0.1:$port/.well-known/mercure")
}

# CPU seconds used so far by the whole machine (not idle, not I/O wait) and
# by this script with every child it has reaped (the nodes, redis-server,
# the load tool and its workers).
cpu_busy() { awk '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) / 100 }' /proc/stat; }
cpu_ours() { sed 's/.*) //' /proc/$$/stat | awk '{ print ($12 + $13 + $14 + $15) / 100 }'; }

bench() {
  local setup=$1 run=$2 nodes store i pid
  NODE_PIDS=() SUB_URLS=() PUB_URLS=()
  case $setup in
    redis-1node) nodes=1 store=redis ;;
    redis-3nodes) nodes=3 store=redis ;;
    disk-1node) nodes=1 store=disk ;;
    *) echo "unknown setup $setup" >&2; return 1 ;;
  esac
  local server_pids=()
  if [ "$store" = redis ]; then
    start_redis
    store=redis://127.0.0.1:$REDIS_PORT
    server_pids+=(--server-pid "$REDIS_PID")
  fi
  for i in $(seq "$nodes"); do start_node "$i" "$store"; done
  for pid in "${NODE_PIDS[@]}"; do server_pids+=(--server-pid "$pid"); done
  local before busy0 ours0 t0
  before="$(uptime | sed 's/.*load/load/')"
  echo "== $setup, run $run; $before"
  busy0=$(cpu_busy) ours0=$(cpu_ours) t0=$(date +%s.%N)
  # Three workers in every setup, so the load tool is the same whatever
  # the number of nodes (with three nodes, one worker per node).
  taskset -c 1 $BIN/ssehub-bench run --scenario fanout --label "$setup" --workers 3 \
    --subscribers "$SUBS" --payload 100 --rates "$RATES" --step-seconds "$STEP" --p99-limit-ms "$P99_LIMIT" \
    "${SUB_URLS[@]}" "${PUB_URLS[@]}" --pub-format mercure --pub-header "Authorization: Bearer $TOKEN" \
    "${server_pids[@]}" --json "$OUT/fanout-$setup-$run.json" \
    2> >(tr '\r' '\n' | grep -E "^($setup|ssehub-bench|worker|publish)" >&2) \
    || echo "$setup, run $run failed" >&2
  stop_all
  rm -rf "$TMP"/node* "$TMP/redis"
  awk -v s="$setup" -v r="$run" -v l="$before" -v b="$busy0 $(cpu_busy)" -v o="$ours0 $(cpu_ours)" -v t="$t0 $(date +%s.%N)" 'BEGIN {
    split(b, B, " "); split(o, O, " "); split(t, T, " ")
    other = (B[2] - B[1]) - (O[2] - O[1]); if (other < 0) other = 0
    printf "%s, run %s: before, %s; other processes used %.1f CPU-s in %.0f s (%.2f cores)\n", s, r, l, other, T[2] - T[1], other / (T[2] - T[1])
  }' | tee -a "$OUT/load.txt"
}

{
  echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "versions: $($BIN/ssehub --version), $(redis-server --version | cut -d' ' -f1-3)"
  echo "command: RUNS=$RUNS SUBS=$SUBS RATES=$RATES STEP=$STEP P99_LIMIT=$P99_LIMIT SETUPS=\"$SETUPS\" bash bench/cluster.sh"
  echo "started: $(date -Is); $(uptime | sed 's/.*load/load/')"
  # The second of two samples a second apart: CPU use now, not since boot.
  top -bn2 -d 1 | awk '/^top -/ {n++} n == 2 && m++ < 20'
} | tee "$OUT/machine.txt"
: >"$OUT/load.txt"
for run in $(seq "$RUNS"); do
  for setup in $SETUPS; do
    bench "$setup" "$run"
  done
done
echo "finished: $(date -Is); $(uptime | sed 's/.*load/load/')" | tee -a "$OUT/machine.txt"
python3 bench/report.py --vs redis-1node --vs disk-1node "$OUT"
