"""The master's whole state machine, sans I/O (PURE).

Owns: :class:`MasterState`, which joins the agent, framework and offer
handlers (:mod:`.agents`, :mod:`.frameworks`, :mod:`.offers`) over the
shared registries of :mod:`.core`, and :meth:`MasterState.tick`, the one
timer entry point (agent pings, scheduler heartbeats, disconnect detection,
failover-timeout teardown, offer timeouts), driven by the injected clock.

Every handler takes ``(peer, message)`` and returns the messages to send as
:class:`~mesoslite.master.records.Send` values; the shell
(:mod:`mesoslite.master.master`) delivers them, and runs
:meth:`MasterState.allocate` when :meth:`allocation_wanted` says so.
Tests drive it with a FakeClock and no sockets.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from mesoslite.allocator import HierarchicalAllocator, validate_role
from mesoslite.clock import Clock
from mesoslite.master.config import MasterConfig
from mesoslite.master.drain import DrainHandlers
from mesoslite.master.journal import WeightChanged, record
from mesoslite.master.offers import OfferHandlers
from mesoslite.master.records import Send
from mesoslite.protocol import MasterInfo

log = logging.getLogger("mesoslite.master")


class MasterState(OfferHandlers, DrainHandlers):
    """Agents, frameworks, tasks and offers, and every decision about them."""

    def __init__(
        self,
        config: MasterConfig,
        master_info: MasterInfo,
        clock: Clock,
        allocator: HierarchicalAllocator | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Start with no agents and no frameworks; timers start from ``clock`` now."""
        super().__init__(config, master_info, clock, allocator, rng)
        self._init_offers()
        self._init_drain()
        self._init_pings()
        now = clock.monotonic()
        self._next_heartbeat_at = now + config.framework_heartbeat_interval

    def tick(self) -> list[Send]:
        """Do whatever the clock says is due now; return the messages to send."""
        now = self.clock.monotonic()
        sends: list[Send] = []
        sends += self.ping_agents()  # each agent when its own ping is due
        if now >= self._next_heartbeat_at:
            self._next_heartbeat_at = now + self.config.framework_heartbeat_interval
            sends += self.heartbeat_frameworks()
        sends += self.check_frameworks()
        if self.maintenance:
            sends += self.check_drains()
        if self.config.offer_timeout is not None:
            sends += self.expire_offers()
        return sends

    def refuse_unexpected(self, peer: bytes, msg: Any) -> list[Send]:
        """A message type the master never accepts (e.g. one only the master sends)."""
        return self.refuse(
            peer, msg, f"message type {type(msg).__name__} is not accepted by the master", "type"
        )

    def protocol_error(self, peer: bytes, msg: Any) -> list[Send]:
        """A peer refused something we sent: log it, never answer (no error ping-pong)."""
        self.counters["peer_errors"] += 1
        log.warning("peer %s refused a %s: %s (%s, field %r)", peer.hex()[:16],
                    msg.in_reply_to or "message", msg.message, msg.code, msg.field)
        return []

    def set_weight(self, role: str, weight: float) -> None:
        """Change a role's weight (ValueError naming the role or weight when invalid)."""
        validate_role(role)
        self.allocator.set_weight(role, weight)
        record(self.journal, WeightChanged(role, weight))
        log.info("role %s: weight set to %s", role, weight)
        self.request_allocation(None)

    def weights(self) -> dict[str, float]:
        """The weight of every role configured or in use."""
        return self.allocator.weights()
