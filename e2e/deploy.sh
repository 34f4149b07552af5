#!/usr/bin/env bash
# Deployment test: the browser's 6-connection limit and its fixes, in real
# Chromium, through the configs users copy from deploy/.
#
# Starts ssehub (plain HTTP/1.1, its own HTTPS with HTTP/2, HTTP/3 over QUIC),
# renders deploy/nginx/ssehub.conf and deploy/haproxy/haproxy.cfg for loopback
# (free ports, ssehub's generated certificate, a temporary directory: only
# the substitutions printed below), starts nginx and HAProxy as the current
# user, and runs e2e/browser-limit.mjs. Installs nginx-light, haproxy,
# chromium and curl with apt-get when missing. Everything it starts is stopped
# on exit.
#
# Usage, from anywhere: bash e2e/deploy.sh [extra node --test arguments]
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
CHROMIUM="${E2E_CHROMIUM:-/usr/bin/chromium}"
started=$(date +%s)

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

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

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# nginx and haproxy live in /usr/sbin, which a normal user's PATH may lack.
find_tool() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }

command -v node >/dev/null || die "node is required (v20 or later)"

need=()
[ -n "$(find_tool nginx)" ] || need+=(nginx-light)
[ -n "$(find_tool haproxy)" ] || need+=(haproxy)
[ -x "$CHROMIUM" ] || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  as_root apt-get update -qq
  # policy-rc.d or not, the packaged services are not what we test: ours run
  # on free loopback ports with their own configuration.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(find_tool nginx)"
HAPROXY="$(find_tool haproxy)"
[ -n "$NGINX" ] || die "nginx not found after installing nginx-light"
[ -n "$HAPROXY" ] || die "haproxy not found after installing haproxy"

if ! (cd "$E2E_DIR" && npm ls --depth=0 >/dev/null 2>&1); then
  log "npm ci"
  (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)
SSEHUB="${CARGO_TARGET_DIR:-$ROOT/target}/release/ssehub"

NGINX_VERSION="$("$NGINX" -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')"
log "versions: nginx $NGINX_VERSION ($NGINX); $("$HAPROXY" -v 2>&1 | head -n 1)"
log "versions: $("$CHROMIUM" --version 2>/dev/null); node $(node -v); $("$SSEHUB" --version)"

# Free loopback ports, bound to port 0 then released: ssehub plain, ssehub
# TLS (TCP, and UDP for HTTP/3), nginx HTTPS and HTTP, HAProxy HTTPS and HTTP,
# the test page.
read -r PLAIN_PORT TLS_PORT NGINX_PORT NGINX_HTTP_PORT HAPROXY_PORT HAPROXY_HTTP_PORT PAGE_PORT < <(node -e '
  const net = require("node:net");
  const grab = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); });
  Promise.all(Array.from({ length: 7 }, grab)).then((servers) => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')
SECRET="$(node -e 'console.log(require("node:crypto").randomBytes(32).toString("hex"))')"
TMP="$(mktemp -d)"
PIDS=()
NAMES=()

stop_all() {
  local i pid
  # Reverse order: proxies first, then the hub.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[$i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "${NAMES[$i]} (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local status=$?
  stop_all
  if [ "$status" -ne 0 ]; then
    for f in hub.log nginx/stderr.log nginx/error.log haproxy.log; do
      if [ -s "$TMP/$f" ]; then
        log "$f (last 30 lines):"
        tail -n 30 "$TMP/$f" >&2
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
# for cleanup.
start() {
  local name=$1 out=$2
  shift 2
  "$@" >"$out" 2>&1 &
  PIDS+=($!)
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

# --- ssehub ---------------------------------------------------------------
PAGE_ORIGIN="http://127.0.0.1:$PAGE_PORT"
log "starting ssehub: http://127.0.0.1:$PLAIN_PORT, https://127.0.0.1:$TLS_PORT (TCP and UDP)"
start ssehub "$TMP/hub.log" "$SSEHUB" serve \
  --listen "127.0.0.1:$PLAIN_PORT" \
  --tls-listen "127.0.0.1:$TLS_PORT" \
  --metrics-listen 127.0.0.1:0 \
  --data-dir "$TMP/data" \
  --anonymous \
  --publisher-jwt-key "$SECRET" \
  --cors-origins "$PAGE_ORIGIN" \
  --heartbeat 5s
HUB_PID=${PIDS[-1]}
wait_ok ssehub "$HUB_PID" "http://127.0.0.1:$PLAIN_PORT/readyz"
SPKI="$(sed -n 's/^ *SPKI SHA-256 (base64) \([A-Za-z0-9+/=]*\).*/\1/p' "$TMP/hub.log" | head -n 1)"
[ -n "$SPKI" ] || die "no 'SPKI SHA-256 (base64)' line in ssehub's output"
CERT="$TMP/data/tls/cert.pem"
KEY="$TMP/data/tls/key.pem"
CURL_TLS=(--cacert "$CERT" --resolve "localhost:$TLS_PORT:127.0.0.1")
wait_ok ssehub "$HUB_PID" "https://localhost:$TLS_PORT/readyz" "${CURL_TLS[@]}"
log "ssehub ready; certificate SPKI SHA-256 $SPKI"

# --- nginx ----------------------------------------------------------------
# Substitutions from the production file (comments left alone): loopback ports instead of 443/80,
# no IPv6 listeners, localhost and ssehub's generated certificate instead of
# hub.example.com's, ssehub's port instead of 8080. nginx 1.25.1 and later
# get the `http2 on;` form the file documents, older ones the `listen ...
# http2` form.
mkdir -p "$TMP/nginx"
NGINX_CONF="$TMP/nginx/ssehub.conf"
if [ "$(printf '%s\n' 1.25.1 "$NGINX_VERSION" | sort -V | head -n 1)" = 1.25.1 ]; then
  http2_edit=(-e '/^ *listen .* http2;/d' -e 's/^\( *\)# \(listen 443 ssl;\)/\1\2/' -e 's/^\( *\)# \(http2 on;\)/\1\2/')
  log "nginx $NGINX_VERSION >= 1.25.1: rendering 'listen ... ssl;' + 'http2 on;'"
else
  http2_edit=(-e '/^ *# *listen /d' -e '/^ *# *http2 on;/d')
  log "nginx $NGINX_VERSION < 1.25.1: rendering 'listen ... ssl http2;'"
fi
sed "${http2_edit[@]}" \
  -e '/^ *#/b' \
  -e '/listen \[::\]/d' \
  -e "s/listen 443 /listen 127.0.0.1:$NGINX_PORT /" \
  -e "s/listen 80;/listen 127.0.0.1:$NGINX_HTTP_PORT;/" \
  -e 's/server_name hub\.example\.com;/server_name localhost;/' \
  -e "s#/etc/letsencrypt/live/hub\.example\.com/fullchain\.pem#$CERT#" \
  -e "s#/etc/letsencrypt/live/hub\.example\.com/privkey\.pem#$KEY#" \
  -e "s/127\.0\.0\.1:8080/127.0.0.1:$PLAIN_PORT/" \
  "$ROOT/deploy/nginx/ssehub.conf" >"$NGINX_CONF"
check_rendered deploy/nginx/ssehub.conf "$NGINX_CONF" '(hub\.example\.com|:8080|\b443\b|listen 80|/etc/)'
# The production file is a server block for the http {} context; this is the
# main file around it, with every path in the temporary directory. As root,
# nginx's workers would switch to nobody, who cannot use the temporary
# directory: keep them root (test only).
{
  [ "$(id -u)" -eq 0 ] && echo 'user root;'
  cat <<EOF
worker_processes 1;
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
    include $NGINX_CONF;
}
EOF
} >"$TMP/nginx/nginx.conf"
NGINX_ARGS=(-p "$TMP/nginx" -c "$TMP/nginx/nginx.conf")
# -e (1.19.5 and later) keeps start-up messages out of /var/log/nginx.
if [ "$(printf '%s\n' 1.19.5 "$NGINX_VERSION" | sort -V | head -n 1)" = 1.19.5 ]; then
  NGINX_ARGS+=(-e "$TMP/nginx/error.log")
fi
"$NGINX" -t -q "${NGINX_ARGS[@]}" || die "nginx -t rejected the rendered config"
log "starting nginx: https://localhost:$NGINX_PORT, http://127.0.0.1:$NGINX_HTTP_PORT"
start nginx "$TMP/nginx/stderr.log" "$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;'
wait_ok nginx "${PIDS[-1]}" "https://localhost:$NGINX_PORT/readyz" --cacert "$CERT" --resolve "localhost:$NGINX_PORT:127.0.0.1"

# --- HAProxy --------------------------------------------------------------
# Substitutions (comments left alone): no chroot, user, group, daemon or stats socket (one
# foreground process of the current user), logs to stderr, maxconn 1000 (the
# fd limit here may be low), loopback ports, no IPv6 binds, ssehub's
# certificate and key concatenated, ssehub's port instead of 8080.
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
  -e "s/127\.0\.0\.1:8080/127.0.0.1:$PLAIN_PORT/" \
  "$ROOT/deploy/haproxy/haproxy.cfg" >"$HAPROXY_CFG"
check_rendered deploy/haproxy/haproxy.cfg "$HAPROXY_CFG" '(hub\.example\.com|:8080|:443\b|bind :80\b|/etc/|/dev/log|chroot)'
"$HAPROXY" -c -q -f "$HAPROXY_CFG" || die "haproxy -c rejected the rendered config"
log "starting HAProxy: https://localhost:$HAPROXY_PORT, http://127.0.0.1:$HAPROXY_HTTP_PORT"
start haproxy "$TMP/haproxy.log" "$HAPROXY" -f "$HAPROXY_CFG" -db
wait_ok haproxy "${PIDS[-1]}" "https://localhost:$HAPROXY_PORT/readyz" --cacert "$CERT" --resolve "localhost:$HAPROXY_PORT:127.0.0.1"

# What curl negotiates at each TLS edge (the browser test checks it too).
for port in "$TLS_PORT" "$NGINX_PORT" "$HAPROXY_PORT"; do
  v="$(curl -s -o /dev/null -w '%{http_version}' --http2 --cacert "$CERT" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/readyz")"
  [ "$v" = 2 ] || die "https://localhost:$port/ answered curl over HTTP/$v, not HTTP/2"
done
log "ssehub, nginx and HAProxy answer HTTP/2 over TLS"

export E2E_HUB="http://127.0.0.1:$PLAIN_PORT" E2E_SECRET="$SECRET" E2E_CHROMIUM="$CHROMIUM" \
  E2E_PAGE_PORT="$PAGE_PORT" DEPLOY_SPKI="$SPKI" DEPLOY_CERT="$CERT" \
  DEPLOY_HUB_TLS_PORT="$TLS_PORT" \
  DEPLOY_NGINX_PORT="$NGINX_PORT" DEPLOY_NGINX_HTTP_PORT="$NGINX_HTTP_PORT" \
  DEPLOY_HAPROXY_PORT="$HAPROXY_PORT" DEPLOY_HAPROXY_HTTP_PORT="$HAPROXY_HTTP_PORT"
cd "$E2E_DIR"
node --test --test-concurrency=1 --test-timeout=120000 "$@" ./browser-limit.mjs
