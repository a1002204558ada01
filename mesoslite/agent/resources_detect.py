"""What an agent offers: detected resources merged with the operator's override.

Owns: the Mesos auto-detection rules (cpus from the CPU count; memory minus a
1 GB reserve, or half of it when memory is small; disk of the work directory
minus a 5 GB reserve, or half of it when the disk is small; ports
``[31000-32000]``) as the pure :func:`default_resources`, the pure
:func:`merge_resources` (a name given in the override replaces the detected
one), and :func:`detect_resources`, which reads the machine (psutil, statvfs).
"""

from __future__ import annotations

import os
import shutil

from mesoslite.resources import Resources

MB = 1024 * 1024
MEM_RESERVE_BYTES = 1024 * MB
DISK_RESERVE_BYTES = 5 * 1024 * MB
DEFAULT_PORTS = ((31000, 32000),)
#: Never report less than this (MB) for a present memory or disk.
MIN_MEM_MB = 32.0
MIN_DISK_MB = 32.0


def _with_reserve(total: int, reserve: int) -> int:
    """Mesos rule: subtract ``reserve`` when total >= 2 × reserve, else keep half."""
    return total - reserve if total >= 2 * reserve else total // 2


def default_resources(cpu_count: int, mem_bytes: int, disk_bytes: int) -> Resources:
    """The resources Mesos would detect on a machine with these totals."""
    cpus = max(int(cpu_count), 1)
    mem_mb = max(_with_reserve(max(mem_bytes, 0), MEM_RESERVE_BYTES) // MB, MIN_MEM_MB)
    disk_mb = max(_with_reserve(max(disk_bytes, 0), DISK_RESERVE_BYTES) // MB, MIN_DISK_MB)
    return Resources.from_dict(
        {"cpus": cpus, "mem": float(mem_mb), "disk": float(disk_mb), "ports": DEFAULT_PORTS}
    )


def merge_resources(detected: Resources, override: Resources) -> Resources:
    """Names present in ``override`` replace the detected ones; others are kept."""
    if not override:
        return detected
    return detected.without(*override.names()) + override


def _existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def detect_resources(work_dir: str, override: Resources | None = None) -> Resources:
    """Detect this machine's resources (disk of ``work_dir``) and apply ``override``.

    Detection is skipped for names the override gives, so an agent told
    ``mem:1024`` never reads the machine's memory.
    """
    override = override or Resources()
    names = override.names()
    cpus = os.cpu_count() or 1
    mem = 0
    disk = 0
    if "mem" not in names:
        import psutil  # local import: only the agent process needs it

        mem = int(psutil.virtual_memory().total)
    if "disk" not in names:
        disk = int(shutil.disk_usage(_existing_parent(work_dir)).total)
    return merge_resources(default_resources(cpus, mem, disk), override)
