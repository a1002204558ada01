#!/usr/bin/env python3
"""marathon_scale: the Marathon-style framework at scale, against baselines in the same run.

Owns: the command line and the JSON report of two measurements.

(a) ``scale``: one app (``sleep 3600``, cpus 0.01, mem 8, a COMMAND health
    check ``true``) scaled from 0 to ``--instances`` through a ``mesoslite
    marathon`` process, until ``GET /v2/apps/{id}`` shows that many
    ``tasksRunning`` and ``tasksHealthy``; and the same tasks (same command,
    resources and health check) through a minimal SDK framework until every
    one is TASK_RUNNING with ``healthy`` true.  Each run gets a fresh cluster
    (a master and ``--agents`` agents as real processes); ``--repeat N``
    alternates the two sides N times each.  ``overhead_ratio`` is the median
    of marathon seconds / sdk seconds over the pairs (goal <= 1.2).
(b) ``api``: the latency of ``GET /v2/apps?embed=apps.tasks`` from a real
    service holding ``--api-apps`` apps and ``--api-tasks`` tasks (see
    ``marathon_scale_api``), with ``GET /ping`` and ``json.dumps`` of the same
    document as baselines (goal: well under 1 s).

It prints ONE JSON object on stdout (progress goes to stderr)::

    python benchmarks/marathon_scale.py [--part both|scale|api] [--instances 500]
        [--agents 2] [--repeat 1] [--api-apps 1000] [--api-tasks 10000]
        [--api-requests 20] [--profile] ...

Exit status: 0 when every run completed, 1 otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source checkout
    sys.path.insert(0, str(ROOT))
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_support import (
    check_at_least,
    check_positive,
    print_report,
    run_facts,
    say,
    set_progress_tag,
    sigterm_as_interrupt,
)
from marathon_scale_api import measure
from marathon_scale_run import marathon_run, sdk_run

GOAL_OVERHEAD = 1.2
GOAL_API_MS = 1000.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line (exit status 2 on a usage error)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("both", "scale", "api"), default="both",
                   help="which measurement(s) to run (default both)")
    p.add_argument("--instances", type=int, default=500, help="(a) instances (default 500)")
    p.add_argument("--agents", type=int, default=2, help="(a) agents (default 2)")
    p.add_argument("--agent-resources", default="cpus:10;mem:20000;ports:[31000-32000]",
                   help="(a) each agent's --resources")
    p.add_argument("--repeat", type=int, default=1,
                   help="(a) runs of each side, alternating; medians reported (default 1)")
    p.add_argument("--command", default="sleep 3600", help="(a) the tasks' shell command")
    p.add_argument("--cpus", type=float, default=0.01, help="(a) cpus per task (default 0.01)")
    p.add_argument("--mem", type=float, default=8.0, help="(a) mem per task (default 8)")
    p.add_argument("--health-delay", type=float, default=0.5,
                   help="(a) health check delaySeconds (default 0.5)")
    p.add_argument("--health-interval", type=float, default=10.0,
                   help="(a) health check intervalSeconds (default 10)")
    p.add_argument("--health-timeout", type=float, default=10.0,
                   help="(a) health check timeoutSeconds (default 10)")
    p.add_argument("--health-grace", type=float, default=60.0,
                   help="(a) health check gracePeriodSeconds (default 60)")
    p.add_argument("--max-instances-per-offer", type=int, default=0,
                   help="(a) pass --max_instances_per_offer to mesoslite marathon "
                        "(default: not passed, the framework's default)")
    p.add_argument("--poll", type=float, default=0.1,
                   help="(a) seconds between GET /v2/apps/{id} polls (default 0.1)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="(a) seconds allowed per run (default 600)")
    p.add_argument("--log-level", default="INFO",
                   help="(a) log level of master, agents and marathon (default INFO)")
    p.add_argument("--work-dir", default="", help="(a) where the clusters' directories go")
    p.add_argument("--marathon-state-parent", default="",
                   help="(a) create mesoslite marathon's --state_dir in this directory "
                        "(e.g. /dev/shm: no fsync cost); default: in the cluster's directory")
    p.add_argument("--keep", action="store_true", help="(a) keep the clusters' directories")
    p.add_argument("--api-apps", type=int, default=1000, help="(b) apps (default 1000)")
    p.add_argument("--api-tasks", type=int, default=10000, help="(b) tasks (default 10000)")
    p.add_argument("--api-requests", type=int, default=20,
                   help="(b) timed requests per path (default 20)")
    p.add_argument("--profile", action="store_true",
                   help="(b) also profile the API process (cProfile) over extra requests")
    args = p.parse_args(argv)
    check_at_least(p, args, ("instances", "agents", "repeat", "api_apps", "api_tasks",
                             "api_requests"))
    check_positive(p, args, ("cpus", "mem", "health_interval", "health_timeout", "poll",
                             "timeout"))
    return args


def _median(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.median(clean), 3) if clean else None


def part_scale(args: argparse.Namespace) -> dict[str, Any]:
    """(a): alternate marathon and SDK runs ``--repeat`` times; medians and the ratio."""
    runs: list[dict[str, Any]] = []
    for i in range(args.repeat):
        order = (marathon_run, sdk_run) if i % 2 == 0 else (sdk_run, marathon_run)
        pair: dict[str, Any] = {}
        for fn in order:
            side = "marathon" if fn is marathon_run else "sdk"
            say(f"run {i + 1}/{args.repeat}: {side}, {args.instances} instances")
            result = fn(args)
            say(f"run {i + 1}/{args.repeat}: {side} {result.get('seconds')}s "
                f"{result['problems'] or ''}")
            pair[side] = result
        m, s = pair["marathon"]["seconds"], pair["sdk"]["seconds"]
        pair["order"] = [("marathon" if fn is marathon_run else "sdk") for fn in order]
        pair["ratio"] = round(m / s, 3) if s and not math.isnan(m) and not math.isnan(s) \
            else None
        runs.append(pair)
    ratio = _median([r["ratio"] for r in runs])
    complete = all(not r["marathon"]["problems"] and not r["sdk"]["problems"] for r in runs)
    return {
        "instances": args.instances, "agents": args.agents,
        "agent_resources": args.agent_resources, "command": args.command,
        "cpus": args.cpus, "mem": args.mem, "repeat": args.repeat,
        "health_check": {"delaySeconds": args.health_delay,
                         "intervalSeconds": args.health_interval,
                         "timeoutSeconds": args.health_timeout,
                         "gracePeriodSeconds": args.health_grace},
        "max_instances_per_offer": args.max_instances_per_offer or "framework default",
        "marathon_state_parent": args.marathon_state_parent or "cluster directory",
        "marathon_seconds": _median([r["marathon"]["seconds"] for r in runs]),
        "sdk_seconds": _median([r["sdk"]["seconds"] for r in runs]),
        "overhead_ratio": ratio, "goal_ratio": GOAL_OVERHEAD,
        "met": bool(complete and ratio is not None and ratio <= GOAL_OVERHEAD),
        "complete": complete,
        "runs": runs,
    }


def part_api(args: argparse.Namespace) -> dict[str, Any]:
    """(b): the list latency with a large state, and its baselines."""
    say(f"api: {args.api_apps} apps, {args.api_tasks} tasks, {args.api_requests} requests "
        "per path")
    out = measure(args.api_apps, args.api_tasks, args.api_requests, args.profile)
    out["goal_ms"] = GOAL_API_MS
    out["met"] = out["apps_embed_tasks"]["median_ms"] < GOAL_API_MS
    say(f"api: GET {out['apps_embed_tasks']['path']} median "
        f"{out['apps_embed_tasks']['median_ms']} ms, p95 {out['apps_embed_tasks']['p95_ms']} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print the JSON result; return the exit status."""
    args = parse_args(argv)
    set_progress_tag("marathon_scale")
    started = time.monotonic()
    restore_sigterm = sigterm_as_interrupt()
    out: dict[str, Any] = {"benchmark": "marathon_scale"}
    ok = True
    try:
        if args.part in ("both", "scale"):
            out["scale"] = part_scale(args)
            ok = ok and out["scale"]["complete"]
        if args.part in ("both", "api"):
            out["api"] = part_api(args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        restore_sigterm()
    out.update(run_facts(started))
    print_report(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
