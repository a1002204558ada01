#!/usr/bin/env bash
# Run the whole mesoslite test suite on this machine.
#
# Installs what the tests need when it is missing (idempotent: checks first),
# then runs pytest over tests/.  Extra arguments go to pytest, e.g.
#   scripts/test.sh tests/unit -x
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
            "pytest_timeout", "docker", "yaml"):
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

ensure_python_packages

bash scripts/check.sh  # lint, types and the import contracts of DESIGN.md section 3, first

# Real ZooKeeper for the coordination and high-availability tests
# (each test starts its own server on a free loopback port).
bash scripts/ensure-zookeeper.sh >/dev/null

# Real Docker engine and the local busybox test image (no registry is needed).
bash scripts/ensure-docker.sh >/dev/null

# Real haproxy for the service discovery test (the packaged service is kept stopped).
bash scripts/ensure-haproxy.sh >/dev/null

# Every test server listens on loopback only; make sure no proxy interferes.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

log "running pytest"
exec "$PYTHON" -m pytest -q -p no:cacheprovider "${@:-tests}"
