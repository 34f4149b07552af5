#!/usr/bin/env bash
# Soak (issue #15): a hub under steady load for a long time, with a
# certificate reload (SIGHUP) and, clustered, a Redis restart in the middle.
#
#   bash bench/soak.sh [--minutes N] [--cluster]
#
# Single node: one hub on the disk store. --cluster: two hubs sharing a
# redis-server started here (AOF, appendfsync always, so nothing Redis
# acknowledged is lost when it stops), which is stopped and started again
# on the same files at 50 % of the run.
#
# The hubs listen on loopback: plain HTTP and TLS (a certificate signed by
# a CA made here; the load tool trusts the CA, so the certificate can be
# replaced). The load (ssehub-bench's soak scenario):
#   - SUBS stable subscriptions, connected before publishing starts, each
#     selecting two of TOPICS topics (every topic has 2 SUBS / TOPICS
#     subscribers, 100 by default: the fan-out of a publish); half over
#     HTTP/1.1 on the plain port, half over HTTP/2 on TLS (10 streams a
#     connection), spread over both nodes when clustered;
#   - a churn of CHURN short-lived subscriptions a second (half HTTP/1.1,
#     half HTTP/2 on TLS, a connection each), held HOLD seconds (drawn
#     uniformly), then dropped: as many connects as disconnects a second;
#   - RATE publishes a second over every topic (100-byte payloads), taking
#     the nodes in turn; a failed publish is sent again (same sequence
#     number) for up to 2 minutes.
# The history keeps the last HISTORY updates (20,000: full after under 7
# minutes at 50 a second), so that the second half of the run, where the
# trends are fitted, runs with a full history, as a hub in production does.
# At 40 % of the run the certificate files are replaced by a new pair and
# every hub gets SIGHUP; the script checks that the hubs logged the new
# fingerprint and serve the new certificate.
#
# Results in OUT (default bench/results/DATE/soak or soak-cluster):
#   samples.csv   every SAMPLE seconds: counts, and each hub's RSS, open
#                 files and CPU time
#   events.csv    what the script did when (unix time)
#   load.json     the load tool's result: checks, and RSS and open-file
#                 trends (least squares per minute over the second half)
#   logs.txt      every WARN and ERROR line of the hubs (and Redis's log),
#                 grouped, marked expected or not
#   summary.json  all of it in one place
#   env: SUBS=5000 TOPICS=100 RATE=50 CHURN=100 HOLD=1-19 HISTORY=20000
#        SAMPLE=5 OUT=...
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=30
CLUSTER=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --cluster) CLUSTER=1; shift ;;
    *) echo "usage: bash bench/soak.sh [--minutes N] [--cluster]" >&2; exit 2 ;;
  esac
done
SUBS=${SUBS:-5000}
TOPICS=${TOPICS:-100}
RATE=${RATE:-50}
CHURN=${CHURN:-100}
HOLD=${HOLD:-1-19}
HISTORY=${HISTORY:-20000}
SAMPLE=${SAMPLE:-5}
NAME=soak
[ "$CLUSTER" = 1 ] && NAME=soak-cluster
OUT=${OUT:-bench/results/$(date +%F)/$NAME}
SECONDS_TOTAL=$((MINUTES * 60))
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for tool in openssl jq curl; do
  command -v $tool >/dev/null || { echo "soak.sh needs $tool" >&2; exit 1; }
done
if [ "$CLUSTER" = 1 ] && ! command -v redis-server >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
cargo build --release --quiet -p ssehub -p ssehub-bench
BIN=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release
# shellcheck source=bench/lib.sh
source bench/lib.sh
SECRET=soak-secret-$RANDOM$RANDOM
TOKEN=$($BIN/ssehub token --publish '*' --publisher-jwt-key "$SECRET")
now() { date +%s.%N | cut -c1-14; }
event() { echo "$(now),$1,$2" >>"$OUT/events.csv"; echo "== $1 $2"; }
echo "unix_s,event,detail" >"$OUT/events.csv"

# The certificates: a CA, and two server certificates it signed (the second
# replaces the first mid-run) for 127.0.0.1 and localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=soak-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$TMP/ext"
for pair in first second; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=soak $pair" \
    -keyout "$TMP/$pair.key" -out "$TMP/$pair.csr" 2>/dev/null
  openssl x509 -req -in "$TMP/$pair.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
    -days 2 -extfile "$TMP/ext" -out "$TMP/$pair.pem" 2>/dev/null
done
mkdir -p "$TMP/tls"
cp "$TMP/first.pem" "$TMP/tls/cert.pem"
cp "$TMP/first.key" "$TMP/tls/key.pem"
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
served_fingerprint() {
  openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}

REDIS_PORT=
start_redis() {
  [ -n "$REDIS_PORT" ] || REDIS_PORT=$(free_port)
  mkdir -p "$TMP/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$TMP/redis" --save '' \
    --appendonly yes --appendfsync always --daemonize no --loglevel notice \
    >>"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  wait_redis "$REDIS_PORT" "$TMP/redis.log"
}

# Starts hub $1 on store $2; appends to NODE_PIDS, TLS_PORTS, SUB_URLS, PUB_URLS.
NODE_PIDS=() TLS_PORTS=() SUB_URLS=() PUB_URLS=()
start_node() {
  local i=$1 store=$2 port tls_port
  port=$(free_port) tls_port=$(free_port)
  mkdir -p "$TMP/node$i"
  $BIN/ssehub serve --listen 127.0.0.1:"$port" --tls-listen 127.0.0.1:"$tls_port" \
    --tls-cert "$TMP/tls/cert.pem" --tls-key "$TMP/tls/key.pem" --metrics-listen 127.0.0.1:0 \
    --data-dir "$TMP/node$i" --publisher-jwt-key "$SECRET" --anonymous --history-size "$HISTORY" \
    --store "$store" --redis-stream soak >"$TMP/node$i.log" 2>&1 &
  NODE_PIDS+=($!)
  PIDS+=($!)
  wait_url "http://127.0.0.1:$port/readyz" "hub $i" "$TMP/node$i.log"
  TLS_PORTS+=("$tls_port")
  SUB_URLS+=(--sub-url "http://127.0.0.1:$port/.well-known/mercure?topic={topic}"
    --sub-url "https://127.0.0.1:$tls_port/.well-known/mercure?topic={topic}")
  PUB_URLS+=(--pub-url "http://127.0.0.1:$port/.well-known/mercure")
}

{
  echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem:/ {print $2}') GiB, open files $(ulimit -n)"
  echo "versions: $($BIN/ssehub --version)$([ "$CLUSTER" = 1 ] && echo ", $(redis-server --version | cut -d' ' -f1-3)")"
  echo "command: SUBS=$SUBS TOPICS=$TOPICS RATE=$RATE CHURN=$CHURN HOLD=$HOLD HISTORY=$HISTORY SAMPLE=$SAMPLE bash bench/soak.sh --minutes $MINUTES$([ "$CLUSTER" = 1 ] && echo ' --cluster')"
  echo "started: $(date -Is); $(uptime | sed 's/.*load/load/')"
} | tee "$OUT/machine.txt"

if [ "$CLUSTER" = 1 ]; then
  start_redis
  event redis-started "pid $REDIS_PID port $REDIS_PORT"
  start_node 1 "redis://127.0.0.1:$REDIS_PORT"
  start_node 2 "redis://127.0.0.1:$REDIS_PORT"
else
  start_node 1 disk
fi
event hubs-ready "pids ${NODE_PIDS[*]}"
SERVER_PIDS=()
for pid in "${NODE_PIDS[@]}"; do SERVER_PIDS+=(--server-pid "$pid"); done

$BIN/ssehub-bench run --scenario soak --label "$NAME" --subscribers "$SUBS" --topics "$TOPICS" \
  --rates "$RATE" --payload 100 --churn-rate "$CHURN" --churn-hold "$HOLD" \
  --soak-seconds "$SECONDS_TOTAL" --sample-seconds "$SAMPLE" --samples "$OUT/samples.csv" \
  "${SUB_URLS[@]}" --h2-streams 10 --ca-cert "$TMP/ca.pem" \
  "${PUB_URLS[@]}" --pub-header "Authorization: Bearer $TOKEN" \
  "${SERVER_PIDS[@]}" --json "$OUT/load.json" 2>"$OUT/load.log" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")

# Waits until publishing has started (the tool says so), or the tool died.
until grep -q '^soak: publishing' "$OUT/load.log"; do
  kill -0 "$LOAD_PID" 2>/dev/null || { echo "the load tool ended early:" >&2; cat "$OUT/load.log" >&2; exit 1; }
  sleep 0.2
done
START=$(now)
event publishing-started "$SUBS stable subscriptions connected"
at() { # sleeps until FRACTION of the run has passed
  local wait
  wait=$(awk -v s="$START" -v n="$(now)" -v f="$1" -v d="$SECONDS_TOTAL" 'BEGIN { w = s + f * d - n; print (w > 0 ? w : 0) }')
  sleep "$wait"
}

# 40 %: a new certificate and key, written whole then renamed into place,
# and SIGHUP.
at 0.4
NEW_FP=$(fingerprint "$TMP/second.pem")
cp "$TMP/second.pem" "$TMP/tls/cert.pem.new"
cp "$TMP/second.key" "$TMP/tls/key.pem.new"
mv "$TMP/tls/key.pem.new" "$TMP/tls/key.pem"
mv "$TMP/tls/cert.pem.new" "$TMP/tls/cert.pem"
for pid in "${NODE_PIDS[@]}"; do kill -HUP "$pid"; done
event sighup "new certificate SHA-256 $NEW_FP"
sleep 2
RELOAD_OK=true
for i in "${!NODE_PIDS[@]}"; do
  n=$((i + 1))
  logged=$(grep -c "certificate reloaded: SHA-256 $NEW_FP" "$TMP/node$n.log" || true)
  served=$(served_fingerprint "${TLS_PORTS[$i]}")
  if [ "$logged" = 1 ] && [ "$served" = "$NEW_FP" ]; then
    event reload-checked "hub $n logged and serves the new certificate"
  else
    RELOAD_OK=false
    event reload-failed "hub $n: logged the new fingerprint $logged times, serves $served"
  fi
done

# 50 %, clustered: Redis stops (SHUTDOWN: the AOF is already synced) and
# starts again on the same files 5 s later.
if [ "$CLUSTER" = 1 ]; then
  at 0.5
  BEFORE=$(redis-cli -p "$REDIS_PORT" get '{soak}:count')
  REDIS_STOPPED=$(now)
  redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
  wait "$REDIS_PID" 2>/dev/null || true
  event redis-stopped "$BEFORE updates appended so far"
  sleep 5
  start_redis
  REDIS_STARTED=$(now)
  event redis-started "pid $REDIS_PID; $(redis-cli -p "$REDIS_PORT" get '{soak}:count') updates appended so far"
fi

LOAD_RC=0
wait "$LOAD_PID" || LOAD_RC=$?
event load-ended "exit status $LOAD_RC"
# Clustered: how many updates Redis appended in all (the append script's
# count), to compare with the publishes acknowledged.
APPENDED=
[ "$CLUSTER" = 1 ] && APPENDED=$(redis-cli -p "$REDIS_PORT" get '{soak}:count')
for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${NODE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
event hubs-stopped ""
stop_all
echo "finished: $(date -Is); $(uptime | sed 's/.*load/load/')" | tee -a "$OUT/machine.txt"

# Every WARN and ERROR line of the hubs, grouped by message (numbers
# blanked), with a count. Expected: those about Redis logged while it was
# away or within 30 s of its return (clustered only).
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%6NZ; }
WINDOW_FROM=9 WINDOW_TO=9 # never, unless Redis restarted
if [ "$CLUSTER" = 1 ]; then
  WINDOW_FROM=$(iso "$REDIS_STOPPED") WINDOW_TO=$(iso "$(awk -v t="$REDIS_STARTED" 'BEGIN { printf "%.3f", t + 30 }')")
fi
for log in "$TMP"/node*.log; do
  awk -v node="$(basename "$log" .log)" -v from="$WINDOW_FROM" -v to="$WINDOW_TO" '
    $2 == "WARN" || $2 == "ERROR" {
      time = $1; line = $0; sub(/^[^ ]+ +/, "", line); gsub(/[0-9]+/, "N", line)
      expected = time >= from && time <= to && line ~ /Redis/
      print (expected ? "expected  " : "UNEXPECTED") " " node " " line
    }' "$log"
done | sort | uniq -c | sort -k2,2 -k1,1rn | sed -E 's/^ *([0-9]+) (expected  |UNEXPECTED) /\2 \1 /' >"$OUT/logs.txt"
[ -s "$OUT/logs.txt" ] || echo "(the hubs logged no WARN or ERROR line)" >"$OUT/logs.txt"
if [ "$CLUSTER" = 1 ]; then
  echo "--- redis-server" >>"$OUT/logs.txt"
  grep -E ' # ' "$TMP/redis.log" | sed -E 's/^[0-9]+:[A-Z] [^#]*# //' | sort | uniq -c >>"$OUT/logs.txt" || true
fi
UNEXPECTED=$(awk '$1 == "UNEXPECTED" { n += $2 } END { print n + 0 }' "$OUT/logs.txt")
cat "$OUT/logs.txt"

jq -n --slurpfile load "$OUT/load.json" --arg name "$NAME" --argjson minutes "$MINUTES" \
  --argjson reload "$RELOAD_OK" --argjson unexpected "$UNEXPECTED" --arg appended "$APPENDED" \
  --rawfile events "$OUT/events.csv" --rawfile machine "$OUT/machine.txt" '{
    name: $name, minutes: $minutes, machine: ($machine | split("\n") | map(select(. != ""))),
    certificate_reload_ok: $reload, unexpected_log_lines: $unexpected,
    redis_updates_appended: (if $appended == "" then null else ($appended | tonumber) end),
    events: ($events | split("\n") | .[1:] | map(select(. != "") | split(",") | {unix_s: .[0], event: .[1], detail: .[2]})),
    load: $load[0].result
  }' >"$OUT/summary.json"
jq '{certificate_reload_ok, unexpected_log_lines, redis_updates_appended,
  published: .load.published, stable: .load.stable, churn: .load.churn,
  rss_kib: .load.server.total.rss_kib, fds: .load.server.total.fds}' "$OUT/summary.json"
[ "$LOAD_RC" = 0 ] && [ "$RELOAD_OK" = true ] && jq -e '.load.stable.exactly_once_in_order' "$OUT/summary.json" >/dev/null
