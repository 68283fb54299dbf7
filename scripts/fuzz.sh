#!/usr/bin/env bash
# Fuzzes node-modules-alloc's parsers (node-modules-alloc/fuzz/, cargo-fuzz + libFuzzer):
# builds every target once, then runs each for SECONDS (default 30) and prints one summary
# line per target. Exits non-zero on any crash, timeout (an input slower than 2 s counts)
# or out-of-memory, printing the artifact path to reproduce it with:
#   cd node-modules-alloc && cargo +nightly fuzz run <target> <artifact>
#
# Uses `cargo +nightly fuzz` (AddressSanitizer) when a nightly toolchain is installed, else
# `cargo fuzz --sanitizer none` on the default toolchain (also with FUZZ_STABLE=1): libFuzzer
# and its coverage instrumentation work on stable. Installs cargo-fuzz when missing.
# The growing corpus lives in target/fuzz-corpus/<target> (seeded from fuzz/seeds/<target>),
# crash artifacts in target/fuzz-artifacts/<target>/, logs in target/fuzz-logs/: all
# git-ignored. Inputs worth keeping go to node-modules-alloc/fuzz/regressions/<target>/ once
# fixed (see the README there).
#
# Usage: scripts/fuzz.sh [SECONDS]
#        FUZZ_TARGETS="lockfile integrity" scripts/fuzz.sh 10   # a subset
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi
targets=(${FUZZ_TARGETS:-import_tarball lockfile integrity package_json_bins path_normalize fetch_inputs})

# Largest input per target: a few KiB of tar, JSON or text is enough to reach every branch,
# and smaller inputs keep executions fast.
max_len() {
  case "$1" in
    import_tarball) echo 8192 ;;
    lockfile | package_json_bins) echo 4096 ;;
    *) echo 1024 ;;
  esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [ -z "${FUZZ_STABLE:-}" ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=address
else
  # libFuzzer and the coverage instrumentation build on stable; sanitizers need nightly's -Z.
  fuzz=(cargo fuzz)
  sanitizer=none
fi
build_flags=(--fuzz-dir "$root/node-modules-alloc/fuzz" --target-dir "$root/target/fuzz"
  --sanitizer "$sanitizer" --debug-assertions)

mkdir -p target/fuzz-logs
started=$(date +%s)
echo "fuzz.sh: building ${#targets[@]} targets (${fuzz[*]}, sanitizer $sanitizer)" >&2
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for target in "${targets[@]}"; do "${fuzz[@]}" build "${build_flags[@]}" "$target"; done
else
  "${fuzz[@]}" build "${build_flags[@]}"
fi
echo "fuzz.sh: built in $(($(date +%s) - started)) s" >&2

# The import target writes a store per process under TMPDIR: a scratch directory in memory
# where available, removed on exit (libFuzzer exits without running destructors).
scratch=$(mktemp -d "${FUZZ_TMPDIR:-/dev/shm}/breakwater-fuzz.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=0
summary=()
for target in "${targets[@]}"; do
  corpus="target/fuzz-corpus/$target"
  artifacts="target/fuzz-artifacts/$target/"
  log="target/fuzz-logs/$target.log"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz.sh: $target for ${seconds} s (log: $log)" >&2
  status=0
  TMPDIR="$scratch" "${fuzz[@]}" run "${build_flags[@]}" "$target" \
    "$root/$corpus" "$root/node-modules-alloc/fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=2 -rss_limit_mb=2048 -max_len="$(max_len "$target")" \
    -artifact_prefix="$root/$artifacts" -print_final_stats=1 >"$log" 2>&1 || status=$?
  # libFuzzer's final status line: `#12345 DONE cov: 1234 ft: 5678 corp: ...`.
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(grep -oE '^stat::number_of_executed_units:[[:space:]]*[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1 || true)
  last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)
  [ -n "$execs" ] || execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"${done_line:-$last}")
  cov=$(grep -oE 'cov: [0-9]+' <<<"${done_line:-$last}" | grep -oE '[0-9]+' || true)
  ft=$(grep -oE 'ft: [0-9]+' <<<"${done_line:-$last}" | grep -oE '[0-9]+' || true)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    failed=1
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)
    if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
      kind="timeout (an input took over 2 s)"
    elif grep -q 'ERROR: libFuzzer: out-of-memory' "$log"; then
      kind=out-of-memory
    elif grep -q 'panicked at' "$log"; then
      kind="panic: $(grep -A 1 'panicked at' "$log" | sed -n 2p)"
    else
      kind="exit $status"
    fi
    result="FAILED ($kind) artifact: ${artifact:-none, see $log}"
    grep -E "panicked at|ERROR: libFuzzer" -A 1 "$log" | head -n 6 >&2 || true
  fi
  summary+=("$(printf '%-18s execs %-9s cov %-6s ft %-6s %s' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result")")
done

echo >&2
echo "fuzz.sh: ${seconds} s per target, $(($(date +%s) - started)) s in all" >&2
printf '%s\n' "${summary[@]}"
exit "$failed"
