"""A harness for the master's pure state (used by the test_master_* unit tests).

It builds a :class:`MasterState` on a FakeClock, routes messages through the
shell's dispatch table, and offers shortcuts for registering agents,
subscribing frameworks, getting offers and launching tasks.  The tests at
the bottom check the harness's own assumptions.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from mesoslite.master import MasterConfig, MasterState, Send
from mesoslite.master.master import DISPATCH
from mesoslite.protocol import (
    Accept,
    AgentInfo,
    CommandInfo,
    FrameworkInfo,
    MasterInfo,
    Offer,
    Offers,
    Operation,
    ProtocolError,
    RegisterAgent,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskInfo,
    TaskState,
    TaskStatus,
    Update,
)
from mesoslite.resources import Resources
from mesoslite.testing import FakeClock

MASTER_ID = "m1"
AGENT_RESOURCES = "cpus:4;mem:4096;disk:1000;ports:[31000-31009]"


class Harness:
    """A master state and the peers talking to it."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock()
        self.config = MasterConfig(**config)
        self.info = MasterInfo(
            id=MASTER_ID, ip="127.0.0.1", port=5050, hostname="master.test", version="test",
            zmq_endpoint="tcp://127.0.0.1:5055", http_endpoint="http://127.0.0.1:5050",
            pid="master@127.0.0.1:5050",
        )
        self.state = MasterState(self.config, self.info, self.clock, rng=random.Random(7))
        self._uuids = 0

    # ------------------------------------------------------------ messaging

    def handle(self, peer: bytes, msg: Any) -> list[Send]:
        """Route one message as the shell does."""
        handler = DISPATCH.get(type(msg), MasterState.refuse_unexpected)
        return handler(self.state, peer, msg)

    def tick(self, advance: float = 0.0) -> list[Send]:
        """Advance the fake clock, then run the state's timers."""
        self.clock.advance(advance)
        return self.state.tick()

    def allocate(self) -> list[Send]:
        """Run the allocation the state asked for (all agents)."""
        self.state.take_allocation_request()
        return self.state.allocate()

    def uuid(self) -> bytes:
        """A fresh 16-byte status-update uuid."""
        self._uuids += 1
        return self._uuids.to_bytes(16, "big")

    # ------------------------------------------------------------- shortcuts

    def add_agent(self, peer: bytes = b"agent-1", resources: str = AGENT_RESOURCES,
                  hostname: str = "") -> str:
        """Register an agent; return its id."""
        info = AgentInfo(hostname=hostname or peer.decode(), resources=Resources.parse(resources))
        sends = self.handle(peer, RegisterAgent(agent_info=info))
        return sends[-1].message.agent_id

    def subscribe(self, peer: bytes = b"fw-1", **info: Any) -> str:
        """Subscribe a framework; return its id."""
        info.setdefault("user", "tester")
        info.setdefault("name", peer.decode())
        sends = self.handle(peer, Subscribe(FrameworkInfo(**info)))
        subscribed = [s.message for s in sends if isinstance(s.message, Subscribed)]
        assert subscribed, sends
        return subscribed[0].framework_id

    def offers(self, framework_id: str) -> list[Offer]:
        """Allocate now and return the offers sent to ``framework_id``."""
        return offers_in(self.allocate(), framework_id)

    def task(self, task_id: str, agent_id: str, resources: str = "cpus:1;mem:128",
             **fields: Any) -> TaskInfo:
        """A command task."""
        fields.setdefault("command", CommandInfo(value="sleep 10"))
        return TaskInfo(name=task_id, task_id=task_id, agent_id=agent_id,
                        resources=Resources.parse(resources), **fields)

    def accept(self, peer: bytes, framework_id: str, offer_ids: Iterable[str],
               tasks: Iterable[TaskInfo], **kwargs: Any) -> list[Send]:
        """Accept offers with one LAUNCH of ``tasks``."""
        operations = (Operation("LAUNCH", tuple(tasks)),)
        return self.handle(peer, Accept(framework_id=framework_id, offer_ids=tuple(offer_ids),
                                        operations=operations, **kwargs))

    def launch(self, fw_peer: bytes, framework_id: str, task_id: str,
               resources: str = "cpus:1;mem:128") -> Offer:
        """Take this framework's next offer and launch one task on it."""
        offer = self.offers(framework_id)[0]
        self.accept(fw_peer, framework_id, [offer.id],
                    [self.task(task_id, offer.agent_id, resources)])
        return offer

    def update(self, agent_peer: bytes, framework_id: str, task_id: str, state: TaskState,
               uuid: bytes | None = None, **fields: Any) -> list[Send]:
        """The agent reports a status update (with a fresh uuid unless given)."""
        status = TaskStatus(task_id=task_id, state=state,
                            uuid=self.uuid() if uuid is None else uuid, **fields)
        return self.handle(agent_peer, StatusUpdate(framework_id=framework_id, status=status))


def offers_in(sends: list[Send], framework_id: str) -> list[Offer]:
    """Every offer sent to ``framework_id`` in ``sends``."""
    return [offer for s in sends if s.to == ("framework", framework_id)
            and isinstance(s.message, Offers) for offer in s.message.offers]


def messages(sends: list[Send], kind: type, to: tuple[str, Any] | None = None) -> list[Any]:
    """The messages of type ``kind`` (to ``to`` if given)."""
    return [s.message for s in sends
            if isinstance(s.message, kind) and (to is None or s.to == to)]


def updates(sends: list[Send], framework_id: str) -> list[TaskStatus]:
    """The statuses sent to ``framework_id`` as Update messages."""
    return [m.status for m in messages(sends, Update, ("framework", framework_id))]


def errors(sends: list[Send]) -> list[ProtocolError]:
    """The ProtocolErrors in ``sends``."""
    return messages(sends, ProtocolError)


def test_harness_ids_follow_the_protocol() -> None:
    """Agent, framework and offer ids have the shapes protocol.md gives them."""
    h = Harness()
    agent_id = h.add_agent()
    framework_id = h.subscribe()
    offer = h.offers(framework_id)[0]
    assert agent_id == f"{MASTER_ID}-S0"
    assert framework_id == f"{MASTER_ID}-0000"
    assert offer.id == f"{MASTER_ID}-O0"
