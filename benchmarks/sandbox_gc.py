#!/usr/bin/env python3
"""sandbox_gc: does removing completed sandboxes stall the agent's event loop?

Owns: the benchmark of :class:`~mesoslite.agent.sandbox_gc.SandboxCollector`.  It
builds ``--sandboxes`` completed run directories of ``--files`` files each under a
temporary work directory (the agent's layout), then measures the event loop's lag (a
ticker that wants to run every millisecond; lag = how late it ran) in three phases of the
same work:

* ``baseline``: the loop alone, for as long as the GC phase took;
* ``gc``: the collector removes every sandbox (``--gc_delay`` elapsed on its clock), its
  walk and removal on its own thread, as the agent runs it;
* ``on_loop``: the same tree rebuilt and removed with ``shutil.rmtree`` on the loop
  itself, what an agent that deleted inline would suffer.

It prints ONE JSON object on stdout::

    python benchmarks/sandbox_gc.py [--sandboxes 20] [--files 1000]

``ratio`` is the worst lag during GC over the worst lag of deleting on the loop (lower is
better; the goal is below 0.1: GC costs the loop a small fraction of what inline removal
would), ``gc_max_lag_ms`` and ``gc_p99_lag_ms`` the lag itself, next to
``baseline_max_lag_ms`` measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesoslite.agent.sandbox_gc import LiveSet, SandboxCollector
from mesoslite.testing import FakeClock

NONE_LIVE = LiveSet(frozenset(), frozenset(), frozenset())


def build_tree(work_dir: str, sandboxes: int, files: int) -> None:
    """``sandboxes`` run directories of ``files`` small files each."""
    for s in range(sandboxes):
        run = os.path.join(work_dir, "agents", "A", "frameworks", "F", "executors", f"e{s}",
                           "runs", f"c{s}")
        os.makedirs(run)
        for f in range(files):
            with open(os.path.join(run, f"f{f}"), "wb") as out:
                out.write(b"x" * 512)


class LagMeter:
    """A ticker that wants to run every millisecond; records how late each tick ran."""

    def __init__(self) -> None:
        """No samples yet."""
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            wanted = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, time.perf_counter() - wanted))

    def __enter__(self) -> LagMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self, prefix: str) -> dict[str, float]:
        """Max and p99 lag in milliseconds."""
        lags = sorted(self.lags) or [0.0]
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        return {f"{prefix}_max_lag_ms": round(max(lags) * 1000, 2),
                f"{prefix}_p99_lag_ms": round(p99 * 1000, 2),
                f"{prefix}_median_lag_ms": round(statistics.median(lags) * 1000, 3)}


async def run(sandboxes: int, files: int) -> dict[str, object]:
    """The three phases; the report."""
    with tempfile.TemporaryDirectory(prefix="sandbox-gc-bench-") as work_dir:
        build_tree(work_dir, sandboxes, files)
        clock = FakeClock(start=time.time() + 2 * 86400)  # everything completed long ago
        removed: list[int] = []
        gc = SandboxCollector(work_dir, clock, gc_delay=86400.0, headroom=0.1, interval=60.0,
                              live=lambda: NONE_LIVE,
                              on_collected=lambda done: removed.append(len(done)))
        with LagMeter() as gc_lag:
            started = time.perf_counter()
            await gc.check()  # the first walk tracks every run; all are due at once
            gc_seconds = time.perf_counter() - started
        await gc.close()
        with LagMeter() as baseline:
            await asyncio.sleep(max(gc_seconds, 0.2))
        build_tree(work_dir, sandboxes, files)
        with LagMeter() as inline:
            await asyncio.sleep(0.01)
            started = time.perf_counter()
            shutil.rmtree(os.path.join(work_dir, "agents"))
            inline_seconds = time.perf_counter() - started
            await asyncio.sleep(0.01)
    gc_summary = gc_lag.summary("gc")
    inline_summary = inline.summary("on_loop")
    ratio = gc_summary["gc_max_lag_ms"] / max(inline_summary["on_loop_max_lag_ms"], 1e-6)
    return {
        "benchmark": "sandbox_gc",
        "sandboxes": sandboxes,
        "files": sandboxes * files,
        "removed": sum(removed),
        "gc_seconds": round(gc_seconds, 3),
        "on_loop_seconds": round(inline_seconds, 3),
        **gc_summary,
        **baseline.summary("baseline"),
        **inline_summary,
        "ratio": round(ratio, 4),
        "goal_ratio": 0.1,
        "met": ratio < 0.1 and sum(removed) == sandboxes,
    }


def main() -> int:
    """Parse flags, run, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandboxes", type=int, default=20)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    if args.sandboxes < 1 or args.files < 1:
        parser.error("--sandboxes and --files: expected integers >= 1")
    report = asyncio.run(run(args.sandboxes, args.files))
    print(json.dumps(report, indent=2))
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
