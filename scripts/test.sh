#!/usr/bin/env bash
# Run the whole mesoslite test suite on this machine.
#
# Installs what the tests need when it is missing (idempotent: checks first),
# then runs pytest over tests/ on TEST_WORKERS pytest-xdist workers (default 3).
# Extra arguments go to pytest, e.g.
#   scripts/test.sh tests/unit -x
#   TEST_WORKERS=0 scripts/test.sh tests/unit/test_sorter.py    # no worker processes
# Steps that must pass before pytest (linters, type and import contracts) go
# before the "running pytest" line below.
# Exit status is pytest's: non-zero when any test fails, 5 when none ran.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

log() { printf '[test.sh] %s\n' "$*" >&2; }

ensure_python_packages() {
    # Installs mesoslite (editable) with its test extra only if something is missing.
    if "$PYTHON" - <<'PY' 2>/dev/null
import importlib, sys
import importlib.metadata as md
for mod in ("zmq", "msgpack", "kazoo", "tornado", "attrs", "psutil", "pytest", "hypothesis",
            "pytest_timeout", "docker", "yaml", "dns.message"):
    importlib.import_module(mod)
dist = md.distribution("mesoslite")
# An editable install of this very checkout, with the console script.
import mesoslite, pathlib
assert pathlib.Path(mesoslite.__file__).resolve().parent == pathlib.Path("mesoslite").resolve()
PY
    then
        log "python packages: present"
    else
        log "python packages: installing mesoslite[test] (editable)"
        "$PYTHON" -m pip install --disable-pip-version-check -q -e '.[test]'
    fi
}

ensure_pytest_xdist() {
    # The suite runs on several worker processes (see tests/conftest.py); installs the
    # plugin only when it is missing.
    if "$PYTHON" -c "import xdist" 2>/dev/null; then
        log "pytest-xdist: present"
    else
        log "pytest-xdist: installing"
        "$PYTHON" -m pip install --disable-pip-version-check -q 'pytest-xdist>=3.5'
    fi
}

ensure_python_packages
ensure_pytest_xdist

bash scripts/check.sh  # lint, types and the import contracts of DESIGN.md section 3, first

# Real ZooKeeper for the coordination and high-availability tests
# (each test starts its own server on a free loopback port).
bash scripts/ensure-zookeeper.sh >/dev/null

# Real Docker engine and the local busybox test image (no registry is needed).
bash scripts/ensure-docker.sh >/dev/null

# Real haproxy for the service discovery test (the packaged service is kept stopped).
bash scripts/ensure-haproxy.sh >/dev/null

# Debian's prometheus for the scrape test (the packaged service is never started).
bash scripts/ensure-prometheus.sh >/dev/null

# The two local images docker-compose.local.yml runs (tests/integration/test_compose_up.py),
# built here rather than inside a test's time limit; rebuilt when the sources changed.
bash scripts/build-compose-images.sh >/dev/null

# Debian's chromium and Playwright for Python for the web UI tests (tests/e2e/test_webui_*).
bash scripts/ensure-chromium.sh >/dev/null

# Every test server listens on loopback only; make sure no proxy interferes.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

# Worker processes for pytest-xdist (TEST_WORKERS=0 runs in this process only).  Tests
# that share a module-scoped fixture stay together on one worker (--dist loadgroup).
# Most tests wait on real processes, so 3 workers beat 2 on two cores (about 3.5 min
# against 5 with one core kept busy) and stay green.
TEST_WORKERS="${TEST_WORKERS:-3}"
# (pytest-benchmark, when some other package installed it, only warns under xdist: off.)
PYTEST_ARGS=(-q -p no:cacheprovider -p no:benchmark)
if [ "$TEST_WORKERS" != "0" ]; then
    PYTEST_ARGS+=(-n "$TEST_WORKERS" --dist loadgroup)
fi

log "running pytest (workers: $TEST_WORKERS)"
exec "$PYTHON" -m pytest "${PYTEST_ARGS[@]}" "${@:-tests}"
