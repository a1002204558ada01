"""The pure parts of `mesoslite ctl drain|deactivate|reactivate`."""

from __future__ import annotations

import argparse

import pytest

from mesoslite.ctl.common import CtlError
from mesoslite.ctl.drain import drain_progress, find_agent, parse_grace

STATE = {
    "slaves": [
        {"id": "m-S0", "hostname": "h1", "deactivated": True,
         "drain_info": {"state": "DRAINING", "config": {"mark_gone": False}}},
        {"id": "m-S1", "hostname": "h2", "deactivated": True},
        {"id": "m-S2", "hostname": "h2", "deactivated": False},
    ],
    "frameworks": [{"tasks": [
        {"id": "a", "slave_id": "m-S0", "state": "TASK_RUNNING"},
        {"id": "b", "slave_id": "m-S0", "state": "TASK_KILLED"},
        {"id": "c", "slave_id": "m-S0", "state": "TASK_KILLING"},
        {"id": "d", "slave_id": "m-S2", "state": "TASK_RUNNING"},
    ]}],
}


@pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("30s", 30.0), ("500ms", 0.5),
                                               ("2m", 120.0), ("1h", 3600.0),
                                               ("30secs", 30.0), ("0", 0.0), ("1.5s", 1.5)])
def test_parse_grace_accepts_durations(text: str, seconds: float) -> None:
    """Durations in seconds, ms, minutes, hours (and Mesos's secs/mins) are read."""
    assert parse_grace(text) == seconds


@pytest.mark.parametrize("text", ["", "-1s", "soon", "3 weeks", "1e3"])
def test_parse_grace_refuses_other_text(text: str) -> None:
    """Anything else is refused naming the text."""
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
        parse_grace(text)


def test_find_agent_by_id_or_unique_host() -> None:
    """AGENT is an id, or a host name that names one agent."""
    assert find_agent(STATE, "m-S1")["hostname"] == "h2"
    assert find_agent(STATE, "h1")["id"] == "m-S0"
    with pytest.raises(CtlError, match="several agents"):
        find_agent(STATE, "h2")
    with pytest.raises(CtlError, match="agent nope is not known"):
        find_agent(STATE, "nope")


def test_drain_progress_counts_live_tasks_on_the_agent() -> None:
    """The drain state and the agent's live (not terminal) tasks; GONE once removed."""
    assert drain_progress(STATE, "m-S0") == ("DRAINING", 2)
    assert drain_progress(STATE, "m-S1") == ("DEACTIVATED", 0)
    assert drain_progress(STATE, "m-S2") == ("ACTIVE", 1)
    assert drain_progress(STATE, "m-S9") == ("GONE", 0)
