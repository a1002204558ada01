"""The Marathon-style offer matcher (PURE).

Owns: deciding which offers take which app instances in one matching round,
and why offers were turned down (for ``/v2/queue``'s offer summary).

For each want (in priority order) the matcher walks the offers round-robin,
putting one instance on each offer per pass, so an app's instances spread over
agents; an offer takes several instances (of one or several apps) while its
remaining resources allow, up to ``max_per_offer`` launches in all (Marathon's
default is 5).  One instance needs the app's ``cpus``, ``mem``, ``disk`` and
``gpus`` (a Docker app needs the same) plus host ports:

* host networking: one port per port definition, drawn at random (from the
  injected ``random.Random``) from the offer's ``ports`` ranges, or exactly the
  service ports when ``requirePorts`` is set;
* container networks: for each port mapping with a host port, that port when
  fixed, a random offered port when ``0`` (mappings without a host port need
  none).

An offer is usable for an app when its role is accepted
(``acceptedResourceRoles``; None accepts any role) and the app's constraints
hold for the offer's attributes plus ``hostname`` given where the app's tasks
are (``running``) and where this round has already placed some.

Rejections are counted once per (app, offer) with Marathon's reason names, the
first failing check in this order: ``UnfulfilledRole``,
``UnfulfilledConstraint``, ``InsufficientCpus``, ``InsufficientMemory``,
``InsufficientDisk``, ``InsufficientGpus``, ``InsufficientPorts``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from frameworks.marathon.core.constraints import check_all
from frameworks.marathon.core.model import App
from frameworks.marathon.core.service_ports import service_ports
from mesoslite.protocol.types import Offer
from mesoslite.resources import Resources

__all__ = [
    "DEFAULT_MAX_PER_OFFER",
    "REJECT_REASONS",
    "LaunchWant",
    "MatchResult",
    "Placement",
    "instance_resources",
    "match_offers",
    "reject_summary",
]

#: Marathon's default limit of launches per offer.
DEFAULT_MAX_PER_OFFER = 5

#: Rejection reasons, in the order they are checked.
REJECT_REASONS = (
    "UnfulfilledRole",
    "UnfulfilledConstraint",
    "InsufficientCpus",
    "InsufficientMemory",
    "InsufficientDisk",
    "InsufficientGpus",
    "InsufficientPorts",
)

_SCALAR_REASONS = (
    ("cpus", "InsufficientCpus"),
    ("mem", "InsufficientMemory"),
    ("disk", "InsufficientDisk"),
    ("gpus", "InsufficientGpus"),
)


@attrs.frozen
class Placement:
    """One instance of ``app_id`` to launch on ``offer_id``.

    ``resources`` is exactly what the task consumes (cpus, mem, disk, gpus
    when > 0, and the chosen ``ports``); ``host_ports`` are in port order
    (port definitions, or the port mappings that have a host port).
    ``attributes`` are the agent's attributes with ``hostname`` added.
    """

    app_id: str
    offer_id: str
    agent_id: str
    hostname: str
    resources: Resources
    host_ports: tuple[int, ...]
    attributes: dict[str, str]


@attrs.frozen
class LaunchWant:
    """``count`` more instances of ``app`` are wanted (its launch delay is over)."""

    app: App
    count: int


@attrs.frozen
class MatchResult:
    """The outcome of one matching round.

    ``unused_offers`` are ids of offers that got no placement (decline them);
    ``rejections`` maps app id → reason → number of offers turned down.
    """

    placements: list[Placement]
    unused_offers: list[str]
    rejections: dict[str, dict[str, int]]


def instance_resources(app: App) -> Resources:
    """The scalar resources one instance of ``app`` needs (no ports)."""
    wanted: dict[str, float | int] = {"cpus": app.cpus, "mem": app.mem, "disk": app.disk}
    if app.gpus > 0:
        wanted["gpus"] = app.gpus
    return Resources.from_dict(wanted)


@attrs.frozen
class _PortNeed:
    """How one instance's host ports are picked: fixed ones and a count of random ones."""

    #: Per port position: the fixed host port, or 0 for a random one.
    slots: tuple[int, ...]

    @property
    def fixed(self) -> tuple[int, ...]:
        """The fixed host ports."""
        return tuple(p for p in self.slots if p)

    @property
    def random_count(self) -> int:
        """How many ports are drawn at random."""
        return sum(1 for p in self.slots if not p)


def _port_need(app: App) -> _PortNeed:
    """The host ports one instance of ``app`` needs."""
    if app.uses_host_ports:
        if app.require_ports:
            return _PortNeed(service_ports(app))
        return _PortNeed((0,) * len(app.port_definitions))
    mappings = app.container.port_mappings if app.container else None
    return _PortNeed(tuple(m.host_port for m in (mappings or ()) if m.host_port is not None))


def _pick_ports(
    available: Resources, need: _PortNeed, rng: random.Random
) -> tuple[int, ...] | None:
    """Host ports for one instance from ``available``'s ``ports``, or None if short."""
    if not need.slots:
        return ()
    fixed = need.fixed
    if fixed:
        if len(set(fixed)) != len(fixed):
            return None
        if not available.contains(Resources.from_dict({"ports": [(p, p) for p in fixed]})):
            return None
    count = need.random_count
    drawn: list[int] = []
    if count:
        rest = available.ranges("ports")
        if fixed:
            rest = (available - Resources.from_dict({"ports": [(p, p) for p in fixed]})).ranges(
                "ports"
            )
        total = sum(end - begin + 1 for begin, end in rest)
        if total < count:
            return None
        for index in sorted(rng.sample(range(total), count)):
            drawn.append(_nth_port(rest, index))
        rng.shuffle(drawn)
    it = iter(drawn)
    return tuple(p or next(it) for p in need.slots)


def _nth_port(ranges: Sequence[tuple[int, int]], index: int) -> int:
    """The ``index``-th port (0-based) covered by sorted ``ranges``."""
    for begin, end in ranges:
        size = end - begin + 1
        if index < size:
            return begin + index
        index -= size
    raise IndexError(index)


@attrs.define
class _OfferState:
    """An offer being filled during one round."""

    offer: Offer
    remaining: Resources
    attrs: dict[str, str]
    launches: int = 0


def _role_ok(app: App, offer: Offer) -> bool:
    """True when the app accepts resources of the offer's role."""
    roles = app.accepted_resource_roles
    return roles is None or offer.role in roles


def _try_place(
    app: App,
    need: Resources,
    ports: _PortNeed,
    state: _OfferState,
    placed: list[dict[str, str]],
    rng: random.Random,
) -> tuple[Placement | None, str | None]:
    """Place one instance on ``state``; returns (placement, None) or (None, reason)."""
    if not _role_ok(app, state.offer):
        return None, "UnfulfilledRole"
    if app.constraints and not check_all(app.constraints, state.attrs, placed):
        return None, "UnfulfilledConstraint"
    remaining = state.remaining
    for name, reason in _SCALAR_REASONS:
        if remaining.scalar_milli(name) < need.scalar_milli(name):
            return None, reason
    host_ports = _pick_ports(remaining, ports, rng)
    if host_ports is None:
        return None, "InsufficientPorts"
    used = need
    if host_ports:
        used = need + Resources.from_dict({"ports": [(p, p) for p in host_ports]})
    state.remaining = remaining - used
    state.launches += 1
    offer = state.offer
    return (
        Placement(
            app_id=app.id,
            offer_id=offer.id,
            agent_id=offer.agent_id,
            hostname=offer.hostname,
            resources=used,
            host_ports=host_ports,
            attributes=dict(state.attrs),
        ),
        None,
    )


def match_offers(
    offers: Sequence[Offer],
    wants: Sequence[LaunchWant],
    running: Mapping[str, Sequence[Mapping[str, str]]],
    *,
    max_per_offer: int = DEFAULT_MAX_PER_OFFER,
    rng: random.Random | None = None,
) -> MatchResult:
    """Match ``offers`` against ``wants`` (highest priority first); see the module doc.

    ``running`` maps app id → attribute dicts (``hostname`` included) of the
    app's active tasks, for constraints.  ``rng`` draws host ports (a fresh
    ``random.Random()`` when None).
    """
    rng = rng if rng is not None else random.Random()
    states = [
        _OfferState(offer, offer.resources, {**offer.attributes, "hostname": offer.hostname})
        for offer in offers
    ]
    placements: list[Placement] = []
    rejections: dict[str, dict[str, int]] = {}
    for want in wants:
        app = want.app
        left = want.count
        if left <= 0:
            continue
        need = instance_resources(app)
        ports = _port_need(app)
        placed = [dict(a) for a in running.get(app.id, ())]
        open_states = [s for s in states if s.launches < max_per_offer]
        first_reason: dict[int, str] = {}
        took: set[int] = set()
        progress = True
        while left > 0 and open_states and progress:
            progress = False
            still_open: list[_OfferState] = []
            for state in open_states:
                if left <= 0:
                    break
                placement, reason = _try_place(app, need, ports, state, placed, rng)
                if placement is None:
                    if reason is not None:
                        first_reason.setdefault(id(state), reason)
                    if reason == "UnfulfilledConstraint":
                        # Placing elsewhere may change the verdict (GROUP_BY): retry later.
                        still_open.append(state)
                    continue
                took.add(id(state))
                progress = True
                placements.append(placement)
                placed.append(placement.attributes)
                left -= 1
                if state.launches < max_per_offer:
                    still_open.append(state)
            open_states = still_open
        for key, reason in first_reason.items():
            if key not in took:
                counts = rejections.setdefault(app.id, {})
                counts[reason] = counts.get(reason, 0) + 1
    used_offers = {p.offer_id for p in placements}
    unused = [offer.id for offer in offers if offer.id not in used_offers]
    return MatchResult(placements, unused, rejections)


def reject_summary(processed: int, rejections: Mapping[str, int]) -> list[dict[str, Any]]:
    """Marathon's ``rejectSummary…`` funnel: ``[{reason, declined, processed}]``.

    ``processed`` offers entered the funnel; each reason (in
    :data:`REJECT_REASONS` order) saw the offers not declined by an earlier one.
    """
    out: list[dict[str, Any]] = []
    remaining = processed
    for reason in REJECT_REASONS:
        declined = int(rejections.get(reason, 0))
        out.append({"reason": reason, "declined": declined, "processed": remaining})
        remaining = max(0, remaining - declined)
    return out
