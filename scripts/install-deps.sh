#!/usr/bin/env bash
# Installs the Debian packages the tests use, when missing (redis-server: the
# cluster tests start their own on a loopback port; systemd: systemd-analyze
# verifies deploy/systemd/ssehub.service; prometheus: promtool checks and
# unit-tests deploy/prometheus/alerts.yml, and the metrics test runs the
# binary itself, on a loopback port, not the system service; pebble: the
# ACME tests run Let's Encrypt's test CA and its DNS server on loopback).
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v systemd-analyze >/dev/null || need+=(systemd)
{ [ -x /usr/bin/pebble ] && [ -x /usr/bin/pebble-challtestsrv ]; } || need+=(pebble)
{ command -v promtool >/dev/null && [ -x /usr/bin/prometheus ]; } || need+=(prometheus)
if ((${#need[@]})); then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${need[@]}"
fi
echo "packages ready"
