#!/usr/bin/env bash
# Make sure the browser tests can run: Debian's chromium and Playwright for Python.
#
# Idempotent: installs the `chromium` package only when /usr/bin/chromium is missing
# (running `apt-get update` only if that install fails: no package lists yet), and the
# PyPI package `playwright` only when Python cannot import it.  Playwright drives
# Debian's binary (tests/e2e/browser.py passes executable_path=/usr/bin/chromium);
# `playwright install` (its own browser download) is never run.  Runs as root on
# Debian 12.  Prints the browser's path; exit status is non-zero when something is
# still missing afterwards.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
CHROMIUM=/usr/bin/chromium

log() { printf '[ensure-chromium] %s\n' "$*" >&2; }

if [[ ! -x "$CHROMIUM" ]]; then
    export DEBIAN_FRONTEND=noninteractive
    log "chromium missing: apt-get install -y chromium"
    if ! apt-get install -y -q --no-install-recommends chromium >&2; then
        log "install failed; refreshing package lists (apt-get update) and retrying"
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends chromium >&2
    fi
fi
if [[ ! -x "$CHROMIUM" ]]; then
    log "still no $CHROMIUM after installing the chromium package"
    exit 1
fi

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    log "playwright (Python) missing: pip install playwright"
    "$PYTHON" -m pip install --disable-pip-version-check -q 'playwright>=1.40'
fi
"$PYTHON" -c "import playwright.sync_api" >/dev/null

echo "$CHROMIUM"
