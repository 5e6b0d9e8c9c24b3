#!/usr/bin/env bash
# Build Herald's image and prove the compose stack, on a machine with no image registry.
#
#   deploy/stack/stack-test.sh image   # private daemon, local base image, herald:latest
#   deploy/stack/stack-test.sh         # the same, then tests/stack (HERALD_STACK=1)
#
# What it does, each step timed (summary at the end):
#   1. installs what is missing from Debian: docker.io, debootstrap, docker-compose;
#   2. starts a private dockerd (no bridge, no iptables, its own socket, pidfile and
#      data root under $HERALD_STACK_CACHE, reused across runs), stopped by its pid on
#      exit, failure included;
#   3. makes the base image once (debootstrap bookworm + Python 3.11, `docker import`):
#      later runs find it in the cached data root;
#   4. builds herald:latest with host networking (pip reaches PyPI) and the host's CA
#      bundle as a build secret (never in a layer), pg_dump from Debian's archive;
#   5. runs tests/stack: the compose stack with deploy/stack/compose.test.yml.
#
# Environment: HERALD_STACK_CACHE (default /var/cache/herald-stack), HERALD_CA_BUNDLE
# (default /etc/ssl/certs/ca-certificates.crt), DEBIAN_MIRROR and
# DEBIAN_SECURITY_MIRROR (default: this machine's apt sources), PYTHON (the
# interpreter with pytest, default .venv/bin/python). Must run as root (dockerd).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${HERALD_STACK_CACHE:-/var/cache/herald-stack}"
CA_BUNDLE="${HERALD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SOCKET="$CACHE/docker.sock"
PIDFILE="$CACHE/dockerd.pid"
BASE_IMAGE="herald-base:bookworm-py311"
IMAGE="herald:latest"
# Debian's own CLI: the daemon's version, with BuildKit built in (a newer CLI on PATH
# wants the buildx plugin, which Debian does not package).
DOCKER="${DOCKER:-/usr/bin/docker}"
export DOCKER_HOST="unix://$SOCKET"
export DOCKER

DOCKERD_PID=""
TIMINGS=()

log() { printf '[stack-test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# step NAME COMMAND...: run it, remember how long it took.
step() {
    local name="$1" started
    shift
    started=$(date +%s)
    log "$name ..."
    "$@"
    TIMINGS+=("$(printf '%-28s %5ss' "$name" "$(($(date +%s) - started))")")
}

summary() {
    local line
    for line in "${TIMINGS[@]}"; do log "time  $line"; done
}

install_missing() {
    local missing=()
    command -v dockerd >/dev/null && [[ -x /usr/bin/docker ]] || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
}

stop_daemon() {
    [[ -n "$DOCKERD_PID" ]] || return 0
    log "stopping dockerd (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null || return 0
    local deadline=$((SECONDS + 60))
    while kill -0 "$DOCKERD_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
        log "dockerd ignored SIGTERM for 60s: SIGKILL"
        kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    fi
    DOCKERD_PID=""
}

on_exit() {
    local status=$?
    stop_daemon
    summary
    ((status == 0)) || log "FAILED (exit $status); daemon log: $CACHE/dockerd.log"
    exit "$status"
}

start_daemon() {
    mkdir -p "$CACHE"
    # A previous run killed before its trap ran leaves its daemon behind: that one,
    # found by its own pidfile, is ours to stop (the data root allows one daemon).
    if [[ -s "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        DOCKERD_PID="$(cat "$PIDFILE")"
        log "a previous run's dockerd is still up"
        stop_daemon
    fi
    dockerd \
        --data-root "$CACHE/docker" \
        --exec-root /run/herald-stack \
        --host "unix://$SOCKET" \
        --pidfile "$PIDFILE" \
        --bridge=none \
        --iptables=false \
        --ip6tables=false \
        >"$CACHE/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    local deadline=$((SECONDS + 90))
    until "$DOCKER" version >/dev/null 2>&1; do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null || ((SECONDS > deadline)); then
            tail -n 30 "$CACHE/dockerd.log" >&2
            log "dockerd did not come up"
            return 1
        fi
        sleep 0.5
    done
}

# The URIs of this machine's Debian archive (deb822 or one-line sources).
apt_uri() {
    local suite_pattern="$1"
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null || true; } | awk -v want="$suite_pattern" '
        /^deb / && $3 ~ want { print $2; exit }
        /^URIs:/ { uri = $2 }
        /^Suites:/ && $0 ~ want && uri ~ /debian/ { print uri; exit }'
}

make_base_image() {
    if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "$BASE_IMAGE is cached"
        return 0
    fi
    local mirror security rootfs
    mirror="${DEBIAN_MIRROR:-$(apt_uri 'bookworm( |$)')}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    security="${DEBIAN_SECURITY_MIRROR:-$(apt_uri 'bookworm-security')}"
    security="${security:-http://deb.debian.org/debian-security}"
    rm -rf "$CACHE"/rootfs.* # an interrupted earlier attempt's
    rootfs="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$rootfs" "$mirror"
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb
    tar --numeric-owner -C "$rootfs" -c . |
        "$DOCKER" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$BASE_IMAGE"
    rm -rf "$rootfs"
}

build_image() {
    DOCKER_BUILDKIT=1 "$DOCKER" build \
        --network host \
        --secret "id=ca_bundle,src=$CA_BUNDLE" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg PG_SOURCE=debian \
        --build-arg PG_MAJOR=15 \
        --tag "$IMAGE" \
        "$ROOT"
    local size
    size="$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")"
    log "$IMAGE: $((size / 1000000)) MB ($size bytes)"
    TIMINGS+=("$(printf '%-28s %5sMB' "image size" "$((size / 1000000))")")
}

stack_tests() {
    HERALD_STACK=1 "$PYTHON" -m pytest "$ROOT/tests/stack" -v -p no:cacheprovider \
        --timeout 900
}

main() {
    local what="${1:-all}"
    case "$what" in image | all) ;; *) echo "usage: $0 [image|all]" >&2 && exit 2 ;; esac
    [[ $EUID -eq 0 ]] || { log "must run as root (it starts dockerd)"; exit 2; }
    trap on_exit EXIT
    mkdir -p "$CACHE"
    exec 9>"$CACHE/lock"
    flock -n 9 || { log "another stack test holds $CACHE/lock"; exit 1; }
    step "install missing packages" install_missing
    step "start dockerd" start_daemon
    step "base image" make_base_image
    step "build $IMAGE" build_image
    [[ "$what" == image ]] || step "stack tests" stack_tests
}

main "$@"
