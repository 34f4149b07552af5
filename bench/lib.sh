# Shared by the bench scripts that start processes of their own (sourced,
# after `cd` to the repository root and `set -euo pipefail`):
#   - TMP, a scratch directory, and PIDS, the processes started: both are
#     cleaned up on exit (stop_all stops the processes earlier);
#   - free_port, a loopback TCP port nobody listens on now;
#   - wait_url URL WHAT LOG, until GET URL answers 2xx (a hub's /readyz);
#   - wait_redis PORT LOG, until a redis-server answers PING.
# On a timeout the waits print the process's log and fail.

TMP=$(mktemp -d)
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls CHECK (a command) every 50 ms, 10 s at most; on a timeout prints
# "WHAT did not become ready:" and LOG, and fails.
wait_until() {
  local what=$1 log=$2
  shift 2
  for _ in $(seq 200); do
    "$@" && return 0
    sleep 0.05
  done
  echo "$what did not become ready:" >&2
  cat "$log" >&2
  return 1
}

wait_url() { wait_until "$2" "$3" curl -fs -o /dev/null "$1"; }

redis_answers() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
wait_redis() { wait_until redis-server "$2" redis_answers "$1"; }
