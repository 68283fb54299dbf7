#!/usr/bin/env bash
# Benchmark: a cold install of a real app (the express app of real-app.sh) from a local npm
# registry, empty caches everywhere, run alternately in the same run:
#   node-modules-alloc allocate --registry (empty store: fetch on demand + template + publish)
#   pnpm install --frozen-lockfile (empty store and cache)
#   bun install --frozen-lockfile (empty cache)
#   npm ci (empty cache)
# The registry is a throw-away verdaccio (scripts/verdaccio.sh, no uplink) on loopback, seeded
# with the app's tarballs and manifests (taken from a temporary npm cache).
#
# Not run in CI: it needs the npm registry once, to resolve the app and fill that cache (and to
# fetch verdaccio, bun and pnpm from the npm registry, as the `verdaccio`, `bun` and `pnpm`
# packages). Everything lives in a temporary directory that is removed at the end (KEEP=1
# keeps it).
#
# Usage: node-modules-alloc/benches/cold-fetch.sh [RUNS]     (RUNS default 5)
#        BIN=path/to/node-modules-alloc skips the release build.
set -euo pipefail

RUNS=${1:-5}
PNPM_VERSION=${PNPM_VERSION:-12}
BUN_VERSION=${BUN_VERSION:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nma-cold.XXXXXX")
export BREAKWATER_VERDACCIO_RUN="$WORK/verdaccio"
cleanup() {
  "$ROOT/scripts/verdaccio.sh" stop || true
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
QUIET=(--ignore-scripts --no-audit --no-fund --loglevel=error)

log() { printf '%s\n' "$*" >&2; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

if [[ -z "${BIN:-}" ]]; then
  log "== building node-modules-alloc (release)"
  cargo build --release --quiet -p node-modules-alloc --manifest-path "$ROOT/Cargo.toml"
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
  BIN="$TARGET_DIR/release/node-modules-alloc"
fi

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

log "== resolving the app and filling a temporary npm cache (npm registry, once)"
(cd "$WORK/app" && npm install --package-lock-only "${QUIET[@]}" --cache "$WORK/npm-cache" &&
  npm ci "${QUIET[@]}" --cache "$WORK/npm-cache" && rm -rf node_modules) >/dev/null
LOCK="$WORK/app/package-lock.json"
PACKAGES=$(node -e 'const l=require(process.argv[1]);console.log(Object.keys(l.packages).filter(Boolean).length)' "$LOCK")

log "== starting verdaccio and seeding it with the app's packages"
"$ROOT/scripts/verdaccio.sh" ensure
eval "$("$ROOT/scripts/verdaccio.sh" start)"
REG="$BREAKWATER_NPM_REGISTRY"
cat > "$WORK/seed.js" <<'JS'
// Copies every tarball of the lockfile from npm's cache into verdaccio's storage, with a
// manifest per name holding each version's package.json (read from the tarball) and dist.
const fs = require("fs"), path = require("path"), zlib = require("zlib"), crypto = require("crypto");
const [lockPath, cache, storage, registry] = process.argv.slice(2);
const lock = JSON.parse(fs.readFileSync(lockPath, "utf8"));
const manifests = {};
function packageJson(tgz) {
  const tar = zlib.gunzipSync(tgz);
  for (let off = 0; off + 512 <= tar.length; ) {
    const name = tar.toString("utf8", off, off + 100).replace(/\0.*$/s, "");
    const size = parseInt(tar.toString("utf8", off + 124, off + 136).replace(/\0.*$/s, "").trim() || "0", 8);
    if (!name) break;
    if (/^[^/]+\/package\.json$/.test(name)) return JSON.parse(tar.toString("utf8", off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error("no package.json");
}
for (const [key, entry] of Object.entries(lock.packages)) {
  if (!key || !entry.integrity || !entry.version) continue;
  const name = entry.name || key.slice(key.lastIndexOf("node_modules/") + 13);
  const hex = Buffer.from(entry.integrity.split(" ")[0].replace(/^sha512-/, ""), "base64").toString("hex");
  const tgz = fs.readFileSync(path.join(cache, "_cacache", "content-v2", "sha512", hex.slice(0, 2), hex.slice(2, 4), hex.slice(4)));
  const base = name.split("/").pop(), file = `${base}-${entry.version}.tgz`;
  fs.mkdirSync(path.join(storage, name), { recursive: true });
  fs.writeFileSync(path.join(storage, name, file), tgz);
  const shasum = crypto.createHash("sha1").update(tgz).digest("hex");
  const m = (manifests[name] ||= { name, versions: {}, "dist-tags": {}, _attachments: {}, _distfiles: {}, _uplinks: {}, _rev: "1-0000000000000001", time: {} });
  m.versions[entry.version] = { ...packageJson(tgz), name, version: entry.version,
    dist: { tarball: `${registry}${name}/-/${file}`, shasum, integrity: entry.integrity } };
  m._attachments[file] = { shasum, version: entry.version };
  m["dist-tags"].latest = entry.version;
}
for (const [name, m] of Object.entries(manifests)) fs.writeFileSync(path.join(storage, name, "package.json"), JSON.stringify(m));
console.log(Object.keys(manifests).length);
JS
NAMES=$(node "$WORK/seed.js" "$LOCK" "$WORK/npm-cache" "$BREAKWATER_NPM_REGISTRY_STORAGE" "$REG")

log "== fetching pnpm@$PNPM_VERSION and bun@$BUN_VERSION, preparing their lockfiles against the local registry"
npm install --prefix "$WORK/pnpm" "pnpm@$PNPM_VERSION" "${QUIET[@]}" >/dev/null
PNPM="$WORK/pnpm/node_modules/.bin/pnpm"
npm install --prefix "$WORK/bun" "bun@$BUN_VERSION" --no-audit --no-fund --loglevel=error >/dev/null
BUN="$WORK/bun/node_modules/.bin/bun"
mkdir -p "$WORK/pnpm-app" "$WORK/bun-app"
cp "$WORK/app/package.json" "$LOCK" "$WORK/pnpm-app/"
(cd "$WORK/pnpm-app" && "$PNPM" import --registry "$REG" >/dev/null)
cp "$WORK/app/package.json" "$LOCK" "$WORK/bun-app/"
printf '[install]\nregistry = "%s"\n' "$REG" > "$WORK/bun-app/bunfig.toml"
(cd "$WORK/bun-app" && BUN_INSTALL_CACHE_DIR="$WORK/bun-prep-cache" "$BUN" install --ignore-scripts --silent >/dev/null && rm -rf node_modules)
rm -rf "$WORK/bun-prep-cache"
BUN_LOCK=bun.lock
[[ -f "$WORK/bun-app/$BUN_LOCK" ]] || BUN_LOCK=bun.lockb

export NPM_CONFIG_USERCONFIG=/dev/null
log "== timing $RUNS cold runs of each, alternately (empty store / cache every run)"
ours=(); pnpm=(); bun=(); npmci=(); ours_fetch=()
for i in $(seq 1 "$RUNS"); do
  r="$WORK/runs/$i"; mkdir -p "$r"

  mkdir -p "$r/ours"; start=$(now)
  "$BIN" --quiet --store "$r/ours-store" allocate --registry "$REG" --lockfile "$LOCK" --app-dir "$r/ours"
  ours+=("$(elapsed "$start")")

  mkdir -p "$r/pnpm"; cp "$WORK/pnpm-app/package.json" "$WORK/pnpm-app/pnpm-lock.yaml" "$r/pnpm/"; start=$(now)
  (cd "$r/pnpm" && "$PNPM" install --frozen-lockfile --ignore-scripts --registry "$REG" --store-dir "$r/pnpm-store" --cache-dir "$r/pnpm-cache" --reporter=silent)
  pnpm+=("$(elapsed "$start")")

  mkdir -p "$r/bun"; cp "$WORK/bun-app/package.json" "$WORK/bun-app/$BUN_LOCK" "$WORK/bun-app/bunfig.toml" "$r/bun/"; start=$(now)
  (cd "$r/bun" && BUN_INSTALL_CACHE_DIR="$r/bun-cache" "$BUN" install --frozen-lockfile --ignore-scripts --silent >/dev/null)
  bun+=("$(elapsed "$start")")

  mkdir -p "$r/npm"; cp "$WORK/app/package.json" "$LOCK" "$r/npm/"; start=$(now)
  (cd "$r/npm" && npm ci "${QUIET[@]}" --registry "$REG" --cache "$r/npm-cache" >/dev/null)
  npmci+=("$(elapsed "$start")")

  # Fetch alone (no allocation), into another empty store.
  start=$(now)
  "$BIN" --quiet --store "$r/fetch-store" fetch --registry "$REG" --lockfile "$LOCK"
  ours_fetch+=("$(elapsed "$start")")

  "$BIN" --quiet --store "$r/ours-store" verify --app-dir "$r/ours" || { log "verify failed in run $i"; exit 1; }
  [[ -f "$r/pnpm/node_modules/express/package.json" && -f "$r/bun/node_modules/express/package.json" && -f "$r/npm/node_modules/express/package.json" ]] ||
    { log "an install is incomplete in run $i"; exit 1; }
  rm -rf "$r"
done

M_OURS=$(median "${ours[@]}"); M_PNPM=$(median "${pnpm[@]}"); M_BUN=$(median "${bun[@]}"); M_NPM=$(median "${npmci[@]}"); M_FETCH=$(median "${ours_fetch[@]}")
echo
echo "app: $PACKAGES packages ($NAMES names) from verdaccio 6.8.0 on loopback; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bun $("$BUN" --version), pnpm $("$PNPM" --version), npm $(npm --version), node $(node --version)"
echo "ours: ${ours[*]}"
echo "pnpm: ${pnpm[*]}"
echo "bun:  ${bun[*]}"
echo "npm:  ${npmci[*]}"
printf '%-52s %10s %12s\n' "cold, empty caches (median of $RUNS)" "seconds" "ours / it"
printf '%-52s %10s %12s\n' "node-modules-alloc allocate (fetch on demand)" "$M_OURS" "-"
printf '%-52s %10s %12s\n' "node-modules-alloc fetch alone (no allocation)" "$M_FETCH" "-"
printf '%-52s %10s %12s\n' "pnpm install --frozen-lockfile" "$M_PNPM" "$(ratio "$M_OURS" "$M_PNPM")"
printf '%-52s %10s %12s\n' "bun install --frozen-lockfile" "$M_BUN" "$(ratio "$M_OURS" "$M_BUN")"
printf '%-52s %10s %12s\n' "npm ci" "$M_NPM" "$(ratio "$M_OURS" "$M_NPM")"
