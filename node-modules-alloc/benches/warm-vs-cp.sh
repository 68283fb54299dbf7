#!/usr/bin/env bash
# Warm allocation (the template exists; clone it into a fresh app dir) against `cp -al` of the
# same finished tree, on a synthetic app: PACKAGES packages × FILES_PER_PACKAGE files (default
# 100 × 20 = 2,000 files, one nested install per 10 packages, a bin per 10 packages). Runs are
# alternated; the median of RUNS (default 7) is printed for each. Needs python3 (tarballs) and
# no network. Everything lives in a temporary directory (KEEP=1 keeps it).
#
# Usage: node-modules-alloc/benches/warm-vs-cp.sh [RUNS]   (BIN=path/to/node-modules-alloc to skip the build)
set -euo pipefail

RUNS=${1:-7}
PACKAGES=${PACKAGES:-100}
FILES_PER_PACKAGE=${FILES_PER_PACKAGE:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-$ROOT/target}/nma-warm.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$WORK"' EXIT; fi

log() { printf '%s\n' "$*" >&2; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [[ -z "${BIN:-}" ]]; then
  log "== building node-modules-alloc (release)"
  cargo build --release --quiet -p node-modules-alloc --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/node-modules-alloc"
fi

log "== generating $PACKAGES packages × $FILES_PER_PACKAGE files"
python3 - "$WORK" "$PACKAGES" "$FILES_PER_PACKAGE" <<'PY'
import base64, hashlib, io, json, os, sys, tarfile
work, packages, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{work}/tarballs")
lock = {"": {"name": "app", "version": "1.0.0"}}
for i in range(packages):
    name = f"pkg{i}"
    files = {"package.json": json.dumps({"name": name, "version": "1.0.0", **({"bin": {name: "cli.js"}} if i % 10 == 0 else {})}).encode()}
    if i % 10 == 0:
        files["cli.js"] = b"#!/usr/bin/env node\n"
    for j in range(per - len(files)):
        files[f"lib/d{j % 4}/f{j}.js"] = f"// {name} {j}\n".encode() + b"x" * (200 + 37 * j)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    open(f"{work}/tarballs/{name}-1.0.0.tgz", "wb").write(data)
    path = f"node_modules/pkg{i - 1}/node_modules/{name}" if i % 10 == 9 else f"node_modules/{name}"
    entry = {"version": "1.0.0", "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}
    if i % 10 == 0:
        entry["bin"] = {name: "cli.js"}
    lock[path] = entry
json.dump({"name": "app", "version": "1.0.0", "lockfileVersion": 3, "packages": lock}, open(f"{work}/package-lock.json", "w"))
PY

STORE="$WORK/store"
"$BIN" --store "$STORE" import "$WORK/tarballs" >/dev/null
"$BIN" --store "$STORE" allocate --min-free-bytes 0 --lockfile "$WORK/package-lock.json" --app-dir "$WORK/warm" >/dev/null
log "   $(find "$WORK/warm/node_modules" -type f | wc -l) files, $(find "$WORK/warm/node_modules" -type d | wc -l) directories"

alloc_times=() cp_times=()
for i in $(seq 1 "$RUNS"); do
  mkdir -p "$WORK/a$i"
  t=$(now); "$BIN" --store "$STORE" allocate --min-free-bytes 0 --lockfile "$WORK/package-lock.json" --app-dir "$WORK/a$i" >/dev/null; alloc_times+=("$(elapsed "$t")")
  mkdir -p "$WORK/c$i"
  t=$(now); cp -al "$WORK/warm/node_modules" "$WORK/c$i/node_modules"; cp_times+=("$(elapsed "$t")")
done
a=$(median "${alloc_times[@]}"); c=$(median "${cp_times[@]}")
printf 'warm allocate: median %ss  (runs: %s)\n' "$a" "${alloc_times[*]}"
printf 'cp -al:        median %ss  (runs: %s)\n' "$c" "${cp_times[*]}"
awk -v a="$a" -v c="$c" 'BEGIN { printf "ratio allocate / cp -al: %.2f\n", a / c }'
