"""``mesoslite ctl kill|teardown|weights|top``: the operator's commands that change or watch
a running cluster.

Owns the operator sub-commands of ``ctl``, their parser (:func:`add_operate_parsers`)
and their run (:func:`run_operate_command`); the pure parts (``ROLE=WEIGHT``
parsing, cpu % from two usage samples, the ``top`` table) are plain functions
here without I/O.

The master offers no operator call that kills one task (as in Mesos: tasks are
killed by their framework), so ``ctl kill`` asks the task's framework: a
framework that publishes the Marathon-style ``/v2`` API at its ``webui_url``
kills it with ``DELETE /v2/apps/{app}/tasks/{task}``; for any other framework
ctl says so, naming the framework.  ``ctl teardown`` is the master's
``POST /teardown`` (refused without ``--yes``); ``ctl weights`` reads or
changes ``/weights``; ``ctl top`` reads each agent's ``/monitor/statistics``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from mesoslite.allocator.hierarchical import validate_role
from mesoslite.ctl.apps import _positive_seconds
from mesoslite.ctl.cluster import TERMINAL, _agent_base, _all_tasks, resolve_master
from mesoslite.ctl.common import CtlError, HttpError, format_table, get_json, guarded, request

#: The ``ctl`` sub-commands this module answers.
OPERATE_COMMANDS = frozenset({"kill", "teardown", "weights", "top"})
#: Seconds ``ctl kill`` waits for the master to see the task end (``--timeout``).
KILL_TIMEOUT = 60.0
#: Seconds between two ``ctl top`` samples.
TOP_INTERVAL = 1.0


# ---------------------------------------------------------------- pure parts


def parse_weight_assignments(items: Sequence[str]) -> dict[str, float]:
    """``["eng=2", "ops=0.5"]`` -> ``{"eng": 2.0, "ops": 0.5}``; CtlError naming the argument."""
    weights: dict[str, float] = {}
    for item in items:
        role, sep, text = item.partition("=")
        if not sep:
            raise CtlError(f"weight {item!r}: expected ROLE=WEIGHT")
        try:
            validate_role(role)
        except ValueError as exc:
            raise CtlError(f"weight {item!r}: {exc}") from None
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight <= 0:
            raise CtlError(f"weight {item!r}: expected a finite number > 0, got {text!r}")
        if role in weights:
            raise CtlError(f"weight {item!r}: role {role!r} given twice")
        weights[role] = weight
    return weights


def cpu_percent(before: dict[str, Any] | None, after: dict[str, Any]) -> float | None:
    """CPU use (100 = one full core) between two ``statistics`` samples; None if unknown."""
    if before is None:
        return None
    try:
        spent = (float(after["cpus_user_time_secs"]) + float(after["cpus_system_time_secs"])
                 - float(before["cpus_user_time_secs"]) - float(before["cpus_system_time_secs"]))
        elapsed = float(after["timestamp"]) - float(before["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None
    if elapsed <= 0:
        return None
    return max(0.0, spent / elapsed * 100.0)


def _mb(value: Any) -> str:
    return f"{float(value) / (1024 * 1024):.1f}" if isinstance(value, (int, float)) else ""


def top_rows(tasks: dict[str, dict[str, Any]], before: dict[tuple[str, str], dict[str, Any]],
             after: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows of the ``top`` table, busiest first: ``after`` maps (agent, executor id) to an
    entry of ``/monitor/statistics``; ``tasks`` maps task ids to the master's task JSON."""
    rows: list[tuple[float, tuple[Any, ...]]] = []
    for key, entry in after.items():
        stats = entry.get("statistics", {})
        old = before.get(key)
        pct = cpu_percent(old.get("statistics") if old else None, stats)
        executor_id = str(entry.get("executor_id", ""))
        task = tasks.get(executor_id, {})
        rows.append((pct or 0.0, (
            executor_id, task.get("name", entry.get("executor_name", "")), key[0],
            "" if pct is None else f"{pct:.1f}", stats.get("cpus_limit", ""),
            _mb(stats.get("mem_rss_bytes")), _mb(stats.get("mem_limit_bytes")),
            stats.get("processes", ""),
        )))
    rows.sort(key=lambda r: (-r[0], str(r[1][0])))
    return [r for _pct, r in rows]


TOP_HEADERS = ("TASK", "NAME", "AGENT", "CPU%", "CPUS", "MEM_MB", "LIMIT_MB", "PROCS")


# ---------------------------------------------------------------- kill


def _find_live_task(state: dict[str, Any], task_id: str, framework_id: str | None
                    ) -> dict[str, Any]:
    matches = [t for t in _all_tasks(state) if t.get("id") == task_id
               and (framework_id is None or t.get("framework_id") == framework_id)]
    if not matches:
        which = f" of framework {framework_id}" if framework_id else ""
        raise CtlError(f"task {task_id}{which} is not known to the master")
    live = [t for t in matches if t.get("state") not in TERMINAL]
    if not live:
        raise CtlError(f"task {task_id} already ended ({matches[-1].get('state')})")
    if len({t.get("framework_id") for t in live}) > 1:
        raise CtlError(f"task {task_id} runs in several frameworks; name one with --framework")
    return live[0]


def _framework(state: dict[str, Any], framework_id: str) -> dict[str, Any]:
    for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
        if fw.get("id") == framework_id:
            return dict(fw)
    raise CtlError(f"framework {framework_id} is not known to the master")


def _marathon_app_of(base: str, task_id: str) -> str | None:
    """The app id of ``task_id`` from the framework's ``GET /v2/tasks``; None if the framework
    does not answer the Marathon-style API."""
    try:
        answer = get_json(f"{base}/v2/tasks")
    except CtlError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("tasks"), list):
        return None
    for task in answer["tasks"]:
        if isinstance(task, dict) and task.get("id") == task_id and task.get("appId"):
            return str(task["appId"])
    return ""


def cmd_kill(master: str, task_id: str, framework_id: str | None, out: TextIO, *,
             wait: bool = True, timeout: float = KILL_TIMEOUT) -> None:
    """Kill one task through its framework (see the module docstring)."""
    state = get_json(f"{master}/state")
    task = _find_live_task(state, task_id, framework_id)
    fw = _framework(state, str(task.get("framework_id")))
    label = f"framework {fw.get('id')} ({fw.get('name', '?')})"
    base = str(fw.get("webui_url") or "").rstrip("/")
    app_id = _marathon_app_of(base, task_id) if base else None
    if app_id is None:
        raise CtlError(
            f"task {task_id} belongs to {label}, which offers no kill ctl can use (the "
            f"Marathon-style /v2 API at its webui_url); the master has no operator kill, as "
            f"in Mesos: kill it through that framework, or end all its tasks with "
            f"`ctl teardown {fw.get('id')} --yes`")
    if not app_id:
        raise CtlError(f"task {task_id}: {label} at {base} does not list it in /v2/tasks")
    path = (f"/v2/apps/{urllib.parse.quote(app_id.strip('/'), safe='/')}/tasks/"
            f"{urllib.parse.quote(task_id, safe='')}")
    request(f"{base}{path}", "DELETE")
    out.write(f"kill of task {task_id} (app {app_id}) sent to {label}\n")
    out.flush()
    if wait:
        final = _wait_task_end(master, task_id, timeout)
        out.write(f"task {task_id}: {final}\n")


def _wait_task_end(master: str, task_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        states = [str(t.get("state")) for t in _all_tasks(get_json(f"{master}/state"))
                  if t.get("id") == task_id]
        if states and all(s in TERMINAL for s in states):
            return states[-1]
        if time.monotonic() >= deadline:
            raise CtlError(f"task {task_id}: still {states[-1] if states else '?'} "
                           f"after {timeout:g}s")
        time.sleep(0.2)


# ---------------------------------------------------------------- teardown, weights


def cmd_teardown(master: str, framework_id: str, yes: bool, out: TextIO) -> None:
    """Tear a framework down (its tasks are killed) through the master's ``POST /teardown``."""
    state = get_json(f"{master}/state")
    fw = _framework(state, framework_id)
    if not any(f.get("id") == framework_id for f in state.get("frameworks", [])):
        raise CtlError(f"framework {framework_id} ({fw.get('name', '?')}) is already completed")
    live = sum(1 for t in fw.get("tasks", []) if t.get("state") not in TERMINAL)
    if not yes:
        raise CtlError(f"teardown of framework {framework_id} ({fw.get('name', '?')}) kills its "
                       f"{live} live task(s) and removes it for good; add --yes to go ahead")
    try:
        request(f"{master}/teardown", "POST", {"framework_id": framework_id})
    except HttpError as exc:
        raise CtlError(f"teardown of framework {framework_id}: master answered HTTP "
                       f"{exc.status} {exc.raw.decode('utf-8', 'replace')[:300]}") from None
    out.write(f"framework {framework_id} ({fw.get('name', '?')}) torn down; "
              f"{live} live task(s) killed\n")


def cmd_weights(master: str, assignments: Sequence[str], out: TextIO) -> None:
    """Print the role weights, or change some (``ROLE=WEIGHT``) first."""
    if assignments:
        wanted = parse_weight_assignments(assignments)
        request(f"{master}/weights", "PUT",
                [{"role": role, "weight": weight} for role, weight in wanted.items()])
    answer = get_json(f"{master}/weights")
    if not isinstance(answer, list):
        raise CtlError(f"{master}/weights: expected a JSON array")
    rows = [(w.get("role"), f"{float(w.get('weight', 1.0)):g}") for w in answer
            if isinstance(w, dict)]
    out.write(format_table(("ROLE", "WEIGHT"), rows) + "\n")
    if not rows:
        out.write("(every role weighs 1)\n")


# ---------------------------------------------------------------- top


Sample = dict[tuple[str, str], dict[str, Any]]


def _top_sample(master: str) -> tuple[dict[str, dict[str, Any]], Sample]:
    state = get_json(f"{master}/state")
    tasks = {str(t.get("id")): t for t in _all_tasks(state) if t.get("state") not in TERMINAL}
    agents = sorted({str(t.get("slave_id")) for t in tasks.values()})
    sample: Sample = {}
    for agent_id in agents:
        try:
            entries = get_json(f"{_agent_base(state, agent_id)}/monitor/statistics")
        except CtlError as exc:
            sys.stderr.write(f"mesoslite ctl: agent {agent_id}: {exc}\n")
            continue
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("statistics"), dict):
                sample[(agent_id, str(entry.get("executor_id", "")))] = entry
    return tasks, sample


def cmd_top(master: str, out: TextIO, once: bool, interval: float = TOP_INTERVAL,
            sleep: Callable[[float], None] = time.sleep) -> None:
    """Per-task usage; ``once`` prints one table (cpu % over one interval), else refreshes."""
    _tasks, before = _top_sample(master)
    tty = out.isatty()
    while True:
        sleep(interval)
        tasks, after = _top_sample(master)
        table = format_table(TOP_HEADERS, top_rows(tasks, before, after))
        if tty and not once:
            out.write("\x1b[H\x1b[2J")
        out.write(table + "\n")
        if not tty and not once:
            out.write("\n")
        out.flush()
        if once:
            return
        before = after


# ---------------------------------------------------------------- parser and run


def add_operate_parsers(ctl: Any) -> None:
    """Add the operator sub-commands to the ``ctl`` sub-parsers ``ctl``."""
    k = ctl.add_parser("kill", help="kill a task through its framework")
    k.add_argument("task_id")
    k.add_argument("--framework", default=None, help="the task's framework id")
    k.add_argument("--no-wait", "--no_wait", dest="no_wait", action="store_true",
                   help="return once the framework accepted the kill")
    k.add_argument("--timeout", type=_positive_seconds, default=KILL_TIMEOUT,
                   help="seconds to wait for the task to end (default 60)")
    t = ctl.add_parser("teardown", help="remove a framework and kill its tasks (needs --yes)")
    t.add_argument("framework_id")
    t.add_argument("--yes", action="store_true", help="really tear the framework down")
    w = ctl.add_parser("weights", help="list role weights, or set them with ROLE=WEIGHT ...")
    w.add_argument("assignments", nargs="*", metavar="ROLE=WEIGHT")
    tp = ctl.add_parser("top", help="live per-task cpu and memory usage")
    tp.add_argument("--once", action="store_true", help="print one table and exit")


def run_operate_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run one operator sub-command; 1 with a message on failure, 130 on Ctrl-C."""
    return guarded(lambda: _run_operate_command(args, out), out)


def _run_operate_command(args: argparse.Namespace, out: TextIO) -> None:
    if args.ctl_command == "weights":  # bad arguments are told before any connection
        parse_weight_assignments(args.assignments)
    master = resolve_master(args.master)
    match args.ctl_command:
        case "kill":
            cmd_kill(master, args.task_id, args.framework, out, wait=not args.no_wait,
                     timeout=args.timeout)
        case "teardown":
            cmd_teardown(master, args.framework_id, args.yes, out)
        case "weights":
            cmd_weights(master, args.assignments, out)
        case "top":
            cmd_top(master, out, args.once)
