"""mesoshttp, a third-party Mesos v1 scheduler library from PyPI, in its own virtualenv.

Owns: :func:`ensure_mesoshttp`, which returns the interpreter of a virtualenv holding
``mesoshttp==0.4.2`` (and its dependencies: requests, kazoo, pyjwt, cryptography),
creating it with ``python -m venv`` and ``pip install`` only when it is missing (under a
machine-wide lock; the cache directory is ``$MESOSLITE_TEST_CACHE`` or
``~/.cache/mesoslite-tests``).  The library never enters the test environment itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.procs import machine_lock

VERSION = "0.4.2"


def _cache() -> Path:
    base = os.environ.get("MESOSLITE_TEST_CACHE") or str(Path.home() / ".cache" /
                                                          "mesoslite-tests")
    return Path(base) / f"mesoshttp-{VERSION}"


def ensure_mesoshttp() -> str:
    """The python of a virtualenv with mesoshttp installed (installed if missing)."""
    venv = _cache()
    python = venv / "bin" / "python"
    probe = f"import importlib.metadata as m; assert m.version('mesoshttp') == '{VERSION}'"
    check = [str(python), "-c", probe]
    with machine_lock("mesoshttp"):
        if python.exists() and subprocess.run(check, capture_output=True,
                                              check=False).returncode == 0:
            return str(python)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                        "-q", f"mesoshttp=={VERSION}"], check=True, capture_output=True)
        subprocess.run(check, check=True)
    return str(python)
