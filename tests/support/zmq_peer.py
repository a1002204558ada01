"""A bare ZeroMQ peer of the master, as an attacker on the machine would open one.

Owns :func:`raw_dealer`: a DEALER socket with a random 24-byte routing id (the way our
own clients name themselves), optionally with CURVE keys, connected to an endpoint.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import zmq

from mesoslite.transport import CurveClientKeys


@contextlib.contextmanager
def raw_dealer(endpoint: str, curve: CurveClientKeys | None = None) -> Iterator[zmq.Socket]:
    """A bare DEALER socket connected to ``endpoint`` (``host:port`` or a URL); closed after."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTING_ID, b"\x02" + secrets.token_bytes(23))
    if curve is not None:
        curve.apply(sock)
    sock.connect(endpoint if "://" in endpoint else f"tcp://{endpoint}")
    try:
        yield sock
    finally:
        sock.close()
