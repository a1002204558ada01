"""Lower modules stay lower: the executor loads no agent code, pure cores no I/O at run time."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after_import(module: str) -> list[str]:
    """Every module loaded by ``import <module>`` in a fresh interpreter."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=60)
    return json.loads(out.stdout)


def test_command_executor_loads_no_agent_module() -> None:
    """``import mesoslite.executor.command`` loads nothing under ``mesoslite.agent``."""
    loaded = _modules_after_import("mesoslite.executor.command")
    assert "mesoslite.proc" in loaded and "mesoslite.health.probes" in loaded
    assert [m for m in loaded if m == "mesoslite.agent" or m.startswith("mesoslite.agent.")] == []


def test_health_schedule_is_pure() -> None:
    """``import mesoslite.health.schedule`` loads no event loop, socket or process code."""
    loaded = set(_modules_after_import("mesoslite.health.schedule"))
    assert loaded.isdisjoint({"asyncio", "zmq", "tornado", "docker", "subprocess",
                              "mesoslite.proc", "mesoslite.agent", "mesoslite.executor"})


def test_agent_core_loads_no_io_at_run_time() -> None:
    """Importing the agent's pure core (package ``__init__`` files included) loads no I/O."""
    loaded = set(_modules_after_import("mesoslite.agent.core"))
    assert loaded.isdisjoint({"asyncio", "zmq", "tornado", "docker", "subprocess", "psutil",
                              "socket", "mesoslite.proc", "mesoslite.transport",
                              "mesoslite.agent.main", "mesoslite.agent.agent"})


def test_frames_carry_at_most_max_envelopes() -> None:
    """Senders split at MAX_ENVELOPES_PER_FRAME; receivers drop the rest with one error."""
    from mesoslite.protocol import Ping
    from mesoslite.protocol.codec import (
        MAX_ENVELOPES_PER_FRAME,
        DecodeError,
        decode_frame,
        encode,
        join_frames,
    )

    one = encode(Ping())
    frames = join_frames([one] * (MAX_ENVELOPES_PER_FRAME + 5))
    assert len(frames) == 2
    assert len(decode_frame(frames[0])) == MAX_ENVELOPES_PER_FRAME
    items = decode_frame(one * 20, max_envelopes=7)
    assert len(items) == 8
    assert isinstance(items[-1], DecodeError) and items[-1].field == "frame"
    assert all(isinstance(item, Ping) for item in items[:7])
