#!/usr/bin/env bash
# The house's contracts, checked before the tests (scripts/test.sh runs this first):
#   ruff              lint rules            pyproject.toml [tool.ruff]
#   mypy              types                 mypy.ini (strict on the PURE cores)
#   import-contracts  ownership rules       .importlinter (DESIGN.md section 3)
#   code-contracts    what imports can't    scripts/contracts.py (spawn/kill calls,
#                     show                  tornado.web, PURE modules, runtime imports,
#                                           functions over 80 lines)
#
# Installs the tools when missing (idempotent: checks first).  Every check runs even when
# an earlier one fails; each failure is named; the exit status is 1 when any failed.
# MESOSLITE_SKIP_CHECKS=1 skips them all (for quick local test runs; CI never sets it).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

log() { printf '[check.sh] %s\n' "$*" >&2; }

if [[ "${MESOSLITE_SKIP_CHECKS:-}" == 1 ]]; then
    log "skipped (MESOSLITE_SKIP_CHECKS=1)"
    exit 0
fi

ensure_tools() {
    # The tools and stub packages of setup.cfg's `test` extra, at the versions it pins.
    if "$PYTHON" - <<'PY' 2>/dev/null
import configparser, importlib.metadata as md, sys
from packaging.requirements import Requirement
config = configparser.ConfigParser()
config.read("setup.cfg")
wanted = ("ruff", "mypy", "import-linter", "types-", "msgpack-types")
for line in config["options.extras_require"]["test"].split():
    req = Requirement(line)
    if req.name.startswith(wanted) and md.version(req.name) not in req.specifier:
        sys.exit(1)
PY
    then
        log "tools: present"
    else
        log "tools: installing mesoslite[test] (editable)"
        "$PYTHON" -m pip install --disable-pip-version-check -q -e '.[test]' || return 1
    fi
}

if ! ensure_tools; then
    log "FAILED: cannot install the check tools"
    exit 1
fi

# Import this checkout, not whatever an editable install elsewhere points at.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

failed=()
check() {
    local name=$1
    shift
    log "$name"
    if "$@"; then
        return 0
    fi
    failed+=("$name")
    log "$name: FAILED"
}

check ruff "$PYTHON" -m ruff check .
check mypy "$PYTHON" -m mypy
check import-contracts "$PYTHON" -c \
    'import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())' \
    --no-logo
check code-contracts "$PYTHON" scripts/contracts.py

if ((${#failed[@]})); then
    log "FAILED: ${failed[*]}"
    exit 1
fi
log "all checks passed"
