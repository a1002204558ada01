"""``mesoslite ctl state|agents|frameworks|tasks|logs``: a cluster's state and task logs.

Owns the cluster sub-commands of ``ctl``, their parser
(:func:`add_cluster_parsers`) and their run (:func:`run_cluster_command`).
They read the master's and agents' HTTP endpoints (:mod:`mesoslite.ctl.common`);
the master address comes from ``--master`` or ``MESOSLITE_MASTER``
(``http://127.0.0.1:5050`` by default; ``host:port`` is accepted).  A
``zk://host:2181,.../path`` address is resolved to the leading master's HTTP
endpoint through ZooKeeper (:func:`resolve_master`); a non-leading master's 307
redirect is followed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, TextIO

from mesoslite.ctl.common import (
    CtlError,
    format_number,
    format_table,
    get_json,
    guarded,
    http_url,
)
from mesoslite.ctl.follow import StreamFollower

DEFAULT_MASTER = "http://127.0.0.1:5050"
#: The ``ctl`` sub-commands this module answers.
CLUSTER_COMMANDS = frozenset({"state", "agents", "frameworks", "tasks", "logs"})
#: Task states after which a task changes no more.
TERMINAL = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
}
#: How long ``ctl`` waits for ZooKeeper to name a leading master (seconds).
LEADER_TIMEOUT = 10.0


def resolve_master(address: str, timeout: float = LEADER_TIMEOUT) -> str:
    """The HTTP base URL of the master at ``address``; ``zk://...`` names the current leader."""
    from mesoslite.coordination import is_zk_url

    if not is_zk_url(address.strip()):
        return http_url(address)
    try:
        leader = asyncio.run(_find_leader(address.strip(), timeout))
    except (ValueError, RuntimeError, OSError) as exc:  # CoordinationError is a RuntimeError
        raise CtlError(f"{address}: cannot ask ZooKeeper who leads: {exc}") from None
    if leader is None:
        raise CtlError(f"{address}: no leading master within {timeout:g}s")
    if leader.http_endpoint:
        return http_url(leader.http_endpoint)
    return http_url(f"{leader.hostname or leader.ip}:{leader.port}")


async def _find_leader(zk: str, timeout: float) -> Any:
    from mesoslite.coordination import create_detector

    detector = create_detector(zk, connect_timeout=timeout)
    try:
        await detector.start()
        leader = detector.current()
        if leader is None:
            try:
                leader = await asyncio.wait_for(detector.wait_for_change(None), timeout)
            except TimeoutError:
                return None
        return leader
    finally:
        await detector.stop()


def _res(resources: dict[str, Any] | None, name: str) -> str:
    return format_number((resources or {}).get(name, 0))


def _all_tasks(state: dict[str, Any]) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
        for key in ("tasks", "unreachable_tasks", "completed_tasks"):
            tasks.extend(fw.get(key, []))
    return tasks


def cmd_state(master: str, out: TextIO) -> None:
    """Print a summary of the cluster."""
    state = get_json(f"{master}/state")
    agents = state.get("slaves", [])
    tasks = _all_tasks(state)
    by_state: dict[str, int] = {}
    for task in tasks:
        by_state[task.get("state", "?")] = by_state.get(task.get("state", "?"), 0) + 1
    total = {"cpus": 0.0, "mem": 0.0, "disk": 0.0}
    used = dict.fromkeys(total, 0.0)
    for agent in agents:
        for name in total:
            total[name] += float(agent.get("resources", {}).get(name, 0))
            used[name] += float(agent.get("used_resources", {}).get(name, 0))
    rows = [
        ("master", f"{state.get('hostname', '?')} (id {state.get('id', '?')})"),
        ("version", state.get("version", "?")),
        ("leader", state.get("leader", "?")),
        ("agents", (f"{sum(1 for a in agents if a.get('active', True))} active, "
                    f"{len(agents)} total")),
        ("frameworks", (f"{len(state.get('frameworks', []))} active, "
                        f"{len(state.get('completed_frameworks', []))} completed")),
        ("cpus", f"{used['cpus']:g} used of {total['cpus']:g}"),
        ("mem", f"{used['mem']:g} MB used of {total['mem']:g} MB"),
        ("disk", f"{used['disk']:g} MB used of {total['disk']:g} MB"),
        ("tasks", ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) or "none"),
    ]
    out.write(format_table(("FIELD", "VALUE"), rows) + "\n")


def cmd_agents(master: str, out: TextIO) -> None:
    """Print one line per agent."""
    state = get_json(f"{master}/state")
    rows = []
    for a in state.get("slaves", []):
        res, used = a.get("resources", {}), a.get("used_resources", {})
        rows.append((
            a.get("id"), a.get("hostname"), "yes" if a.get("active", True) else "no",
            str((a.get("drain_info") or {}).get("state") or
                ("deactivated" if a.get("deactivated") else "-")).lower(),
            f"{_res(used, 'cpus')}/{_res(res, 'cpus')}", f"{_res(used, 'mem')}/{_res(res, 'mem')}",
            f"{_res(used, 'disk')}/{_res(res, 'disk')}", res.get("ports", ""),
            ";".join(f"{k}:{v}" for k, v in sorted(a.get("attributes", {}).items())),
        ))
    headers = ("ID", "HOSTNAME", "ACTIVE", "MAINTENANCE", "CPUS", "MEM", "DISK", "PORTS",
               "ATTRIBUTES")
    out.write(format_table(headers, rows) + "\n")


def cmd_frameworks(master: str, out: TextIO) -> None:
    """Print one line per framework, active first."""
    state = get_json(f"{master}/state")
    rows = []
    for fw, status in [(f, "active" if f.get("active", True) else "inactive")
                       for f in state.get("frameworks", [])] + [
                       (f, "completed") for f in state.get("completed_frameworks", [])]:
        used = fw.get("used_resources", {})
        rows.append((
            fw.get("id"), fw.get("name"), fw.get("user"), ",".join(fw.get("roles", []) or ["*"]),
            status, len(fw.get("tasks", [])), _res(used, "cpus"), _res(used, "mem"),
        ))
    headers = ("ID", "NAME", "USER", "ROLES", "STATUS", "TASKS", "CPUS", "MEM")
    out.write(format_table(headers, rows) + "\n")


def cmd_tasks(master: str, out: TextIO, show_all: bool) -> None:
    """Print one line per task (live tasks only unless ``show_all``)."""
    state = get_json(f"{master}/state")
    rows = []
    for t in _all_tasks(state):
        if not show_all and t.get("state") in TERMINAL:
            continue
        res = t.get("resources", {})
        rows.append((t.get("id"), t.get("name"), t.get("state"), t.get("framework_id"),
                     t.get("slave_id"), _res(res, "cpus"), _res(res, "mem")))
    headers = ("ID", "NAME", "STATE", "FRAMEWORK", "AGENT", "CPUS", "MEM")
    out.write(format_table(headers, rows) + "\n")


def _agent_base(state: dict[str, Any], agent_id: str) -> str:
    for agent in state.get("slaves", []):
        if agent.get("id") == agent_id:
            pid = agent.get("pid", "")
            hostport = pid.split("@", 1)[1] if "@" in pid \
                else f"{agent.get('hostname')}:{agent.get('port', 5051)}"
            return http_url(hostport)
    raise CtlError(f"agent {agent_id} is not known to the master")


def _find_sandbox(agent_state: dict[str, Any], framework_id: str, task_id: str) -> str:
    for fw in agent_state.get("frameworks", []) + agent_state.get("completed_frameworks", []):
        if fw.get("id") != framework_id:
            continue
        for ex in fw.get("executors", []) + fw.get("completed_executors", []):
            tasks = ex.get("tasks", []) + ex.get("queued_tasks", []) + ex.get("completed_tasks", [])
            if ex.get("id") == task_id or any(t.get("id") == task_id for t in tasks):
                return str(ex["directory"])
    raise CtlError(f"task {task_id}: no sandbox found on its agent")


def locate_task(master: str, task_id: str) -> tuple[str, str, dict[str, Any]]:
    """Return (agent base URL, sandbox directory, task JSON) for a task id."""
    state = get_json(f"{master}/state")
    matches = [t for t in _all_tasks(state) if t.get("id") == task_id]
    if not matches:
        raise CtlError(f"task {task_id} is not known to the master")
    task = matches[-1]
    base = _agent_base(state, task["slave_id"])
    directory = _find_sandbox(get_json(f"{base}/state"), task["framework_id"], task_id)
    return base, directory, task


def _task_state(master: str, task_id: str) -> str:
    for t in _all_tasks(get_json(f"{master}/state")):
        if t.get("id") == task_id:
            return str(t.get("state"))
    return "TASK_UNKNOWN"


def cmd_logs(master: str, task_id: str, stderr: bool, follow: bool, out: TextIO,
             poll: float = 0.5, chunk: int = 64 * 1024) -> None:
    """Print a task's stdout (or stderr); with ``follow``, keep printing until it ends.

    Rotated logs (``--container_logger=rotating``) are followed across rotations.
    """
    base, directory, _task = locate_task(master, task_id)
    stream = StreamFollower(get_json, base, directory, "stderr" if stderr else "stdout",
                            chunk=chunk)
    while True:
        text = stream.poll()
        if text:
            out.write(text)
            out.flush()
            continue
        if not follow or _task_state(master, task_id) in TERMINAL:
            # One last read after the task ended, so nothing written at the end is missed.
            tail = stream.poll()
            if tail:
                out.write(tail)
                out.flush()
                continue
            return
        time.sleep(poll)


def add_cluster_parsers(ctl_parser: argparse.ArgumentParser, ctl: Any) -> None:
    """Add ``--master`` to ``ctl`` and the cluster sub-commands to its sub-parsers ``ctl``."""
    ctl_parser.add_argument(
        "--master", default=os.environ.get("MESOSLITE_MASTER", DEFAULT_MASTER),
        help="master HTTP address, or zk://host:2181,.../path to find the leader "
             "(default http://127.0.0.1:5050; env MESOSLITE_MASTER)")
    ctl.add_parser("state", help="cluster summary")
    ctl.add_parser("agents", help="agents and their resources")
    ctl.add_parser("frameworks", help="frameworks")
    t = ctl.add_parser("tasks", help="tasks (live ones; --all for finished too)")
    t.add_argument("--all", action="store_true", help="include finished tasks")
    lg = ctl.add_parser("logs", help="print a task's sandbox output")
    lg.add_argument("task_id")
    lg.add_argument("--stderr", action="store_true", help="print stderr instead of stdout")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the task ends")


def run_cluster_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run one cluster sub-command; 1 with a message on failure, 130 on Ctrl-C."""
    return guarded(lambda: _run_cluster_command(args, out), out)


def _run_cluster_command(args: argparse.Namespace, out: TextIO) -> None:
    master = resolve_master(args.master)
    match args.ctl_command:
        case "state":
            cmd_state(master, out)
        case "agents":
            cmd_agents(master, out)
        case "frameworks":
            cmd_frameworks(master, out)
        case "tasks":
            cmd_tasks(master, out, args.all)
        case "logs":
            cmd_logs(master, args.task_id, args.stderr, args.follow, out)
