#!/usr/bin/env bash
# Make sure Debian's haproxy is installed; print the path of the binary.
#
# Idempotent: installs the `haproxy` package only when no `haproxy` is on the
# PATH, and runs `apt-get update` only if that install fails (no package lists
# yet).  The package also installs a system service that runs haproxy with
# /etc/haproxy/haproxy.cfg (no listener in Debian 12's stock file, but whatever
# that file binds, on any address); this script disables that service and stops
# it if it runs, so that only haproxy instances started by tests (on loopback,
# with their own configuration) ever run.  Runs as root on Debian 12.  Exit status
# is non-zero when haproxy is still missing afterwards.
set -euo pipefail

log() { printf '[ensure-haproxy] %s\n' "$*" >&2; }

if ! command -v haproxy >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    log "haproxy missing: apt-get install -y haproxy"
    if ! apt-get install -y -q haproxy >&2; then
        log "install failed; refreshing package lists (apt-get update) and retrying"
        apt-get update -q >&2
        apt-get install -y -q haproxy >&2
    fi
fi

HAPROXY="$(command -v haproxy || true)"
if [[ -z "$HAPROXY" ]]; then
    log "still no haproxy on the PATH after installing the haproxy package"
    exit 1
fi

# The packaged service: never let it run (it would listen beyond loopback).
if [[ -e /lib/systemd/system/haproxy.service || -e /etc/init.d/haproxy ]]; then
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        systemctl disable --now haproxy >/dev/null 2>&1 || true
    else
        if command -v update-rc.d >/dev/null 2>&1; then
            update-rc.d haproxy disable >/dev/null 2>&1 || true
        fi
        rm -f /etc/systemd/system/multi-user.target.wants/haproxy.service
    fi
    # Whatever started it, the service's own pid file names the process to stop.
    if [[ -s /run/haproxy.pid ]]; then
        for pid in $(cat /run/haproxy.pid); do
            if kill -0 "$pid" 2>/dev/null; then
                log "stopping the system haproxy service (pid $pid)"
                kill "$pid" 2>/dev/null || true
            fi
        done
        rm -f /run/haproxy.pid
    fi
fi

echo "$HAPROXY"
