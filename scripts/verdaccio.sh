#!/usr/bin/env bash
# Throw-away npm registry (verdaccio) for node-modules-alloc's fetch tests and benchmark.
#
# Usage:
#   scripts/verdaccio.sh ensure    install verdaccio@6.8.0 from the npm registry into
#                                  target/verdaccio (skipped when present; 6.10+ needs Node 22)
#   scripts/verdaccio.sh start     start it on a free loopback port, no uplink, with a fresh
#                                  storage folder and an htpasswd user; prints
#                                    export BREAKWATER_NPM_REGISTRY=http://127.0.0.1:PORT/
#                                    export BREAKWATER_NPM_REGISTRY_STORAGE=DIR
#                                    export BREAKWATER_NPM_REGISTRY_TOKEN=TOKEN
#                                  (also written to target/verdaccio/run/env). Packages under
#                                  @private/ need authentication; everything else is public.
#                                  The tests seed the storage folder with tarballs they build
#                                  (verdaccio reads it on every request).
#   scripts/verdaccio.sh stop      kill it and remove its storage
#   scripts/verdaccio.sh env       print the export lines of the running one
#
# BREAKWATER_VERDACCIO_RUN=DIR runs a separate instance with its state in DIR (the benchmark).
#
# Typical use:
#   scripts/verdaccio.sh ensure
#   eval "$(scripts/verdaccio.sh start)"
#   trap 'scripts/verdaccio.sh stop' EXIT
#   cargo test -p node-modules-alloc --all-features --test fetch_registry
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${BREAKWATER_VERDACCIO_PREFIX:-$root/target/verdaccio}"
run="${BREAKWATER_VERDACCIO_RUN:-$prefix/run}"
version="6.8.0"
user="breakwater"

log() { printf 'verdaccio.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bin() { printf '%s\n' "$prefix/node_modules/.bin/verdaccio"; }

installed() {
  [ -x "$(bin)" ] &&
    grep -q "\"version\": \"$version\"" "$prefix/node_modules/verdaccio/package.json" 2>/dev/null
}

cmd_ensure() {
  if installed; then
    log "verdaccio $version present in $prefix"
    return 0
  fi
  command -v npm >/dev/null 2>&1 || die "npm not found (needs Node 20 and npm)"
  mkdir -p "$prefix"
  log "installing verdaccio@$version into $prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "verdaccio@$version" >&2
  installed || die "verdaccio $version still missing after npm install"
}

free_port() {
  local port tries=0
  while [ "$tries" -lt 200 ]; do
    port=$(( 20000 + RANDOM % 40000 ))
    tries=$(( tries + 1 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "no free port found on 127.0.0.1"
}

running() { [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; }

# HTTP through node (no curl needed): METHOD URL [JSON-BODY] -> prints the body; fails on >= 400.
http() {
  node -e '
    const [method, url, body] = process.argv.slice(1);
    const req = require("http").request(url, { method, headers: { "content-type": "application/json" } }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => { process.stdout.write(data); process.exit(res.statusCode < 400 ? 0 : 1); });
    });
    req.on("error", () => process.exit(1));
    if (body) req.write(body);
    req.end();
  ' "$@"
}

cmd_start() {
  installed || die "verdaccio not installed: run 'scripts/verdaccio.sh ensure'"
  if running; then
    cat "$run/env"
    return 0
  fi
  rm -rf -- "$run"
  mkdir -p "$run/storage"
  local port
  port="$(free_port)"
  : >"$run/htpasswd"
  cat >"$run/config.yaml" <<YAML
storage: $run/storage
auth:
  htpasswd:
    file: $run/htpasswd
    max_users: 1
uplinks: {}
packages:
  '@private/*':
    access: \$authenticated
    publish: \$authenticated
  '**':
    access: \$all
    publish: \$authenticated
server:
  keepAliveTimeout: 60
security:
  api:
    legacy: true
log: { type: stdout, format: pretty, level: warn }
listen: 127.0.0.1:$port
YAML
  nohup "$(bin)" --config "$run/config.yaml" >>"$run/log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$run/pid"
  local url="http://127.0.0.1:$port/" waited=0
  until http GET "${url}-/ping" >/dev/null 2>&1; do
    running || { tail -n 20 "$run/log" >&2 || true; die "verdaccio exited during start-up (log: $run/log)"; }
    [ "$waited" -lt 300 ] || die "verdaccio not answering after 30 s (log: $run/log)"
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  # The one user (registration closes after it): its token reads @private/ packages.
  local password token
  password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  token="$(http PUT "${url}-/user/org.couchdb.user:$user" \
    "{\"name\":\"$user\",\"password\":\"$password\"}" |
    node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>process.stdout.write(JSON.parse(s).token||""))')" ||
    die "cannot create the test user (log: $run/log)"
  [ -n "$token" ] || die "verdaccio returned no token"
  {
    printf 'export BREAKWATER_NPM_REGISTRY=%s\n' "$url"
    printf 'export BREAKWATER_NPM_REGISTRY_STORAGE=%s\n' "$run/storage"
    printf 'export BREAKWATER_NPM_REGISTRY_TOKEN=%s\n' "$token"
  } >"$run/env"
  log "verdaccio $version (pid $(cat "$run/pid")) serving on $url"
  cat "$run/env"
}

cmd_stop() {
  [ -d "$run" ] || return 0
  if [ -f "$run/pid" ]; then
    local pid
    pid="$(cat "$run/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      local waited=0
      while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
        sleep 0.05
        waited=$(( waited + 1 ))
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf -- "$run"
  log "verdaccio stopped and removed"
}

cmd_env() {
  running || die "verdaccio is not running"
  cat "$run/env"
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  *)
    sed -n '2,26p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
