#!/usr/bin/env bash
# A/B: the fan-out (or idle) scenario against two ssehub binaries,
# alternated run by run (A B A B ...) so that a drift of the machine hits
# both alike. Each server alone on CPU 0, ssehub-bench on CPU 1 (as in
# bench/compare.sh), fixed publish rates (no ramp: every run does the same
# work). Prints, per rate, the median over runs of the server's CPU per
# delivery, deliveries/s and p99 of each binary, and A over B (idle: memory
# per subscription and CPU over the idle window).
#
#   bash bench/ab.sh SSEHUB_A SSEHUB_B
#   env: RUNS=5 SUBS=10000 RATES=20,50 PAYLOAD=100 STEP=10 OUT=bench/results/ab
#        SCENARIO=fanout|idle (idle: SUBS idle subscriptions for 20 s)
#        A_ARGS= B_ARGS= (extra flags for each binary's serve)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
A=$1 B=$2
RUNS=${RUNS:-5}
SUBS=${SUBS:-10000}
RATES=${RATES:-20,50}
PAYLOAD=${PAYLOAD:-100}
STEP=${STEP:-10}
SCENARIO=${SCENARIO:-fanout}
OUT=${OUT:-bench/results/ab}
BENCH=${CARGO_TARGET_DIR:-target}/release/ssehub-bench
[ -x "$BENCH" ] || cargo build --release --quiet -p ssehub-bench
mkdir -p "$OUT"
TMP=$(mktemp -d)
SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
  SERVER_PID=
}
trap 'stop_server; rm -rf "$TMP"' EXIT
SECRET=ab-secret-$RANDOM
PORT=18400

# run LABEL BINARY RUN EXTRA_ARGS: one fan-out run, its JSON in $OUT/LABEL-RUN.json.
run() {
  local label=$1 bin=$2 n=$3 extra=$4
  rm -rf "$TMP/data" && mkdir -p "$TMP/data"
  # shellcheck disable=SC2086 # extra flags are words
  taskset -c 0 "$bin" serve --listen 127.0.0.1:$PORT --tls-listen none --data-dir "$TMP/data" \
    --publisher-jwt-key "$SECRET" --anonymous --history-size 1000000 $extra >"$TMP/$label.out" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.05
  done
  local token
  token=$("$bin" token --publish '*' --publisher-jwt-key "$SECRET")
  echo "== $label, run $n"
  local load=(--payload "$PAYLOAD" --rates "$RATES" --step-seconds "$STEP" --p99-limit-ms 1000000)
  [ "$SCENARIO" = idle ] && load=(--idle-seconds 20)
  taskset -c 1 "$BENCH" run --scenario "$SCENARIO" --label "$label" --server-pid "$SERVER_PID" \
    --sub-url "http://127.0.0.1:$PORT/.well-known/mercure?topic={topic}" \
    --pub-url "http://127.0.0.1:$PORT/.well-known/mercure" --pub-format mercure \
    --pub-header "Authorization: Bearer $token" --subscribers "$SUBS" "${load[@]}" --json "$OUT/$label-$n.json" \
    2> >(tr '\r' '\n' | grep -E "^(ssehub-bench|worker):|publish to " >&2) \
    || echo "$label, run $n failed" >&2
  stop_server
  PORT=$((PORT + 1))
}

echo "machine: $(nproc) cores, $(uname -r); A=$A B=$B; $SCENARIO, $RUNS runs of $SUBS subscribers"
for n in $(seq "$RUNS"); do
  run a "$A" "$n" "${A_ARGS:-}"
  run b "$B" "$n" "${B_ARGS:-}"
done

python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
steps = {}  # (label, rate) -> [step]
idle = {}  # label -> [result]
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    d = json.load(open(path))
    if d["scenario"] == "idle":
        idle.setdefault(d["server"], []).append(d["result"])
    for st in d["result"].get("steps", []):
        steps.setdefault((d["server"], st["rate"]), []).append(st)
med = lambda xs: statistics.median(xs)
if idle:
    print("| build | runs | KiB RSS per subscription, each run | median | CPU s over the idle window, each run |")
    print("| --- | --- | --- | --- | --- |")
    for label in ("a", "b"):
        rs = idle.get(label, [])
        kib = [r["rss_per_subscription_kib"] for r in rs]
        each_kib = ", ".join(f"{k:.2f}" for k in kib)
        each_cpu = ", ".join(f"{r['idle_cpu_s']:.2f}" for r in rs)
        print(f"| {label.upper()} | {len(rs)} | {each_kib} | {med(kib):.2f} | {each_cpu} |")
    sys.exit()
print("| publishes/s | build | runs | deliveries/s | p99 ms | server CPU µs/delivery, each run | median | A / B |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for rate in sorted({r for (_, r) in steps}):
    cpu = {}
    for label in ("a", "b"):
        sts = steps.get((label, rate), [])
        if not sts:
            continue
        cpu[label] = med([s["server_cpu_us_per_delivery"] for s in sts])
        each = ", ".join(f"{s['server_cpu_us_per_delivery']:.3f}" for s in sts)
        ratio = f"{cpu['a'] / cpu['b']:.3f}" if label == "b" and "a" in cpu else ""
        print(f"| {rate:g} | {label.upper()} | {len(sts)} | {med([s['deliveries_per_s'] for s in sts]):,.0f} | "
              f"{med([s['latency']['p99_ms'] for s in sts]):.1f} | {each} | {cpu[label]:.3f} | {ratio} |")
EOF
