"""Which sandbox paths the master may ask an agent for (PURE).

Owns: :func:`clean_path` (a path from a request: absolute, no ``.``/``..``
components, no NUL or backslash, no empty segments, bounded length; else
:class:`PathRefused`), :func:`sandbox_directories` (every executor sandbox an
agent's ``/state`` names, running and completed) and :func:`within` (a clean
path is one of those directories or below one).  The master's proxy asks an
agent only for paths that pass all three; the agent then applies its own
checks (the path must resolve inside its work directory) on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Longest path accepted from a request.
MAX_PATH = 4096


class PathRefused(ValueError):
    """A requested sandbox path is refused: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def clean_path(raw: str) -> str:
    """``raw`` when it is an absolute, normal path; :class:`PathRefused` otherwise."""
    if not raw:
        raise PathRefused(400, "path: expected a non-empty absolute path")
    if len(raw) > MAX_PATH:
        raise PathRefused(400, f"path: expected at most {MAX_PATH} characters")
    if "\x00" in raw or "\\" in raw:
        raise PathRefused(403, "path: NUL bytes and backslashes are not allowed")
    if not raw.startswith("/"):
        raise PathRefused(400, f"path: expected an absolute path, got {raw[:200]!r}")
    trimmed = raw.rstrip("/") or "/"
    parts = trimmed.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise PathRefused(403, f"path: '.', '..' and empty segments are not allowed in "
                               f"{raw[:200]!r}")
    return trimmed


def within(path: str, directories: Iterable[str]) -> bool:
    """True when clean ``path`` is one of ``directories`` or lies below one."""
    for directory in directories:
        root = directory.rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            return True
    return False


def _executors(framework: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("executors", "completed_executors"):
        for executor in framework.get(key) or []:
            if isinstance(executor, dict):
                yield executor


def sandbox_directories(agent_state: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every executor sandbox in an agent's ``/state``: framework, executor, directory and
    state, in the order the agent lists them (completed runs oldest first)."""
    out: list[dict[str, str]] = []
    for key in ("frameworks", "completed_frameworks"):
        for framework in agent_state.get(key) or []:
            if not isinstance(framework, dict):
                continue
            for executor in _executors(framework):
                directory = executor.get("directory")
                if not isinstance(directory, str) or not directory.startswith("/"):
                    continue
                try:
                    clean = clean_path(directory)
                except PathRefused:
                    continue
                out.append({"framework_id": str(executor.get("framework_id") or
                                                framework.get("id") or ""),
                            "executor_id": str(executor.get("id") or ""),
                            "directory": clean, "state": str(executor.get("state") or "")})
    return out


def find_sandbox(directories: Iterable[Mapping[str, str]], framework_id: str,
                 executor_id: str) -> str | None:
    """The directory of one executor (the live one, else the newest completed), or None."""
    found = [d for d in directories
             if d["framework_id"] == framework_id and d["executor_id"] == executor_id]
    if not found:
        return None
    live = [d for d in found if d["state"] != "TERMINATED"]
    return (live[0] if live else found[-1])["directory"]
