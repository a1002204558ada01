#!/usr/bin/env bash
# Make sure Debian's ZooKeeper is installed; print the path of zkServer.sh.
#
# Idempotent: installs the `zookeeper` package only when zkServer.sh is
# missing, and runs `apt-get update` only if that install fails (no package
# lists yet).  Never starts a server: tests start their own (tests/support/zk.py).
# Runs as root on Debian 12.  Exit status is non-zero when ZooKeeper is still
# missing afterwards.
set -euo pipefail

ZK_SERVER="/usr/share/zookeeper/bin/zkServer.sh"

log() { printf '[ensure-zookeeper] %s\n' "$*" >&2; }

if [[ ! -x "$ZK_SERVER" ]]; then
    export DEBIAN_FRONTEND=noninteractive
    log "zkServer.sh missing: apt-get install -y zookeeper"
    if ! apt-get install -y -q zookeeper >&2; then
        log "install failed; refreshing package lists (apt-get update) and retrying"
        apt-get update -q >&2
        apt-get install -y -q zookeeper >&2
    fi
fi

if [[ ! -x "$ZK_SERVER" ]]; then
    log "still no $ZK_SERVER after installing the zookeeper package"
    exit 1
fi

echo "$ZK_SERVER"
