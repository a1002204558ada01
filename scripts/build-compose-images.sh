#!/usr/bin/env bash
# Build the two local images that docker-compose.local.yml runs, without any registry.
#
#   mesoslite-local/mesoslite:latest   this machine's Python 3.11 + mesoslite[docker] + haproxy
#   mesoslite-local/zookeeper:3.8      a jlink'd Java runtime + Debian's ZooKeeper jars
#
# Both are FROM scratch plus one layer (docker/mesoslite, docker/zookeeper): the
# root file system is assembled here from the host (the interpreter or the JVM,
# every shared library `ldd` names, a static busybox for /bin/sh and sleep).
# Idempotent: an image is built only when it is missing, or for the mesoslite image when
# it was built from other sources than this checkout's (a digest label; MESOSLITE_REBUILD=1
# forces both).  Also makes sure the engine (scripts/ensure-docker.sh), ZooKeeper's jars
# (scripts/ensure-zookeeper.sh) and docker-compose (Debian package) are installed.
# What it did goes to stderr; the two image names are printed on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

MESOSLITE_IMAGE="${MESOSLITE_COMPOSE_IMAGE:-mesoslite-local/mesoslite:latest}"
ZOOKEEPER_IMAGE="${MESOSLITE_COMPOSE_ZK_IMAGE:-mesoslite-local/zookeeper:3.8}"
PYTHON="${PYTHON:-python3}"
BUSYBOX=/bin/busybox
JAVA_MODULES="java.base,java.logging,java.management,java.naming,java.security.jgss"
JAVA_MODULES+=",java.security.sasl,java.xml,java.sql,jdk.management,jdk.unsupported,jdk.crypto.ec"

log() { printf '[build-compose-images] %s\n' "$*" >&2; }

docker_cli() {
    if [[ -x /usr/bin/docker ]]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

image_missing() {
    [[ "${MESOSLITE_REBUILD:-0}" == 1 ]] || ! docker_cli image inspect "$1" >/dev/null 2>&1
}

# A digest of what the mesoslite image installs: an image built from other sources is stale.
source_digest() {
    find setup.cfg pyproject.toml mesoslite frameworks -type f ! -name '*.pyc' -print0 \
        | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32
}

# Missing, or labelled with another source digest than this checkout's.
mesoslite_image_stale() {
    image_missing "$1" && return 0
    [[ "$(docker_cli image inspect -f '{{index .Config.Labels "mesoslite.source"}}' "$1" \
        2>/dev/null)" != "$SOURCE_DIGEST" ]]
}

# Copies every shared library the given ELF files load (and the loader) into $1,
# at the same absolute paths (libraries already inside $1, like wheels' bundled ones, stay).
copy_libs() {
    local root="$1"; shift
    local lib
    for lib in $(ldd "$@" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' \
            | sort -u); do
        [[ "$lib" == "$root"/* || -e "$root$lib" ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# A static busybox as /bin/sh, sleep and the other applets, plus /tmp and /etc.
add_busybox() {
    local root="$1" applet
    mkdir -p "$root/bin" "$root/tmp" "$root/etc"
    chmod 1777 "$root/tmp"
    cp "$BUSYBOX" "$root/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

build() {
    local image="$1" ctx="$2" start=$SECONDS
    shift 2
    log "building $image"
    DOCKER_BUILDKIT=0 docker_cli build -q "$@" -t "$image" "$ctx" >&2
    log "built $image in $((SECONDS - start))s"
}

build_mesoslite() {
    local ctx="$1" root="$1/rootfs" prefix stdlib site
    prefix="$("$PYTHON" -c 'import sys; print(sys.base_prefix)')"
    stdlib="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
    cp docker/mesoslite/Dockerfile "$ctx/"
    add_busybox "$root"
    mkdir -p "$root/usr/local/bin" "$root/usr/local/lib"
    cp -L "$prefix/bin/python3.11" "$root/usr/local/bin/python3.11"
    ln -s python3.11 "$root/usr/local/bin/python3"
    ln -s python3.11 "$root/usr/local/bin/python"
    # The standard library without its tests, tkinter, idle and the static libpython.
    tar -C "$(dirname "$stdlib")" -cf - \
        --exclude='python3.11/site-packages' --exclude='python3.11/test' \
        --exclude='python3.11/idlelib' --exclude='python3.11/tkinter' \
        --exclude='python3.11/turtledemo' --exclude='python3.11/ensurepip' \
        --exclude='python3.11/config-3.11-*' --exclude='_tkinter*.so' \
        python3.11 | tar -C "$root/usr/local/lib" -xf -
    site="$root/usr/local/lib/python3.11/site-packages"
    mkdir -p "$site"
    # Installed from a copy of the sources, so that the checkout gets no build/ or egg-info.
    mkdir -p "$ctx/src"
    tar -cf - --exclude='__pycache__' setup.cfg pyproject.toml README.md mesoslite frameworks \
        | tar -C "$ctx/src" -xf -
    log "installing mesoslite[docker] and its dependencies into the image's site-packages"
    "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
        --target "$site" "$ctx/src[docker]" >&2
    rm -rf "$site/bin" "$ctx/src"
    cat >"$root/usr/local/bin/mesoslite" <<'EOF'
#!/usr/local/bin/python3.11
import sys

from mesoslite.cli import main

sys.exit(main())
EOF
    chmod 755 "$root/usr/local/bin/mesoslite"
    # libpython goes where the loader looks by default (the host's RUNPATH is not in the image).
    mkdir -p "$root/lib/x86_64-linux-gnu"
    if [[ -e "$prefix/lib/libpython3.11.so.1.0" ]]; then
        cp -L "$prefix/lib/libpython3.11.so.1.0" "$root/lib/x86_64-linux-gnu/"
    fi
    # haproxy for `mesoslite lb` (Debian's, installed on the host when missing).
    mkdir -p "$root/usr/sbin"
    cp -L "$(bash scripts/ensure-haproxy.sh)" "$root/usr/sbin/haproxy"
    copy_libs "$root" "$prefix/bin/python3.11" "$root/usr/sbin/haproxy" \
        $(find "$root/usr/local/lib" -name '*.so*' -type f)
    build "$MESOSLITE_IMAGE" "$ctx" --label "mesoslite.source=$SOURCE_DIGEST"
}

build_zookeeper() {
    local ctx="$1" root="$1/rootfs" jar jars
    cp docker/zookeeper/Dockerfile "$ctx/"
    add_busybox "$root"
    mkdir -p "$root/usr/local/bin" "$root/opt/zookeeper/lib" "$root/data" "$root/conf"
    install -m 755 docker/zookeeper/zk-start "$root/usr/local/bin/zk-start"
    log "linking a Java runtime ($JAVA_MODULES)"
    jlink --add-modules "$JAVA_MODULES" --strip-debug --no-header-files --no-man-pages \
        --compress=2 --output "$root/opt/java" >&2
    # zookeeper.jar, what its manifest's Class-Path names (when installed), and a logger.
    jars=(/usr/share/java/zookeeper.jar /usr/share/java/slf4j-simple.jar)
    jars+=($(unzip -p /usr/share/java/zookeeper.jar META-INF/MANIFEST.MF \
        | tr -d '\r' | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n //g' \
        | sed -n 's/^Class-Path: //p'))
    for jar in "${jars[@]}"; do
        [[ -e "$jar" ]] && cp -L "$jar" "$root/opt/zookeeper/lib/"
    done
    copy_libs "$root" $(find "$root/opt/java" -type f \( -name '*.so' -o -path '*/bin/*' \))
    build "$ZOOKEEPER_IMAGE" "$ctx"
}

# Prerequisites, each installed only when missing.
bash scripts/ensure-docker.sh >/dev/null
bash scripts/ensure-zookeeper.sh >/dev/null
need=()
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v jlink >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    log "installing ${need[*]}"
    if ! apt-get install -y -q "${need[@]}" >&2; then
        apt-get update -q >&2
        apt-get install -y -q "${need[@]}" >&2
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
SOURCE_DIGEST="$(source_digest)"
if mesoslite_image_stale "$MESOSLITE_IMAGE"; then
    mkdir -p "$work/mesoslite"
    build_mesoslite "$work/mesoslite"
else
    log "image: $MESOSLITE_IMAGE present"
fi
if image_missing "$ZOOKEEPER_IMAGE"; then
    mkdir -p "$work/zookeeper"
    build_zookeeper "$work/zookeeper"
else
    log "image: $ZOOKEEPER_IMAGE present"
fi
echo "$MESOSLITE_IMAGE"
echo "$ZOOKEEPER_IMAGE"
