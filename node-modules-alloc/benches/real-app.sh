#!/usr/bin/env bash
# Benchmark: allocate a real app's node_modules with node-modules-alloc, against
#   bun install --frozen-lockfile (warm cache), pnpm install --offline --frozen-lockfile (warm
#   store), npm ci --offline, and cp -al of a finished tree, run alternately; a cold template (a
#   lockfile the store has no template for) against bun; peak memory (max RSS) of one run of
#   ours and of bun; then CONCURRENCY concurrent allocations against as many concurrent bun and
#   pnpm installs.
#
# Not run in CI: it needs the npm registry once, to resolve the app and fill a temporary npm
# cache (and to fetch bun and pnpm from the npm registry, as the `bun` and `pnpm` packages). Everything lives in a temporary directory that is removed at the
# end (KEEP=1 keeps it).
#
# Usage: node-modules-alloc/benches/real-app.sh [RUNS]     (RUNS default 7, CONCURRENCY default 20)
set -euo pipefail

RUNS=${1:-7}
CONCURRENCY=${CONCURRENCY:-20}
PNPM_VERSION=${PNPM_VERSION:-12}
BUN_VERSION=${BUN_VERSION:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nma-bench.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$WORK"' EXIT; fi
QUIET=(--ignore-scripts --no-audit --no-fund --loglevel=error)

log() { printf '%s\n' "$*" >&2; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
files() { find "$1" -type f | wc -l | tr -d ' '; }

log "== building node-modules-alloc (release)"
cargo build --release --quiet -p node-modules-alloc --manifest-path "$ROOT/Cargo.toml"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
BIN="$TARGET_DIR/release/node-modules-alloc"

export npm_config_cache="$WORK/npm-cache"
mkdir -p "$WORK/app"
cat > "$WORK/app/package.json" <<'JSON'
{
  "name": "bench-app",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "express": "^4", "lodash": "^4", "axios": "^1", "debug": "^4", "chalk": "^4",
    "commander": "^12", "moment": "^2", "uuid": "^9", "body-parser": "^1", "dotenv": "^16",
    "morgan": "^1", "cors": "^2"
  }
}
JSON

log "== resolving the app and filling a temporary npm cache"
(cd "$WORK/app" && npm install --package-lock-only "${QUIET[@]}" && npm ci "${QUIET[@]}") >/dev/null
PACKAGES=$(node -e 'const l=require(process.argv[1]);console.log(Object.keys(l.packages).filter(Boolean).length)' "$WORK/app/package-lock.json")

log "== fetching pnpm@$PNPM_VERSION and warming its store"
npm install --prefix "$WORK/pnpm" "pnpm@$PNPM_VERSION" "${QUIET[@]}" >/dev/null
PNPM="$WORK/pnpm/node_modules/.bin/pnpm"
PNPM_REPORTED=$("$PNPM" --version)
PNPM_STORE="$WORK/pnpm-store"
mkdir -p "$WORK/pnpm-app"
cp "$WORK/app/package.json" "$WORK/app/package-lock.json" "$WORK/pnpm-app/"
(cd "$WORK/pnpm-app" && "$PNPM" import >/dev/null && "$PNPM" install --frozen-lockfile --ignore-scripts --store-dir "$PNPM_STORE" --reporter=silent)

fresh() { local d="$WORK/runs/$1"; mkdir -p "$d"; printf '%s' "$d"; }

log "== fetching bun@$BUN_VERSION and warming its cache"
npm install --prefix "$WORK/bun" "bun@$BUN_VERSION" --no-audit --no-fund --loglevel=error >/dev/null
BUN="$WORK/bun/node_modules/.bin/bun"
BUN_REPORTED=$("$BUN" --version)
export BUN_INSTALL_CACHE_DIR="$WORK/bun-cache"
mkdir -p "$WORK/bun-app"
cp "$WORK/app/package.json" "$WORK/app/package-lock.json" "$WORK/bun-app/"
# bun migrates package-lock.json to its own bun.lock on the first install, with the same versions.
(cd "$WORK/bun-app" && "$BUN" install --ignore-scripts --silent >/dev/null && rm -rf node_modules)
BUN_LOCK=bun.lock
[[ -f "$WORK/bun-app/$BUN_LOCK" ]] || BUN_LOCK=bun.lockb
bun_install() { (cd "$1" && "$BUN" install --frozen-lockfile --ignore-scripts --silent >/dev/null); }
bun_dir() { local d; d=$(fresh "$1"); cp "$WORK/bun-app/package.json" "$WORK/bun-app/$BUN_LOCK" "$d/"; printf '%s' "$d"; }

log "== importing the npm cache into our store"
STORE="$WORK/store"
start=$(now)
"$BIN" --store "$STORE" import "$npm_config_cache/_cacache" >/dev/null
IMPORT_S=$(elapsed "$start")
LOCK="$WORK/app/package-lock.json"
mkdir -p "$WORK/ours-first"
start=$(now)
"$BIN" --store "$STORE" allocate --lockfile "$LOCK" --app-dir "$WORK/ours-first" >/dev/null
FIRST_S=$(elapsed "$start")

log "== timing $RUNS sequential runs of each"
ours=(); bun=(); cold=(); pnpm=(); npmci=(); cpal=()
for i in $(seq 1 "$RUNS"); do
  d=$(fresh "ours-$i"); start=$(now)
  "$BIN" --store "$STORE" allocate --lockfile "$LOCK" --app-dir "$d" >/dev/null
  ours+=("$(elapsed "$start")")

  d=$(bun_dir "bun-$i"); start=$(now)
  bun_install "$d"
  bun+=("$(elapsed "$start")")

  # A cold template: the store has every package but no finished tree for this app (as for
  # the first app with a new lockfile), so the allocator builds the template from the store.
  d=$(fresh "cold-$i")
  rm -rf "$STORE/templates"
  start=$(now)
  "$BIN" --store "$STORE" allocate --lockfile "$LOCK" --app-dir "$d" >/dev/null
  cold+=("$(elapsed "$start")")

  d=$(fresh "pnpm-$i"); cp "$WORK/pnpm-app/package.json" "$WORK/pnpm-app/pnpm-lock.yaml" "$d/"; start=$(now)
  (cd "$d" && "$PNPM" install --offline --frozen-lockfile --ignore-scripts --store-dir "$PNPM_STORE" --reporter=silent)
  pnpm+=("$(elapsed "$start")")

  d=$(fresh "npm-$i"); cp "$WORK/app/package.json" "$LOCK" "$d/"; start=$(now)
  (cd "$d" && npm ci --offline "${QUIET[@]}" >/dev/null)
  npmci+=("$(elapsed "$start")")

  d=$(fresh "cpal-$i"); start=$(now)
  cp -al "$WORK/ours-first/node_modules" "$d/node_modules"
  cpal+=("$(elapsed "$start")")
done

log "== $CONCURRENCY concurrent allocations vs $CONCURRENCY concurrent pnpm installs"
start=$(now)
for i in $(seq 1 "$CONCURRENCY"); do
  d=$(fresh "c-ours-$i")
  "$BIN" --store "$STORE" allocate --lockfile "$LOCK" --app-dir "$d" >/dev/null &
done
wait
CONC_OURS=$(elapsed "$start")
for i in $(seq 1 "$CONCURRENCY"); do bun_dir "c-bun-$i" >/dev/null; done
start=$(now)
for i in $(seq 1 "$CONCURRENCY"); do
  bun_install "$WORK/runs/c-bun-$i" &
done
wait
CONC_BUN=$(elapsed "$start")
for i in $(seq 1 "$CONCURRENCY"); do
  d=$(fresh "c-pnpm-$i"); cp "$WORK/pnpm-app/package.json" "$WORK/pnpm-app/pnpm-lock.yaml" "$d/"
done
start=$(now)
for i in $(seq 1 "$CONCURRENCY"); do
  (cd "$WORK/runs/c-pnpm-$i" && "$PNPM" install --offline --frozen-lockfile --ignore-scripts --store-dir "$PNPM_STORE" --reporter=silent) &
done
wait
CONC_PNPM=$(elapsed "$start")
for i in $(seq 1 "$CONCURRENCY"); do
  "$BIN" --store "$STORE" verify --app-dir "$WORK/runs/c-ours-$i" >/dev/null || { log "verify failed for c-ours-$i"; exit 1; }
done

log "== peak memory (max RSS) of one warm run each"
d=$(fresh "mem-ours")
RSS_OURS=$(/usr/bin/time -f %M "$BIN" --store "$STORE" allocate --lockfile "$LOCK" --app-dir "$d" 2>&1 >/dev/null | tail -n 1)
d=$(bun_dir "mem-bun")
RSS_BUN=$( (cd "$d" && /usr/bin/time -f %M "$BUN" install --frozen-lockfile --ignore-scripts --silent 2>&1 >/dev/null) | tail -n 1)

d=$(fresh "mode-ours")
PLACED=$("$BIN" --json --store "$STORE" allocate --lockfile "$LOCK" --app-dir "$d" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s).placed;console.log(`hardlinks ${p.hardlinks}, reflinks ${p.reflinks}, copies ${p.copies}, symlinks ${p.symlinks}`)})')

M_OURS=$(median "${ours[@]}"); M_BUN=$(median "${bun[@]}"); M_COLD=$(median "${cold[@]}"); M_PNPM=$(median "${pnpm[@]}"); M_NPM=$(median "${npmci[@]}"); M_CPAL=$(median "${cpal[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo
echo "app: $PACKAGES packages; files: ours $(files "$WORK/runs/ours-1/node_modules"), npm ci $(files "$WORK/runs/npm-1/node_modules"), pnpm $(files "$WORK/runs/pnpm-1/node_modules") (incl. .pnpm)"
echo "bun $BUN_REPORTED ($BUN_LOCK), pnpm $PNPM_REPORTED, npm $(npm --version), node $(node --version)"
echo "ours: link mode auto, placed: $PLACED; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "import of the npm cache into our store: ${IMPORT_S}s; first allocation (template build): ${FIRST_S}s"
printf '%-46s %10s %12s %8s\n' "sequential, fresh app dir (median of $RUNS)" "seconds" "ours / it" "goal"
printf '%-46s %10s %12s %8s\n' "node-modules-alloc allocate (template warm)" "$M_OURS" "-" "-"
printf '%-46s %10s %12s %8s\n' "bun $BUN_REPORTED install --frozen-lockfile (warm)" "$M_BUN" "$(ratio "$M_OURS" "$M_BUN")" "<=1.0x"
printf '%-46s %10s %12s %8s\n' "ours, cold template, vs bun warm" "$M_COLD" "$(ratio "$M_COLD" "$M_BUN")" "<=1.5x"
printf '%-46s %10s %12s %8s\n' "cp -al of a finished tree" "$M_CPAL" "$(ratio "$M_OURS" "$M_CPAL")" "<=1.3x"
printf '%-46s %10s %12s %8s\n' "pnpm $PNPM_REPORTED install --offline --frozen-lockfile" "$M_PNPM" "$(ratio "$M_OURS" "$M_PNPM")" "<=0.5x"
printf '%-46s %10s %12s %8s\n' "npm ci --offline" "$M_NPM" "$(ratio "$M_OURS" "$M_NPM")" "-"
printf '%-46s %10s %12s %8s\n' "$CONCURRENCY concurrent: node-modules-alloc (wall)" "$CONC_OURS" "-" "-"
printf '%-46s %10s %12s %8s\n' "$CONCURRENCY concurrent: bun (wall)" "$CONC_BUN" "$(ratio "$CONC_OURS" "$CONC_BUN")" "<=1.0x"
printf '%-46s %10s %12s %8s\n' "$CONCURRENCY concurrent: pnpm (wall)" "$CONC_PNPM" "$(ratio "$CONC_OURS" "$CONC_PNPM")" "<=0.2x"
printf '%-46s %10s %12s %8s\n' "peak memory, one warm run: ours / bun (KiB)" "$RSS_OURS" "$(ratio "$RSS_OURS" "$RSS_BUN")" "<=1.0x"
echo "bun peak memory: ${RSS_BUN} KiB"
