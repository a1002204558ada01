"""What ACL filtering costs: the v1 operator GET_STATE with and without a Viewer.

Builds, in this process, a master state (:class:`mesoslite.testing.Harness`, fake clock)
with ``--frameworks`` frameworks of ``--tasks-per-framework`` running tasks each, half
run by user ``alice`` and half by ``bob``, and ACLs of ``--rules`` rules per view action
(the matching one last, so every decision walks all of them).  Then, ``--rounds`` times
in turns, it renders GET_STATE unfiltered (the baseline), filtered for a principal who
may see everything, and filtered for one who sees alice's half; the medians are reported
with their ratio to the baseline of the same round (median over the rounds), and the
rate of single ``authorized`` decisions.  Prints one JSON object.

    python benchmarks/acls.py [--frameworks 50] [--tasks-per-framework 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesoslite.api import operator_view
from mesoslite.authz import Viewer, parse_acls
from mesoslite.protocol import Filters, Offers
from mesoslite.testing.harness import Harness


def _state(frameworks: int, tasks: int) -> Harness:
    h = Harness()
    for i in range((frameworks * tasks) // 40 + 1):
        h.add_agent(f"a{i}".encode(), resources="cpus:40;mem:40960;disk:1000")
    ids = {h.subscribe(f"f{f}".encode(), user="alice" if f % 2 else "bob"): f"f{f}".encode()
           for f in range(frameworks)}
    launched = dict.fromkeys(ids, 0)
    while any(count < tasks for count in launched.values()):
        sends = h.allocate()
        offered = [(s.to[1], offer) for s in sends if isinstance(s.message, Offers)
                   for offer in s.message.offers]
        if not offered:
            raise RuntimeError("ran out of offers")
        for framework_id, offer in offered:
            room = min(int(offer.resources.scalar("cpus")), tasks - launched[framework_id])
            batch = [h.task(f"{framework_id}-t{launched[framework_id] + k}", offer.agent_id,
                            "cpus:1;mem:32") for k in range(room)]
            h.accept(ids[framework_id], framework_id, [offer.id], batch,
                     filters=Filters(refuse_seconds=0))
            launched[framework_id] += room
    return h


def _acls(rules: int) -> Any:
    view = [{"principals": {"values": [f"someone-{i}"]}, "users": {"type": "ANY"}}
            for i in range(rules - 2)]
    view += [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
             {"principals": {"values": ["dev"]}, "users": {"values": ["alice"]}}]
    return parse_acls(json.dumps({"permissive": False, "view_frameworks": view,
                                  "view_tasks": view, "view_executors": view}))


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", type=int, default=50)
    parser.add_argument("--tasks-per-framework", type=int, default=100)
    parser.add_argument("--rules", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    h = _state(args.frameworks, args.tasks_per_framework)
    acls = _acls(args.rules)
    ops, dev = Viewer(acls, "ops"), Viewer(acls, "dev")
    state = h.state
    seen = len(operator_view.get_state(state, dev)["get_tasks"]["tasks"])
    rounds: dict[str, list[float]] = {"plain": [], "ops": [], "dev": []}
    ratios: dict[str, list[float]] = {"ops": [], "dev": []}
    for _ in range(args.rounds):
        plain = _timed(lambda: operator_view.get_state(state))
        rounds["plain"].append(plain)
        for name, viewer in (("ops", ops), ("dev", dev)):
            took = _timed(lambda v=viewer: operator_view.get_state(state, v))
            rounds[name].append(took)
            ratios[name].append(took / plain)
    decisions = 100_000
    took = _timed(lambda: [acls.authorized("view_tasks", "dev", "alice")
                           for _ in range(decisions)])
    print(json.dumps({
        "tasks": args.frameworks * args.tasks_per_framework,
        "rules_per_action": args.rules,
        "tasks_visible_to_dev": seen,
        "get_state_plain_ms": round(statistics.median(rounds["plain"]) * 1000, 2),
        "get_state_viewer_all_ms": round(statistics.median(rounds["ops"]) * 1000, 2),
        "get_state_viewer_half_ms": round(statistics.median(rounds["dev"]) * 1000, 2),
        "ratio_viewer_all": round(statistics.median(ratios["ops"]), 3),
        "ratio_viewer_half": round(statistics.median(ratios["dev"]), 3),
        "authorized_per_s": round(decisions / took),
    }, indent=2))


if __name__ == "__main__":
    main()
