"""``mesoslite ctl drain|deactivate|reactivate AGENT``: taking a machine out and back.

Owns the three sub-commands, their parser (:func:`add_drain_parsers`) and their run
(:func:`run_drain_command`).  Each is one call of the master's v1 operator API
(``DRAIN_AGENT``, ``DEACTIVATE_AGENT``, ``REACTIVATE_AGENT``, as Mesos 1.9).  ``AGENT``
is an agent id or a host name known to the master.  ``ctl drain --wait`` then follows
the agent in ``/state`` and shows the tasks still on it until it is ``DRAINED`` (or,
with ``--mark-gone``, removed).  Pure parts: :func:`parse_grace` and :func:`drain_progress`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any, TextIO

from mesoslite.ctl.cluster import TERMINAL, resolve_master
from mesoslite.ctl.common import CtlError, HttpError, StatusLine, get_json, guarded, request

#: The ``ctl`` sub-commands this module answers.
DRAIN_COMMANDS = frozenset({"drain", "deactivate", "reactivate"})
#: Seconds ``ctl drain --wait`` waits for DRAINED (``--timeout``).
DRAIN_TIMEOUT = 600.0
#: Seconds between two looks at ``/state`` while waiting.
POLL_INTERVAL = 0.5

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0,
          "mins": 60.0, "h": 3600.0, "hrs": 3600.0}
_GRACE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def parse_grace(text: str) -> float:
    """Seconds from ``30``, ``30s``, ``500ms``, ``2m``, ``1h`` (or Mesos's ``30secs``)."""
    match = _GRACE.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30s, 500ms or 2m, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def find_agent(state: dict[str, Any], name: str) -> dict[str, Any]:
    """The agent of ``/state`` whose id, or else host name, is ``name``."""
    agents = [a for a in state.get("slaves", []) if isinstance(a, dict)]
    for agent in agents:
        if agent.get("id") == name:
            return agent
    by_host = [a for a in agents if a.get("hostname") == name]
    if len(by_host) == 1:
        return by_host[0]
    if by_host:
        ids = ", ".join(str(a.get("id")) for a in by_host)
        raise CtlError(f"host {name} runs several agents ({ids}): name one by id")
    raise CtlError(f"agent {name} is not known to the master (give an agent id or host name)")


def drain_progress(state: dict[str, Any], agent_id: str) -> tuple[str, int]:
    """``(drain state, live tasks)`` of an agent in ``/state``; ``("GONE", 0)`` once removed."""
    agent = next((a for a in state.get("slaves", []) if a.get("id") == agent_id), None)
    if agent is None:
        return "GONE", 0
    drain = agent.get("drain_info") or {}
    live = 0
    for fw in state.get("frameworks", []):
        live += sum(1 for t in fw.get("tasks", [])
                    if t.get("slave_id") == agent_id and t.get("state") not in TERMINAL)
    return str(drain.get("state") or ("DEACTIVATED" if agent.get("deactivated") else "ACTIVE")), \
        live


def _call(master: str, kind: str, body: dict[str, Any]) -> None:
    try:
        request(f"{master}/api/v1", "POST", {"type": kind, kind.lower(): body})
    except HttpError as exc:
        raise CtlError(f"{kind}: master answered HTTP {exc.status} "
                       f"{exc.raw.decode('utf-8', 'replace')[:300]}") from None


def cmd_agent(master: str, kind: str, name: str, out: TextIO, *,
              max_grace_period: float | None = None, mark_gone: bool = False) -> str:
    """Send DRAIN_AGENT, DEACTIVATE_AGENT or REACTIVATE_AGENT; return the agent id."""
    agent = find_agent(get_json(f"{master}/state"), name)
    agent_id = str(agent.get("id"))
    body: dict[str, Any] = {"agent_id": {"value": agent_id}}
    if kind == "DRAIN_AGENT":
        body["mark_gone"] = mark_gone
        if max_grace_period is not None:
            body["max_grace_period"] = {"nanoseconds": round(max_grace_period * 1e9)}
    _call(master, kind, body)
    verb = {"DRAIN_AGENT": "draining", "DEACTIVATE_AGENT": "deactivated",
            "REACTIVATE_AGENT": "reactivated"}[kind]
    out.write(f"agent {agent_id} ({agent.get('hostname', '?')}): {verb}\n")
    out.flush()
    return agent_id


def wait_drained(master: str, agent_id: str, out: TextIO, timeout: float = DRAIN_TIMEOUT,
                 sleep: Any = time.sleep) -> str:
    """Show the drain's progress until DRAINED (or GONE); CtlError after ``timeout``."""
    status = StatusLine(out, out.isatty())
    deadline = time.monotonic() + timeout
    while True:
        state, live = drain_progress(get_json(f"{master}/state"), agent_id)
        if state in ("DRAINED", "GONE"):
            status.note(f"agent {agent_id}: {state}" + (
                " (marked gone: it can never re-register)" if state == "GONE" else ""))
            return state
        if state != "DRAINING":
            status.close()
            raise CtlError(f"agent {agent_id}: no longer draining ({state})")
        text = f"agent {agent_id}: DRAINING, {live} task(s) left"
        status.show(text, text)
        if time.monotonic() >= deadline:
            status.close()
            raise CtlError(f"agent {agent_id}: still DRAINING with {live} task(s) after "
                           f"{timeout:g}s")
        sleep(POLL_INTERVAL)


def add_drain_parsers(ctl: Any) -> None:
    """Add drain, deactivate and reactivate to the ``ctl`` sub-parsers ``ctl``."""
    d = ctl.add_parser("drain", help="kill every task on an agent and offer it no more")
    d.add_argument("agent", metavar="AGENT", help="agent id or host name")
    d.add_argument("--max-grace-period", "--max_grace_period", dest="max_grace_period",
                   type=parse_grace, default=None,
                   help="upper bound of each task's kill grace period (e.g. 30s)")
    d.add_argument("--mark-gone", "--mark_gone", dest="mark_gone", action="store_true",
                   help="once drained, remove the agent for good")
    d.add_argument("--wait", action="store_true", help="show progress until DRAINED")
    d.add_argument("--timeout", type=parse_grace, default=DRAIN_TIMEOUT,
                   help="how long --wait waits (default 600s)")
    for name, text in (("deactivate", "offer an agent's resources no more (tasks keep running)"),
                       ("reactivate", "put a deactivated or drained agent back in service")):
        p = ctl.add_parser(name, help=text)
        p.add_argument("agent", metavar="AGENT", help="agent id or host name")


def run_drain_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run drain, deactivate or reactivate; 1 with a message on failure, 130 on Ctrl-C."""
    return guarded(lambda: _run_drain_command(args, out), out)


def _run_drain_command(args: argparse.Namespace, out: TextIO) -> None:
    master = resolve_master(args.master)
    kind = f"{args.ctl_command.upper()}_AGENT"
    if kind == "DRAIN_AGENT":
        agent_id = cmd_agent(master, kind, args.agent, out,
                             max_grace_period=args.max_grace_period,
                             mark_gone=args.mark_gone)
        if args.wait:
            wait_drained(master, agent_id, out, args.timeout)
    else:
        cmd_agent(master, kind, args.agent, out)
