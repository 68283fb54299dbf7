#!/usr/bin/env bash
# Runs every test of the project and exits non-zero on any failure:
# formatting and lints, Rust unit/integration/doc tests (all features,
# including the etcd-backed ones against a throw-away local etcd), the Node
# bindings' suite and type check, loom model checks, rustdoc with warnings
# denied, and a short cargo-fuzz run of every parser target (FUZZ_SECONDS).
#
# Services: a throw-away etcd (scripts/etcd.sh) and npm registry (scripts/verdaccio.sh).
#
# Usage: scripts/test.sh            # everything
#        SKIP_LINT=1 scripts/test.sh  # tests only (faster local loop)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
# Each step with the seconds since the start, so a slow CI run shows where its time went.
step() { printf '\n==> [%5d s] %s\n' "$(( $(date +%s) - started ))" "$*" >&2; }

# fleet-drain's `etcd` feature builds etcd-client (its build script runs
# protoc) and its tests need a real etcd: install both when missing, start a
# throw-away etcd on loopback and stop it on exit. With CI set, the etcd tests
# fail (never skip) when BREAKWATER_ETCD_ENDPOINTS is missing.
step "etcd and protoc for the fleet-drain etcd tests (scripts/etcd.sh)"
scripts/etcd.sh ensure
eval "$(scripts/etcd.sh start)"
trap 'scripts/etcd.sh stop' EXIT

# node-modules-alloc's fetch tests need a real npm registry: verdaccio 6.8 (6.10+ needs Node 22)
# from the npm registry into target/verdaccio (skipped when present), on a free loopback port,
# no uplink, a fresh storage the tests seed with tarballs they build; stopped on exit. With CI
# set, those tests fail (never skip) when BREAKWATER_NPM_REGISTRY is missing.
step "verdaccio for node-modules-alloc's registry tests (scripts/verdaccio.sh)"
scripts/verdaccio.sh ensure
eval "$(scripts/verdaccio.sh start)"
trap 'scripts/etcd.sh stop; scripts/verdaccio.sh stop' EXIT

if [ -z "${SKIP_LINT:-}" ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy (all targets, all features, warnings denied)"
  cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
fi

# Imports inside each library crate point one way: see the script for the graph.
step "module cycles (scripts/check-module-cycles.py)"
scripts/check-module-cycles.py --self-test
scripts/check-module-cycles.py

# The library must build without the CLI's dependencies (clap, indicatif, tracing-subscriber).
step "node-modules-alloc library without default features (no cli)"
cargo check -p node-modules-alloc --no-default-features --lib --locked

# What would be uploaded to crates.io, built as a downstream user would build it. The three
# crates are packaged together: cargo verifies fleet-drain and node-modules-alloc against the
# just-packaged resilience-core (a local overlay registry), so this works before anything is
# published. Shows the file list of each crate first.
step "cargo package (resilience-core, fleet-drain, node-modules-alloc)"
for crate in resilience-core fleet-drain node-modules-alloc; do
  printf '%s: %s files\n' "$crate" "$(cargo package -p "$crate" --list --allow-dirty --locked | wc -l)" >&2
done
# cargo keeps the sources it extracted from the overlay registry under the crate's version; on a
# re-run they would be the previous run's. Drop them so the new packages are the ones verified.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/{resilience-core,fleet-drain,node-modules-alloc}-0.*
cargo package -p resilience-core -p fleet-drain -p node-modules-alloc --allow-dirty --locked

step "cargo test (workspace, all features: unit, integration and doc tests)"
cargo test --workspace --all-features --locked

# Each target of node-modules-alloc/fuzz/ for FUZZ_SECONDS (default 30): a crash, a
# timeout or an out-of-memory fails the run and prints the input's path.
step "fuzz node-modules-alloc's parsers (scripts/fuzz.sh, ${FUZZ_SECONDS:-30} s per target)"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked --quiet

step "Node bindings: npm ci, build the addon, node --test, tsc --noEmit, packed install"
(
  cd bindings-node
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent build:debug
  npm test
  npm run --silent typecheck
  # The generated loader and native types must match the Rust definitions they came from.
  if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- binding.js binding.d.ts; then
    echo "bindings-node/binding.js or binding.d.ts changed in the build: commit the regenerated files" >&2
    git diff --stat -- binding.js binding.d.ts >&2
    exit 1
  fi
  # npm pack + install into a project without cargo/rustc on PATH; every export, CJS and ESM.
  npm run --silent test:package
)

step "Node examples: npm ci, a short undici + autocannon outage run"
(
  cd examples/node
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)

# A crate-specific cfg: `--cfg loom` would also switch tokio into its own
# loom mode, which drops tokio::net and breaks the HTTP dev-dependencies.
step "loom model checks (resilience-core)"
RUSTFLAGS="--cfg breakwater_loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
  cargo test -p resilience-core --locked --target-dir target/loom --test 'loom_*'

step "all tests passed in $(( $(date +%s) - started )) s"
