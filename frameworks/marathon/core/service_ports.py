"""Service-port allocation for Marathon apps (PURE).

Owns: turning the ``0`` service ports of an app (``portDefinitions[].port`` on
host networking, ``container.portMappings[].servicePort`` otherwise) into
concrete ports from Marathon's service-port range 10000–20000, avoiding the
ports other apps already use and the ports the app itself names.  Ports the
app names are kept as given.  With ``previous`` (the app's stored version), a
``0`` at the same position reuses the port allocated before, so an update does
not move the service ports load balancers already know.

With ``requirePorts`` the matcher asks offers for host ports equal to these
service ports, so they must be allocated before the app is matched.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from frameworks.marathon.core.model import SERVICE_PORT_RANGE, App

__all__ = [
    "ServicePortsExhausted",
    "allocate_service_ports",
    "service_ports",
    "used_service_ports",
]


class ServicePortsExhausted(ValueError):
    """No free port is left in the service-port range."""


def service_ports(app: App) -> tuple[int, ...]:
    """The app's service ports in port order (``0`` where not allocated yet)."""
    if app.uses_host_ports:
        return tuple(d.port for d in app.port_definitions)
    mappings = app.container.port_mappings if app.container else None
    return tuple(m.service_port for m in (mappings or ()))


def used_service_ports(apps: Iterable[App], *, exclude: str | None = None) -> set[int]:
    """Every non-zero service port of ``apps`` except the app with id ``exclude``."""
    used: set[int] = set()
    for app in apps:
        if app.id != exclude:
            used.update(p for p in service_ports(app) if p)
    return used


def allocate_service_ports(
    app: App,
    used: Iterable[int],
    *,
    previous: App | None = None,
    port_range: tuple[int, int] = SERVICE_PORT_RANGE,
) -> App:
    """The app with every ``0`` service port replaced by a free one.

    ``used`` are ports taken by other apps.  Free ports are handed out lowest
    first.  Raises :class:`ServicePortsExhausted` when the range runs out.
    """
    current = service_ports(app)
    if all(current):
        return app
    taken = set(used) | {p for p in current if p}
    before = service_ports(previous) if previous is not None else ()
    low, high = port_range
    cursor = low
    chosen: list[int] = []
    for index, port in enumerate(current):
        if port:
            chosen.append(port)
            continue
        reuse = before[index] if index < len(before) else 0
        if reuse and reuse not in taken:
            taken.add(reuse)
            chosen.append(reuse)
            continue
        while cursor <= high and cursor in taken:
            cursor += 1
        if cursor > high:
            raise ServicePortsExhausted(
                f"service ports: no free port left in {low}-{high} for app {app.id}"
            )
        taken.add(cursor)
        chosen.append(cursor)
    return _with_service_ports(app, chosen)


def _with_service_ports(app: App, ports: list[int]) -> App:
    """A copy of ``app`` whose service ports are ``ports`` (same order and length)."""
    if app.uses_host_ports:
        definitions = tuple(
            attrs.evolve(d, port=p) for d, p in zip(app.port_definitions, ports, strict=True)
        )
        return attrs.evolve(app, port_definitions=definitions)
    assert app.container is not None and app.container.port_mappings is not None
    mappings = tuple(
        attrs.evolve(m, service_port=p)
        for m, p in zip(app.container.port_mappings, ports, strict=True)
    )
    return attrs.evolve(app, container=attrs.evolve(app.container, port_mappings=mappings))
