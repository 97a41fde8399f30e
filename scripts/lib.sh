# Shared helpers for scripts/dev and scripts/test. Sourced, not executed.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch with decimals, for timings.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Build dependencies of librdkafka (compiled from source by the rdkafka crate)
# and of the OpenSSL bindings. Installed from Debian's packages when missing, so
# a fresh machine needs nothing by hand.
ensure_build_deps() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"
  local missing=()
  for pkg in build-essential pkg-config libssl-dev zlib1g-dev curl openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing build dependencies: ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Waits until URL answers 200, up to $2 seconds.
wait_http_ok() {
  local url=$1 timeout=${2:-60} start
  start=$(date +%s)
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    (( $(date +%s) - start < timeout )) || return 1
    sleep 0.5
  done
}
