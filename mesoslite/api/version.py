"""What ``/version`` and GET_VERSION answer on masters and agents.

Owns: :data:`MESOS_VERSION` (the Mesos release whose APIs we follow; Mesos clients parse
``version`` as integers and gate features on it) and :func:`version_info` (that version,
our own as ``mesoslite_version``, and the build fields Mesos shows).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import mesoslite

#: The Mesos release whose v1 APIs and endpoints this follows.
MESOS_VERSION = "1.11.0"
_BUILD_TIME = os.path.getmtime(mesoslite.__file__)


def version_info() -> dict[str, Any]:
    """``{"version": "1.11.0", "mesoslite_version": ..., "build_date", ...}``."""
    built = datetime.datetime.fromtimestamp(_BUILD_TIME, datetime.UTC)
    return {"version": MESOS_VERSION, "mesoslite_version": mesoslite.__version__,
            "build_date": built.strftime("%Y-%m-%d %H:%M:%S"), "build_time": int(_BUILD_TIME),
            "build_user": "", "git_sha": "", "git_tag": ""}
