#!/usr/bin/env bash
# Runs ssehub, Nchan and the floor side by side with ssehub-bench: each
# server alone on CPU 0, the load tool on CPU 1, RUNS times per scenario.
# Results (one JSON per run) go to $OUT; bench/report.py turns them into the
# tables of docs/benchmarks.md.
#
#   bash bench/compare.sh [scenario ...]      (default: idle fanout storm slow rooms; also fanout-1k)
#   env: RUNS=3 SUBS=10000 IDLE_SUBS=15000 OUT=bench/results SERVERS="ssehub nchan floor"
#        SSEHUB_ARGS="--store memory" (extra flags for ssehub serve, for A/B runs)
#        P99_LIMIT=100 (fanout raises the rate until p99 passes it, in ms, or deliveries fall behind)
#        RATES=5,10,20,50,100,200,400 (fanout's publish rates per second, rising)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SUBS=${SUBS:-10000}
IDLE_SUBS=${IDLE_SUBS:-15000}
OUT=${OUT:-bench/results}
SERVERS=${SERVERS:-ssehub nchan floor}
SCENARIOS=${*:-idle fanout storm slow rooms}
mkdir -p "$OUT"

need=()
command -v nginx >/dev/null || need+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release --quiet --workspace
BIN=target/release
TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true  # nginx without a master exits on a signal status
  fi
  SERVER_PID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
SECRET=compare-secret-$RANDOM
PORT=18300

# Starts one server on CPU 0; sets SERVER_PID, SUB_URL, PUB_URL, PUB_ARGS.
start_server() {
  local name=$1
  rm -rf "$TMP/$name" && mkdir -p "$TMP/$name"
  case $name in
    ssehub)
      taskset -c 0 $BIN/ssehub serve --listen 127.0.0.1:$PORT --tls-listen none --data-dir "$TMP/$name" \
        --publisher-jwt-key "$SECRET" --anonymous --history-size 1000000 ${SSEHUB_ARGS:-} >"$TMP/$name.out" 2>&1 &
      SERVER_PID=$!
      SUB_URL="http://127.0.0.1:$PORT/.well-known/mercure?topic={topic}"
      ROOMS=(--sub-url "$SUB_URL" --group-param topic)
      PUB_URL="http://127.0.0.1:$PORT/.well-known/mercure"
      PUB_ARGS=(--pub-format mercure --pub-header "Authorization: Bearer $($BIN/ssehub token --publish '*' --publisher-jwt-key "$SECRET")")
      ;;
    nchan)
      sed -e "s|@DIR@|$TMP/$name|g" -e "s|@PORT@|$PORT|g" bench/nchan.conf.template >"$TMP/$name/nginx.conf"
      taskset -c 0 nginx -p "$TMP/$name" -c "$TMP/$name/nginx.conf" -g 'daemon off; master_process off;' &
      SERVER_PID=$!
      SUB_URL="http://127.0.0.1:$PORT/sub?topic={topic}"
      ROOMS=(--sub-url "http://127.0.0.1:$PORT/subm?topic={topic}" --group-param group)
      PUB_URL="http://127.0.0.1:$PORT/pub?id={topic}"
      PUB_ARGS=(--pub-format raw)
      ;;
    floor)
      taskset -c 0 $BIN/ssehub-bench floor --listen 127.0.0.1:$PORT >"$TMP/$name.out" 2>&1 &
      SERVER_PID=$!
      SUB_URL="http://127.0.0.1:$PORT/sub?topic={topic}"
      PUB_URL="http://127.0.0.1:$PORT/pub"
      PUB_ARGS=(--pub-format raw)
      ;;
  esac
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$TMP/$name.out" >&2 2>/dev/null
  return 1
}

# bench SERVER SCENARIO RUN [tool options]; DIR (default $OUT) is where the
# JSON goes, so variants of one scenario (fanout-1k) keep their own files.
bench() {
  local name=$1 scenario=$2 run=$3 dir=${DIR:-$OUT}; shift 3
  mkdir -p "$dir"
  start_server "$name"
  echo "== $scenario, $name, run $run"
  local sub=(--sub-url "$SUB_URL")
  [ "$scenario" = rooms ] && sub=("${ROOMS[@]}")
  taskset -c 1 $BIN/ssehub-bench run --scenario "$scenario" --label "$name" --server-pid "$SERVER_PID" \
    "${sub[@]}" --pub-url "$PUB_URL" "${PUB_ARGS[@]}" --json "$dir/$scenario-$name-$run.json" "$@" \
    2> >(tr '\r' '\n' | grep -E "^(($name|ssehub-bench|worker):|publish to )" >&2) \
    || echo "$scenario, $name, run $run failed" >&2
  stop_server
  PORT=$((PORT + 1))
}

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "versions: $($BIN/ssehub --version), $(nginx -v 2>&1), nchan $(dpkg-query -W -f '${Version}' libnginx-mod-nchan)"
for scenario in $SCENARIOS; do
  for run in $(seq "$RUNS"); do
    for name in $SERVERS; do
      # The floor has no history and no topics: storm and rooms do not apply.
      [ "$name" = floor ] && [[ $scenario =~ ^(storm|rooms)$ ]] && continue
      case $scenario in
        idle) bench "$name" idle "$run" --subscribers "$IDLE_SUBS" --idle-seconds 20 ;;
        fanout) bench "$name" fanout "$run" --subscribers "$SUBS" --payload 100,1024 --rates "${RATES:-5,10,20,50,100,200,400}" --step-seconds 5 --p99-limit-ms "${P99_LIMIT:-100}" ;;
        # The latency target: 1,000 subscribers, 100 publishes per second.
        fanout-1k) DIR=$OUT/fanout-1k bench "$name" fanout "$run" --subscribers 1000 --payload 100 --rates 100 --step-seconds 10 ;;
        storm) bench "$name" storm "$run" --subscribers "${STORM_SUBS:-15000}" --rates 10 --step-seconds 8 ;;
        slow) bench "$name" slow "$run" --subscribers 1000 --stalled 50 --rates 100 --payload 1024 --step-seconds 10 ;;
        rooms) bench "$name" rooms "$run" --subscribers "$SUBS" --rates 500 --step-seconds 10 ;;
      esac
    done
  done
done
