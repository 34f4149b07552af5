#!/usr/bin/env bash
# Runs every test of ssehub on a fresh machine: installs what the tests need
# (Debian packages, npm packages), then checks formatting and lints, runs the
# Rust unit, property and integration tests, and the end-to-end suite with
# third-party SSE clients and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

step "Debian packages"
bash scripts/install-deps.sh

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "end-to-end (eventsource, eventsource-parser, Chromium)"
bash e2e/run.sh

step "JavaScript client (clients/js)"
SSEHUB_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ssehub" bash clients/js/test.sh

printf '\nall tests passed\n'
