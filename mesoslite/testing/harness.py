"""A harness for the master's pure state: drive :class:`MasterState` without sockets or sleeps.

Owns: :class:`Harness`, which builds a :class:`~mesoslite.master.MasterState`
on a :class:`~mesoslite.testing.FakeClock`, routes each message through the
master shell's dispatch table (:data:`mesoslite.master.master.DISPATCH`)
exactly as a running master does, and returns the handlers' sends instead of
delivering them.  Shortcuts register agents, subscribe frameworks, take
offers, launch tasks and report status updates; :meth:`Harness.tick` moves
the clock and runs the state's timers.  The helpers :func:`offers_in`,
:func:`messages`, :func:`updates` and :func:`errors` pick messages out of a
list of sends.

Framework authors can use it to see how the master answers what their
scheduler sends.  A short example::

    from mesoslite.testing import Harness
    from mesoslite.testing.harness import offers_in

    h = Harness()
    agent_id = h.add_agent()
    framework_id = h.subscribe()
    offer = h.offers(framework_id)[0]
    assert offer.agent_id == agent_id

Importing this module loads neither tornado nor kazoo: the master's pure
state and dispatch table only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from mesoslite.master.config import MasterConfig
from mesoslite.master.master import DISPATCH
from mesoslite.master.records import Send
from mesoslite.master.state import MasterState
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
from mesoslite.testing.clock import FakeClock

#: The id of the harness's master (agent ids are ``m1-S0``, framework ids ``m1-0000``...).
MASTER_ID = "m1"
#: What :meth:`Harness.add_agent` offers unless told otherwise.
AGENT_RESOURCES = "cpus:4;mem:4096;disk:1000;ports:[31000-31009]"


class Harness:
    """A master state on a fake clock, and the peers talking to it.

    ``config``: :class:`~mesoslite.master.MasterConfig` fields.  ``state``
    is the :class:`~mesoslite.master.MasterState` under test, ``clock`` its
    :class:`~mesoslite.testing.FakeClock`; the random choices of the
    allocator are seeded, so runs repeat.
    """

    def __init__(self, **config: Any) -> None:
        """A fresh master state with ``config``; nothing registered yet."""
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
        agent_id: str = sends[-1].message.agent_id
        return agent_id

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
