#!/usr/bin/env bash
# Make sure Debian's prometheus is installed; print the path of the binary.
#
# Idempotent: installs the `prometheus` package only when no `prometheus` is on
# the PATH, and runs `apt-get update` only if that install fails (no package
# lists yet).  The package also installs a system service (listening on every
# address, port 9090) and node exporter; this script never starts them, disables
# them and stops them if they run, so that only the prometheus instances started
# by tests (on loopback, with their own configuration and storage) ever run.
# Runs as root on Debian 12.  Exit status is non-zero when prometheus is still
# missing afterwards.
set -euo pipefail

log() { printf '[ensure-prometheus] %s\n' "$*" >&2; }

if ! command -v prometheus >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    log "prometheus missing: apt-get install -y prometheus"
    if ! apt-get install -y -q prometheus >&2; then
        log "install failed; refreshing package lists (apt-get update) and retrying"
        apt-get update -q >&2
        apt-get install -y -q prometheus >&2
    fi
fi

PROMETHEUS="$(command -v prometheus || true)"
if [[ -z "$PROMETHEUS" ]]; then
    log "still no prometheus on the PATH after installing the prometheus package"
    exit 1
fi

# The packaged services: never let them run (they would listen beyond loopback).
for svc in prometheus prometheus-node-exporter; do
    if [[ -e /lib/systemd/system/$svc.service || -e /etc/init.d/$svc ]]; then
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        else
            if command -v update-rc.d >/dev/null 2>&1; then
                update-rc.d "$svc" disable >/dev/null 2>&1 || true
            fi
            rm -f "/etc/systemd/system/multi-user.target.wants/$svc.service"
        fi
        # Whatever started it, the service's own pid file names the process to stop.
        pidfile="/run/$svc/$svc.pid"
        [[ -s "$pidfile" ]] || pidfile="/run/$svc.pid"
        if [[ -s "$pidfile" ]]; then
            for pid in $(cat "$pidfile"); do
                if kill -0 "$pid" 2>/dev/null; then
                    log "stopping the system $svc service (pid $pid)"
                    kill "$pid" 2>/dev/null || true
                fi
            done
        fi
    fi
done

echo "$PROMETHEUS"
