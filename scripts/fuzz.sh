#!/usr/bin/env bash
# Runs the fuzz targets of ssehub in turn, SECONDS each (default 60), with
# cargo-fuzz on the nightly toolchain: `scripts/fuzz.sh [seconds] [target...]`
# (all targets when none is named). New inputs go to
# crates/ssehub/fuzz/corpus/<target>/; a crash stops that target and leaves
# its input in crates/ssehub/fuzz/artifacts/<target>/ (see docs/fuzzing.md:
# fix it, then commit the input under regressions/<target>/). For people, not
# CI: CI replays the committed inputs with `cargo test` instead.
set -euo pipefail
cd "$(dirname "$0")/../crates/ssehub"

seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "needs cargo-fuzz and nightly: rustup toolchain install nightly && cargo install cargo-fuzz" >&2
  exit 1
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
# The disk target opens a log in a fresh temporary directory per input:
# keep those in memory when possible.
if [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi

# The longest input worth trying, per target.
max_len() {
  case "$1" in
    selector) echo 1024 ;;
    urlpattern | disk) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

failed=()
for target in "${targets[@]}"; do
  printf '\n== %s: %s s ==\n' "$target" "$seconds"
  mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" \
    "fuzz/corpus/$target" "fuzz/regressions/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "failed: ${failed[*]} (inputs in crates/ssehub/fuzz/artifacts/)" >&2
  exit 1
fi
echo "every target ran ${seconds} s without a failure"
