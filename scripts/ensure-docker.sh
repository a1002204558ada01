#!/usr/bin/env bash
# Make sure a Docker engine answers here and the test image exists.
#
# Idempotent, each step only when needed:
#   1. apt-get install -y docker.io busybox-static   (when dockerd or busybox is missing;
#      apt-get update only if that install fails: no package lists yet)
#   2. start `dockerd --storage-driver=vfs` in the background (setsid, log file)
#      when `docker info` does not answer, and wait for it with a deadline
#   3. build mesoslite-test/busybox:latest (FROM scratch + static busybox, no
#      registry needed) with DOCKER_BUILDKIT=0 when the image is missing
# What it did goes to stderr; the image name is printed on stdout.  No registry
# is reachable on these machines, so nothing is ever pulled.
#
# Environment: MESOSLITE_DOCKERD_LOG (default /var/log/mesoslite-dockerd.log),
# MESOSLITE_DOCKERD_DEADLINE seconds (default 60), MESOSLITE_TEST_IMAGE.
# Exit status is non-zero when the engine or the image is still missing.
set -euo pipefail

IMAGE="${MESOSLITE_TEST_IMAGE:-mesoslite-test/busybox:latest}"
DOCKERD_LOG="${MESOSLITE_DOCKERD_LOG:-/var/log/mesoslite-dockerd.log}"
DEADLINE="${MESOSLITE_DOCKERD_DEADLINE:-60}"
BUSYBOX=/bin/busybox

log() { printf '[ensure-docker] %s\n' "$*" >&2; }

# Debian's client matches Debian's engine; prefer it over any other `docker` on PATH.
docker_cli() {
    if [[ -x /usr/bin/docker ]]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

engine_answers() { timeout 10 bash -c 'docker_cli info' >/dev/null 2>&1; }

# 1. packages
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
    || missing+=(busybox-static)
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    log "installing ${missing[*]}"
    if ! apt-get install -y -q "${missing[@]}" >&2; then
        log "install failed; refreshing package lists (apt-get update) and retrying"
        apt-get update -q >&2
        apt-get install -y -q "${missing[@]}" >&2
    fi
else
    log "packages: docker.io and busybox-static present"
fi
if ! command -v dockerd >/dev/null 2>&1; then
    log "dockerd is still missing after installing docker.io"
    exit 1
fi
if [[ ! -x "$BUSYBOX" ]]; then
    log "$BUSYBOX is still missing after installing busybox-static"
    exit 1
fi

# 2. engine
export -f docker_cli
if engine_answers; then
    log "engine: already answering"
else
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "engine: a dockerd runs but does not answer yet; waiting for it"
    else
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        log "engine: starting dockerd --storage-driver=vfs (log: $DOCKERD_LOG)"
        setsid dockerd --storage-driver=vfs >>"$DOCKERD_LOG" 2>&1 < /dev/null &
        disown || true
    fi
    end=$((SECONDS + DEADLINE))
    until engine_answers; do
        if ((SECONDS >= end)); then
            log "engine: docker info still does not answer after ${DEADLINE}s; last log lines:"
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    log "engine: answering"
fi

# 3. test image
if docker_cli image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image: $IMAGE present"
else
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    cp "$BUSYBOX" "$ctx/busybox"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
CMD ["/bin/sh"]
EOF
    log "image: building $IMAGE from scratch + static busybox"
    DOCKER_BUILDKIT=0 docker_cli build -q -t "$IMAGE" "$ctx" >&2
    log "image: built $IMAGE"
fi

echo "$IMAGE"
