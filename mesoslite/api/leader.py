"""Where the leading master is, for the v1 handlers' 307 and 503 answers.

Owns: :func:`leader_location` (``//host:port<path>`` of the leader, None while no leader
is known) and :func:`refuse_not_leader` (answers 307 or 503 on a v1 handler).
"""

from __future__ import annotations

from mesoslite.api.ports import MasterPort
from mesoslite.api.streams import JsonApiHandler, dumps


def leader_location(master: MasterPort, path: str) -> str | None:
    """``//host:port`` + ``path`` on the leading master (None: no leader known)."""
    leader = master.leadership.leader()
    if leader is None:
        return None
    return f"//{leader.hostname or leader.ip}:{leader.port}{path}"


def refuse_not_leader(handler: JsonApiHandler, master: MasterPort, path: str) -> None:
    """Answer 307 to the leader (Mesos's ``Location: //host:port/...``) or 503."""
    location = leader_location(master, path)
    if location is None:
        handler.set_status(503)
        handler.set_header("Retry-After", "1")
        handler.set_header("Content-Type", "application/json")
        handler.finish(dumps({"message": "no leading master is known; retry shortly",
                              "field": ""}))
        return
    handler.set_status(307)
    handler.set_header("Location", location)
    handler.finish()
