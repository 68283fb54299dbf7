#!/usr/bin/env bash
# Throw-away etcd for the `fleet-drain` etcd integration tests.
#
# Usage:
#   scripts/etcd.sh ensure          install etcd, protoc and protobuf's .proto files (Debian
#                                   packages) when missing; needs root or sudo
#   scripts/etcd.sh start [NAME]    start etcd NAME (default: "default") on loopback, free ports,
#                                   temp data dir, in the background; prints
#                                   `export BREAKWATER_ETCD_ENDPOINTS=http://127.0.0.1:PORT`
#                                   and writes the same line to target/etcd/NAME/env.
#                                   A NAME that was `halt`ed restarts on the same ports and data.
#   scripts/etcd.sh halt [NAME]     kill etcd NAME but keep its data dir and ports (outage tests)
#   scripts/etcd.sh stop [NAME]     kill etcd NAME and remove its data dir and state
#   scripts/etcd.sh env [NAME]      print the export line of a started etcd NAME
#
# Typical use:
#   scripts/etcd.sh ensure
#   eval "$(scripts/etcd.sh start)"
#   trap 'scripts/etcd.sh stop' EXIT
#   cargo test -p fleet-drain --features etcd
#
# etcd's own binary is found as `etcd` on PATH, or through BREAKWATER_ETCD_BIN.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_root="${BREAKWATER_ETCD_STATE:-$root/target/etcd}"

log() { printf 'etcd.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

etcd_bin() {
  if [ -n "${BREAKWATER_ETCD_BIN:-}" ]; then
    printf '%s\n' "$BREAKWATER_ETCD_BIN"
  elif command -v etcd >/dev/null 2>&1; then
    command -v etcd
  else
    return 1
  fi
}

cmd_ensure() {
  local missing=()
  etcd_bin >/dev/null 2>&1 || missing+=(etcd-server)
  command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
  # etcd's protos import protobuf's well-known types (descriptor.proto, ...).
  [ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
  if [ "${#missing[@]}" -eq 0 ]; then
    log "etcd and protoc present"
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    log "install failed; refreshing package lists and retrying"
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
  etcd_bin >/dev/null 2>&1 || die "etcd still not found after installing etcd-server"
  command -v protoc >/dev/null 2>&1 || die "protoc still not found after installing protobuf-compiler"
  [ -f /usr/include/google/protobuf/descriptor.proto ] ||
    die "protobuf's well-known .proto files still missing after installing libprotobuf-dev"
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
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

healthy() {
  local port="$1" reply
  reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" &&
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
    timeout 2 cat <&3) 2>/dev/null || true)
  [[ "$reply" == *'"health":"true"'* ]]
}

state_dir() {
  local name="${1:-default}"
  [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "invalid NAME '$name' (letters, digits, . _ -)"
  printf '%s/%s\n' "$state_root" "$name"
}

running() {
  local dir="$1"
  [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

cmd_start() {
  local dir bin client peer data
  dir="$(state_dir "${1:-}")"
  bin="$(etcd_bin)" || die "etcd not found: run 'scripts/etcd.sh ensure' (or set BREAKWATER_ETCD_BIN)"
  mkdir -p "$dir"
  if running "$dir"; then
    cat "$dir/env"
    return 0
  fi
  if [ -f "$dir/ports" ] && [ -f "$dir/datadir" ] && [ -d "$(cat "$dir/datadir")" ]; then
    read -r client peer <"$dir/ports"
    data="$(cat "$dir/datadir")"
  else
    client="$(free_port)"
    peer="$(free_port)"
    while [ "$peer" = "$client" ]; do peer="$(free_port)"; done
    data="$(mktemp -d "${TMPDIR:-/tmp}/breakwater-etcd.XXXXXX")"
    printf '%s %s\n' "$client" "$peer" >"$dir/ports"
    printf '%s\n' "$data" >"$dir/datadir"
  fi
  local name
  name="$(basename "$dir")"
  # A short election timeout keeps a restarted single-node etcd quick to serve again.
  nohup "$bin" \
    --name "breakwater-$name" \
    --data-dir "$data/member" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "breakwater-$name=http://127.0.0.1:$peer" \
    --initial-cluster-state new \
    --heartbeat-interval 50 --election-timeout 500 \
    --log-level warn \
    >>"$dir/log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$dir/pid"
  printf 'export BREAKWATER_ETCD_ENDPOINTS=http://127.0.0.1:%s\n' "$client" >"$dir/env"
  local waited=0
  until healthy "$client"; do
    if ! running "$dir"; then
      tail -n 20 "$dir/log" >&2 || true
      die "etcd '$name' exited during start-up (log: $dir/log)"
    fi
    if [ "$waited" -ge 150 ]; then
      die "etcd '$name' not healthy after 15 s (log: $dir/log)"
    fi
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  log "etcd '$name' (pid $(cat "$dir/pid")) serving on http://127.0.0.1:$client"
  cat "$dir/env"
}

kill_etcd() {
  local dir="$1" pid
  [ -f "$dir/pid" ] || return 0
  pid="$(cat "$dir/pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
      sleep 0.05
      waited=$(( waited + 1 ))
    done
  fi
  rm -f "$dir/pid"
}

cmd_halt() {
  local dir
  dir="$(state_dir "${1:-}")"
  kill_etcd "$dir"
  log "etcd '$(basename "$dir")' halted (data kept)"
}

cmd_stop() {
  local dir
  dir="$(state_dir "${1:-}")"
  [ -d "$dir" ] || return 0
  kill_etcd "$dir"
  if [ -f "$dir/datadir" ]; then
    rm -rf -- "$(cat "$dir/datadir")"
  fi
  rm -rf -- "$dir"
  log "etcd '$(basename "$dir")' stopped and removed"
}

cmd_env() {
  local dir
  dir="$(state_dir "${1:-}")"
  running "$dir" || die "etcd '$(basename "$dir")' is not running"
  cat "$dir/env"
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  start) cmd_start "${2:-}" ;;
  halt) cmd_halt "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  env) cmd_env "${2:-}" ;;
  *)
    sed -n '2,20p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
