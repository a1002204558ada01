"""The failover benchmark's pure helpers: simulator split, registration deadline, retry clocks."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (benchmarks is not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simulators_split_by_per_process_each_from_its_own_source(tmp_path: Path) -> None:
    """10,000 agents at 4,000 a process: 3 processes, consecutive --first, .2/.3/.4 sources."""
    failover = _load("failover")
    sims = failover.simulator_argvs("zk://h:1/p", 10000, 4000, tmp_path, "INFO")
    assert [name for name, _argv, _ready in sims] == [f"sim_agents-{i}" for i in range(3)]
    for (_name, argv, ready), (count, first, source) in zip(
            sims, [(4000, 0, "127.0.0.2"), (4000, 4000, "127.0.0.3"), (2000, 8000, "127.0.0.4")],
            strict=True):
        assert argv[argv.index("--count") + 1] == str(count)
        assert argv[argv.index("--first") + 1] == str(first)
        assert argv[argv.index("--source") + 1] == source
        assert argv[argv.index("--ready-file") + 1] == str(ready)


def test_registration_deadline_grows_with_the_agents_unless_given() -> None:
    """Default: --timeout + 10 ms per simulated agent; an explicit value wins."""
    failover = _load("failover")
    args = argparse.Namespace(timeout=60.0, simulated_agents=10000, registration_timeout=0.0)
    assert failover.registration_timeout(args) == 160.0
    args.registration_timeout = 42.0
    assert failover.registration_timeout(args) == 42.0
    failover.parse_args(["--simulated-agents", "10", "--per-process", "5"])


def test_retry_clocks_restart_when_the_messages_leave() -> None:
    """Each agent keeps its random delay, counted from the flush; unpending agents stay so."""
    sim = _load("sim_agents")

    class Agent:
        def __init__(self, asked_at: float, retry_at: float) -> None:
            self.asked_at, self.retry_at = asked_at, retry_at

    agents = [Agent(1.0, 1.5), Agent(2.0, 2.25), Agent(3.0, 0.0)]
    sim.restart_retry_clocks(agents, now=10.0)  # type: ignore[arg-type]
    assert [(a.asked_at, a.retry_at) for a in agents] == [(10.0, 10.5), (10.0, 10.25),
                                                          (3.0, 0.0)]
