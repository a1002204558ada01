"""Sandbox garbage collection's pure parts: the schedule on a FakeClock, durations, records."""

from __future__ import annotations

import pytest

from mesoslite.agent import AgentConfig
from mesoslite.agent.effects import LaunchExecutor
from mesoslite.agent.gc import (
    Collected,
    GcSchedule,
    Sandbox,
    age_limit,
    gone_message,
    parse_duration,
)
from mesoslite.cli import FlagError, build_config, build_parser
from mesoslite.config_checks import ConfigError
from mesoslite.protocol import TaskState
from mesoslite.testing import FakeClock
from tests.unit.test_agent_core import Harness, command_task, framework, of, sent

WEEK = 604800.0
RUNS = "/w/agents/A/frameworks/F/executors/e1/runs"


def sandbox(cid: str, eid: str = "e1") -> Sandbox:
    """A completed run's sandbox under the test work directory."""
    return Sandbox(f"/w/agents/A/frameworks/F/executors/{eid}/runs/{cid}", "A", "F", eid, cid)


def test_age_limit_is_mesos_formula() -> None:
    """gc_delay * max(0, 1 - headroom - usage): full delay on an empty disk, 0 when full."""
    assert age_limit(WEEK, 0.1, 0.0) == pytest.approx(0.9 * WEEK)
    assert age_limit(WEEK, 0.1, 0.5) == pytest.approx(0.4 * WEEK)
    assert age_limit(WEEK, 0.1, 0.9) == 0.0
    assert age_limit(WEEK, 0.1, 0.97) == 0.0  # never negative
    assert age_limit(WEEK, 0.0, 0.0) == WEEK


def test_sandbox_is_due_after_the_delay_on_a_fake_clock() -> None:
    """A sandbox completed at t is due at t + limit, not a second before."""
    clock = FakeClock()
    gc = GcSchedule(gc_delay=100.0, headroom=0.0)
    gc.track(sandbox("c1"), clock.time())
    clock.advance(99.0)
    assert gc.due(clock.time(), disk_usage=0.0) == []
    assert gc.next_due(0.0) == pytest.approx(clock.time() + 1.0)
    clock.advance(1.0)
    assert gc.due(clock.time(), disk_usage=0.0) == [sandbox("c1")]


def test_disk_pressure_brings_removal_forward_oldest_first() -> None:
    """At 60% usage (10% headroom) sandboxes older than 0.3 * delay are due, oldest first."""
    clock = FakeClock()
    gc = GcSchedule(gc_delay=WEEK, headroom=0.1)
    gc.track(sandbox("old"), clock.time())
    clock.advance(0.2 * WEEK)
    gc.track(sandbox("mid"), clock.time())
    clock.advance(0.15 * WEEK)
    gc.track(sandbox("new"), clock.time())
    now = clock.time()
    assert gc.due(now, disk_usage=0.0) == []
    assert gc.due(now, disk_usage=0.6) == [sandbox("old")]  # 0.35 weeks old > 0.3
    assert gc.due(now, disk_usage=0.8) == [sandbox("old"), sandbox("mid")]  # > 0.1
    assert gc.due(now, disk_usage=0.95) == [sandbox("old"), sandbox("mid"), sandbox("new")]


def test_tracking_again_keeps_the_first_completion_and_untrack_forgets() -> None:
    """Tracking a path twice keeps its first time; untracked paths are never due."""
    gc = GcSchedule(gc_delay=10.0, headroom=0.0)
    gc.track(sandbox("c1"), 0.0)
    gc.track(sandbox("c1"), 100.0)
    assert gc.due(10.0, 0.0) == [sandbox("c1")]
    gc.untrack(sandbox("c1").path)
    assert gc.due(1e9, 1.0) == [] and len(gc) == 0 and gc.next_due(0.0) is None


def test_parse_duration_reads_mesos_units_and_refuses_others() -> None:
    """'1weeks', '10mins', '30secs', '500ms' and plain seconds; unknown units are refused."""
    assert parse_duration("1weeks") == WEEK
    assert parse_duration("10mins") == 600.0
    assert parse_duration("30secs") == 30.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2.5") == 2.5
    for bad in ("1fortnight", "", "-3", "weeks", "1 2"):
        with pytest.raises(ValueError, match="expected seconds"):
            parse_duration(bad)


def test_agent_flags_default_to_mesos_and_parse_durations() -> None:
    """--gc_delay 1 week, --gc_disk_headroom 0.1, --disk_watch_interval 1 min; text durations."""
    cfg = AgentConfig()
    assert (cfg.gc_delay, cfg.gc_disk_headroom, cfg.disk_watch_interval) == (WEEK, 0.1, 60.0)
    args = build_parser().parse_args(["agent", "--gc_delay", "2days",
                                      "--disk_watch_interval", "5secs",
                                      "--gc_disk_headroom", "0.25"])
    cfg = build_config(AgentConfig, args)
    assert (cfg.gc_delay, cfg.disk_watch_interval, cfg.gc_disk_headroom) == (172800.0, 5.0, 0.25)


def test_bad_gc_flags_are_refused_naming_the_flag() -> None:
    """A headroom outside 0..1, a zero delay or a bad unit is a clear error naming the flag."""
    for flag, value in (("--gc_disk_headroom", "1.5"), ("--gc_delay", "0"),
                        ("--gc_delay", "3lightyears"), ("--disk_watch_interval", "-1")):
        args = build_parser().parse_args(["agent", flag, value])
        with pytest.raises(FlagError) as err:
            build_config(AgentConfig, args)
        assert err.value.flag == flag
    with pytest.raises(ConfigError, match="gc_disk_headroom"):
        AgentConfig(gc_disk_headroom=-0.1)


def test_collected_explains_paths_inside_removed_sandboxes() -> None:
    """A file in a removed run, or through the executor's runs/latest link, is explained."""
    gone = Collected(limit=2)
    gone.add(sandbox("c1"), 10.0)
    gone.add(sandbox("c2"), 20.0)
    assert gone.find(f"{RUNS}/c1/stdout") is not None
    found = gone.find(f"{RUNS}/latest/stdout")
    assert found is not None and found.sandbox.container_id == "c2"
    assert gone.find(f"{RUNS}/c9/stdout") is None
    assert gone.find("/w/agents/A/frameworks/F/executors/other/runs/latest/stdout") is None
    gone.add(sandbox("c3"), 30.0)  # over the limit: c1 is forgotten
    assert gone.find(f"{RUNS}/c1") is None and len(gone) == 2
    message = gone_message(gone.find(f"{RUNS}/c3/x") or pytest.fail("c3"), "T")
    assert "'e1'" in message and "'F'" in message and "c3" in message
    assert "garbage collected" in message


def _finish(h: Harness, task_id: str) -> None:
    """Run ``task_id`` on the command host and take it to an acknowledged TASK_FINISHED."""
    effects = h.run(command_task(task_id), framework())
    if of(effects, LaunchExecutor):  # the framework's first task starts its command host
        h.register(b"host", h.launched(effects), "mesoslite.command-host")
    out = h.report(b"host", task_id, TaskState.TASK_FINISHED, task_id.encode().ljust(16, b"0"),
                   executor_id=task_id)
    [update] = sent(out)
    h.ack(update)


def test_core_live_set_and_pruning_of_collected_records() -> None:
    """Live runs are the host's and running tasks'; collected runs leave /state's records."""
    h = Harness()
    _finish(h, "done")
    h.run(command_task("running"), framework())
    fw = h.core.frameworks["M1-0001"]
    [done] = list(fw.completed_executors)
    containers, executors, frameworks = h.core.live_sandboxes()
    assert done.container_id not in containers
    assert fw.executors["running"].container_id in containers
    assert fw.command_host is not None and fw.command_host.container_id in containers
    assert ("M1-0001", "running") in executors and frameworks == {"M1-0001"}
    h.core.sandboxes_collected({done.container_id})
    assert list(fw.completed_executors) == []
    assert "running" in fw.executors  # a live executor is never pruned
