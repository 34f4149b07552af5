#!/usr/bin/env bash
# Cluster test: three ssehub nodes sharing one Redis stream, behind the
# configs users copy from deploy/cluster/ (nginx, then HAProxy).
#
# Starts redis-server (no persistence, temporary directory) and three nodes
# (`--store redis://...`; hub3 reaches Redis through a relay the test can
# cut), renders deploy/cluster/nginx.conf and deploy/cluster/haproxy.cfg for
# loopback (free ports, a self-signed certificate for localhost, a temporary
# directory; only the substitutions printed below, plus an X-Node response
# header naming the node that answered), and runs e2e/cluster.mjs through
# each proxy in turn: subscribers spread over the nodes, publishes through
# the proxy, a node killed with SIGKILL, a node cut from Redis. The killed
# node is restarted between the two proxies. Everything it starts is stopped
# on exit.
#
# Needs redis-server and redis-cli (Debian redis-server), nginx, haproxy,
# openssl, curl and node; installs none of them (scripts/install-deps.sh and
# e2e/deploy.sh do).
#
# Takes about 10 s after the build.
#
# Usage, from anywhere: bash e2e/cluster.sh
# E2E_SSEHUB=/path/to/ssehub uses that binary instead of building the
# release one.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
started=$(date +%s)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# nginx and haproxy live in /usr/sbin, which a normal user's PATH may lack.
find_tool() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }

REDIS_SERVER="$(find_tool redis-server)"
REDIS_CLI="$(find_tool redis-cli)"
NGINX="$(find_tool nginx)"
HAPROXY="$(find_tool haproxy)"
[ -n "$REDIS_SERVER" ] || die "redis-server not found (Debian package redis-server; bash scripts/install-deps.sh installs it)"
[ -n "$REDIS_CLI" ] || die "redis-cli not found (Debian package redis-tools, installed with redis-server)"
[ -n "$NGINX" ] || die "nginx not found (Debian package nginx-light; bash e2e/deploy.sh installs it)"
[ -n "$HAPROXY" ] || die "haproxy not found (Debian package haproxy; bash e2e/deploy.sh installs it)"
command -v openssl >/dev/null || die "openssl not found (Debian package openssl)"
command -v curl >/dev/null || die "curl not found (Debian package curl)"
command -v node >/dev/null || die "node not found (v20 or later)"
if ! (cd "$E2E_DIR" && npm ls --depth=0 >/dev/null 2>&1); then
  log "npm ci"
  (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -n "${E2E_SSEHUB:-}" ]; then
  SSEHUB="$E2E_SSEHUB"
else
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
  SSEHUB="${CARGO_TARGET_DIR:-$ROOT/target}/release/ssehub"
fi
[ -x "$SSEHUB" ] || die "no ssehub binary at $SSEHUB"

NGINX_VERSION="$("$NGINX" -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')"
log "versions: $("$REDIS_SERVER" --version | cut -d' ' -f1-3); nginx $NGINX_VERSION; $("$HAPROXY" -v 2>&1 | head -n 1 | cut -d' ' -f1-3); $("$SSEHUB" --version)"

# Free loopback ports, bound to port 0 then released: Redis, the three
# nodes, hub3's relay to Redis, nginx HTTPS and HTTP, HAProxy HTTPS and HTTP.
read -r REDIS_PORT HUB1_PORT HUB2_PORT HUB3_PORT RELAY_PORT NGINX_PORT NGINX_HTTP_PORT HAPROXY_PORT HAPROXY_HTTP_PORT < <(node -e '
  const net = require("node:net");
  const grab = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); });
  Promise.all(Array.from({ length: 9 }, grab)).then((servers) => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')
SECRET="$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))')"
STREAM="e2e-cluster-$$"
TMP="$(mktemp -d)"
PIDS=()
NAMES=()

stop() {
  local pid=$1 name=$2
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? i f
  # Reverse order: proxies, nodes, relay, Redis.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[$i]}" "${NAMES[$i]}"; done
  if [ "$status" -ne 0 ]; then
    for f in redis.log relay.log hub1.log hub2.log hub3.log nginx/stderr.log nginx/error.log haproxy.log; do
      if [ -s "$TMP/$f" ]; then
        log "$f (last 25 lines):"
        tail -n 25 "$TMP/$f" >&2
      fi
    done
  fi
  rm -rf "$TMP"
  log "finished in $(($(date +%s) - started)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME LOGFILE COMMAND...: runs COMMAND in the background, remembered
# for cleanup; its pid is in $LAST_PID.
start() {
  local name=$1 out=$2
  shift 2
  "$@" >>"$out" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  NAMES+=("$name")
}

# wait_ok NAME PID URL [curl options]: bounded wait for a 200 from URL while
# PID is alive.
wait_ok() {
  local name=$1 pid=$2 url=$3
  shift 3
  local deadline=$(($(date +%s) + 15))
  until curl -sf -o /dev/null --max-time 2 "$@" "$url"; do
    kill -0 "$pid" 2>/dev/null || die "$name exited before answering $url"
    [ "$(date +%s)" -lt "$deadline" ] || die "$name did not answer $url within 15 s"
    sleep 0.1
  done
}

# check_rendered PRODUCTION_FILE RENDERED PATTERN: fails if a production-only
# value (PATTERN, outside comments) survived the rendering, then shows what
# the test changed.
check_rendered() {
  if grep -nE "^[^#]*$3" "$2"; then
    die "$1 changed: the lines above were not rendered for the test"
  fi
  log "$1 as tested (diff from the production file):"
  diff -u "$ROOT/$1" "$2" | sed -n '3,$p' | grep '^[-+]' >&2 || true
}

# --- Redis ------------------------------------------------------------------
mkdir -p "$TMP/redis"
log "starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
start redis "$TMP/redis.log" "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 \
  --dir "$TMP/redis" --save '' --appendonly no --daemonize no --logfile ''
REDIS_PID=$LAST_PID
deadline=$(($(date +%s) + 10))
until [ "$("$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited"
  [ "$(date +%s)" -lt "$deadline" ] || die "redis-server did not answer PING within 10 s"
  sleep 0.1
done

# hub3 reaches Redis through a relay that cluster.mjs cuts and restores.
start relay "$TMP/relay.log" node "$E2E_DIR/relay.mjs" "$RELAY_PORT" "$REDIS_PORT"
RELAY_PID=$LAST_PID
deadline=$(($(date +%s) + 10))
until grep -q 'relay ready' "$TMP/relay.log"; do
  kill -0 "$RELAY_PID" 2>/dev/null || die "the relay exited"
  [ "$(date +%s)" -lt "$deadline" ] || die "the relay did not start within 10 s"
  sleep 0.1
done

# --- the nodes --------------------------------------------------------------
declare -A NODE_PORT=([hub1]=$HUB1_PORT [hub2]=$HUB2_PORT [hub3]=$HUB3_PORT)
declare -A NODE_REDIS=([hub1]=$REDIS_PORT [hub2]=$REDIS_PORT [hub3]=$RELAY_PORT)
declare -A NODE_PID=()

start_node() {
  local name=$1
  start "$name" "$TMP/$name.log" "$SSEHUB" serve \
    --listen "127.0.0.1:${NODE_PORT[$name]}" \
    --tls-listen none \
    --metrics-listen 127.0.0.1:0 \
    --data-dir "$TMP/$name" \
    --store "redis://127.0.0.1:${NODE_REDIS[$name]}" \
    --redis-stream "$STREAM" \
    --publisher-jwt-key "$SECRET" \
    --anonymous \
    --heartbeat 2s
  NODE_PID[$name]=$LAST_PID
}

# Starts every node that is not running, then waits until all are ready.
nodes_up() {
  local name
  for name in hub1 hub2 hub3; do
    if [ -z "${NODE_PID[$name]:-}" ] || ! kill -0 "${NODE_PID[$name]}" 2>/dev/null; then
      [ -n "${NODE_PID[$name]:-}" ] && wait "${NODE_PID[$name]}" 2>/dev/null || true
      log "starting $name on 127.0.0.1:${NODE_PORT[$name]} (Redis via 127.0.0.1:${NODE_REDIS[$name]})"
      start_node "$name"
    fi
  done
  for name in hub1 hub2 hub3; do
    wait_ok "$name" "${NODE_PID[$name]}" "http://127.0.0.1:${NODE_PORT[$name]}/readyz"
  done
}
nodes_up

# --- certificate ------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>"$TMP/openssl.log" || die "openssl could not make a certificate: $(cat "$TMP/openssl.log")"
CERT="$TMP/cert.pem"
KEY="$TMP/key.pem"

run_check() {
  local proxy=$1 port=$2 proxy_log=$3
  CLUSTER_PROXY="$proxy" CLUSTER_PORT="$port" CLUSTER_CERT="$CERT" CLUSTER_SECRET="$SECRET" \
    CLUSTER_RELAY_PID="$RELAY_PID" CLUSTER_PROXY_LOG="$proxy_log" \
    CLUSTER_NODES="hub1:$HUB1_PORT:${NODE_PID[hub1]} hub2:$HUB2_PORT:${NODE_PID[hub2]} hub3:$HUB3_PORT:${NODE_PID[hub3]}" \
    timeout 90 node "$E2E_DIR/cluster.mjs" || die "the cluster check through $proxy failed"
}

node_ports=(-e "s/127\.0\.0\.1:8081/127.0.0.1:$HUB1_PORT/" -e "s/127\.0\.0\.1:8082/127.0.0.1:$HUB2_PORT/" -e "s/127\.0\.0\.1:8083/127.0.0.1:$HUB3_PORT/")

# --- nginx ------------------------------------------------------------------
# Substitutions from the production file (comments left alone): loopback
# ports instead of 443/80, no IPv6 listeners, localhost and the test
# certificate, the nodes' ports instead of 8081-8083; the http2 form the
# installed nginx accepts. The main file around it (test-only) adds an
# X-Node header with $upstream_addr, inherited by the production server
# blocks (which set no add_header of their own).
mkdir -p "$TMP/nginx"
NGINX_CONF="$TMP/nginx/cluster.conf"
if [ "$(printf '%s\n' 1.25.1 "$NGINX_VERSION" | sort -V | head -n 1)" = 1.25.1 ]; then
  http2_edit=(-e '/^ *listen .* http2;/d' -e 's/^\( *\)# \(listen 443 ssl;\)/\1\2/' -e 's/^\( *\)# \(http2 on;\)/\1\2/')
else
  http2_edit=(-e '/^ *# *listen /d' -e '/^ *# *http2 on;/d')
fi
sed "${http2_edit[@]}" \
  -e '/^ *#/b' \
  -e '/listen \[::\]/d' \
  -e "s/listen 443 /listen 127.0.0.1:$NGINX_PORT /" \
  -e "s/listen 80;/listen 127.0.0.1:$NGINX_HTTP_PORT;/" \
  -e 's/server_name hub\.example\.com;/server_name localhost;/' \
  -e "s#/etc/letsencrypt/live/hub\.example\.com/fullchain\.pem#$CERT#" \
  -e "s#/etc/letsencrypt/live/hub\.example\.com/privkey\.pem#$KEY#" \
  "${node_ports[@]}" \
  "$ROOT/deploy/cluster/nginx.conf" >"$NGINX_CONF"
check_rendered deploy/cluster/nginx.conf "$NGINX_CONF" '(hub\.example\.com|:808[0-9]|\b443\b|listen 80|/etc/)'
{
  [ "$(id -u)" -eq 0 ] && echo 'user root;'
  cat <<EOF
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log info;
events { worker_connections 1024; }
http {
    access_log $TMP/nginx/access.log;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    add_header X-Node \$upstream_addr always;
    include $NGINX_CONF;
}
EOF
} >"$TMP/nginx/nginx.conf"
NGINX_ARGS=(-p "$TMP/nginx" -c "$TMP/nginx/nginx.conf")
if [ "$(printf '%s\n' 1.19.5 "$NGINX_VERSION" | sort -V | head -n 1)" = 1.19.5 ]; then
  NGINX_ARGS+=(-e "$TMP/nginx/error.log")
fi
"$NGINX" -t -q "${NGINX_ARGS[@]}" || die "nginx -t rejected the rendered config"
log "starting nginx: https://localhost:$NGINX_PORT"
start nginx "$TMP/nginx/stderr.log" "$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;'
NGINX_PID=$LAST_PID
wait_ok nginx "$NGINX_PID" "https://localhost:$NGINX_PORT/readyz" --cacert "$CERT" --resolve "localhost:$NGINX_PORT:127.0.0.1"
v="$(curl -s -o /dev/null -w '%{http_version}' --http2 --cacert "$CERT" --resolve "localhost:$NGINX_PORT:127.0.0.1" "https://localhost:$NGINX_PORT/readyz")"
[ "$v" = 2 ] || die "nginx answered curl over HTTP/$v, not HTTP/2"
run_check nginx "$NGINX_PORT" "$TMP/nginx/error.log"
stop "$NGINX_PID" nginx

# --- HAProxy ----------------------------------------------------------------
nodes_up
# Substitutions (comments left alone): no chroot, user, group, daemon or
# stats socket (one foreground process of the current user), logs to stderr,
# maxconn 1000, loopback ports, no IPv6 binds, the test certificate and key
# concatenated, the nodes' ports; and an X-Node header with the server name.
HAPROXY_CFG="$TMP/haproxy.cfg"
cat "$CERT" "$KEY" >"$TMP/haproxy.pem"
chmod 600 "$TMP/haproxy.pem"
sed -e '/^ *#/b' \
  -e '/^ *\(chroot\|stats socket\|user\|group\|daemon\)\b/d' \
  -e 's#^\( *\)log /dev/log local0#\1log stderr format raw local0#' \
  -e 's/^\( *\)maxconn [0-9]*/\1maxconn 1000/' \
  -e '/bind :::/d' \
  -e "s#bind :443 ssl crt /etc/haproxy/certs/hub\.example\.com\.pem#bind 127.0.0.1:$HAPROXY_PORT ssl crt $TMP/haproxy.pem#" \
  -e "s/bind :80\$/bind 127.0.0.1:$HAPROXY_HTTP_PORT/" \
  -e 's/^backend ssehub_cluster$/&\n    http-response set-header X-Node %[srv_name]/' \
  "${node_ports[@]}" \
  "$ROOT/deploy/cluster/haproxy.cfg" >"$HAPROXY_CFG"
check_rendered deploy/cluster/haproxy.cfg "$HAPROXY_CFG" '(hub\.example\.com|:808[0-9]|:443\b|bind :80\b|/etc/|/dev/log|chroot)'
"$HAPROXY" -c -q -f "$HAPROXY_CFG" || die "haproxy -c rejected the rendered config"
log "starting HAProxy: https://localhost:$HAPROXY_PORT"
start haproxy "$TMP/haproxy.log" "$HAPROXY" -f "$HAPROXY_CFG" -db
HAPROXY_PID=$LAST_PID
wait_ok haproxy "$HAPROXY_PID" "https://localhost:$HAPROXY_PORT/readyz" --cacert "$CERT" --resolve "localhost:$HAPROXY_PORT:127.0.0.1"
v="$(curl -s -o /dev/null -w '%{http_version}' --http2 --cacert "$CERT" --resolve "localhost:$HAPROXY_PORT:127.0.0.1" "https://localhost:$HAPROXY_PORT/readyz")"
[ "$v" = 2 ] || die "HAProxy answered curl over HTTP/$v, not HTTP/2"
run_check haproxy "$HAPROXY_PORT" "$TMP/haproxy.log"

log "nginx and HAProxy: no update lost or duplicated across a killed node and a node cut from Redis"
