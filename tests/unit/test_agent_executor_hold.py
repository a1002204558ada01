"""A recovering agent holds executors' messages until its records exist, then handles them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mesoslite.agent import AgentConfig, AgentState
from mesoslite.agent.containerizer.process import ProcessContainerizer
from mesoslite.agent.effects import Effect, ToExecutor
from mesoslite.agent.executors import ExecutorManager
from mesoslite.protocol import RegisterExecutor, ShutdownExecutor
from mesoslite.testing import FakeClock


class _Server:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, peer: bytes, msg: Any) -> None:
        self.sent.append((peer, msg))


def _manager() -> tuple[ExecutorManager, _Server]:
    server = _Server()

    def perform(effects: Iterable[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, ToExecutor):
                server.send(effect.peer, effect.message)

    config = AgentConfig()
    core = AgentState(config, FakeClock())
    manager = ExecutorManager(config, core, ProcessContainerizer(), perform)
    return manager, server


def test_messages_are_held_then_handled_in_order_on_release() -> None:
    """While holding nothing is answered; release handles every held message in order."""
    manager, server = _manager()
    manager.hold()
    first = RegisterExecutor(framework_id="f1", executor_id="e1", container_id="c1")
    second = RegisterExecutor(framework_id="f1", executor_id="e2", container_id="c2")
    manager.on_message(b"p1", first)
    manager.on_message(b"p2", second)
    assert server.sent == []
    manager.release()
    shutdowns = [(peer, m.executor_id) for peer, m in server.sent
                 if isinstance(m, ShutdownExecutor)]
    assert shutdowns == [(b"p1", "e1"), (b"p2", "e2")]  # unknown after recovery: shut down


def test_without_holding_an_unknown_executor_is_answered_at_once() -> None:
    """Outside recovery an unknown executor is refused and told to shut down immediately."""
    manager, server = _manager()
    manager.on_message(b"p1", RegisterExecutor(framework_id="f1", executor_id="e1",
                                                 container_id="c1"))
    assert any(isinstance(m, ShutdownExecutor) for _p, m in server.sent)
