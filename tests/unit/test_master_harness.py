"""The master harness (:mod:`mesoslite.testing.harness`) keeps the protocol's assumptions."""

from __future__ import annotations

import subprocess
import sys

from mesoslite.testing import Harness
from mesoslite.testing.harness import MASTER_ID, offers_in


def test_harness_ids_follow_the_protocol() -> None:
    """Agent, framework and offer ids have the shapes protocol.md gives them."""
    h = Harness()
    agent_id = h.add_agent()
    framework_id = h.subscribe()
    offer = h.offers(framework_id)[0]
    assert agent_id == f"{MASTER_ID}-S0"
    assert framework_id == f"{MASTER_ID}-0000"
    assert offer.id == f"{MASTER_ID}-O0"


def test_harness_routes_like_the_shell_and_returns_the_sends() -> None:
    """A launch through the harness answers with RunTask to the agent; nothing is sent."""
    h = Harness()
    agent_id = h.add_agent(b"agent-1")
    framework_id = h.subscribe(b"fw-1")
    offer = h.offers(framework_id)[0]
    sends = h.accept(b"fw-1", framework_id, [offer.id], [h.task("t1", agent_id)])
    assert [type(s.message).__name__ for s in sends] == ["RunTask"]
    assert sends[0].to == ("agent", agent_id)
    assert offers_in(sends, framework_id) == []


def test_importing_the_harness_loads_no_web_or_coordination_layer() -> None:
    """The harness is pure: no tornado, no kazoo, no master process or HTTP module."""
    script = ("import sys, mesoslite.testing.harness; "
              "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('tornado', 'kazoo') or m in ('mesoslite.master.main', 'mesoslite.master.http', "
              "'mesoslite.master.leadership', 'mesoslite.coordination'))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.split() == []
