"""The only package that imports zmq: sockets on the event loop and CURVE keys.

Public names: :class:`RouterServer`, :class:`DealerClient`, :func:`tcp_endpoint`,
:class:`CurveServerKeys`, :class:`CurveClientKeys`, :func:`generate_keys`.
"""

from mesoslite.transport.curve import CurveClientKeys, CurveServerKeys
from mesoslite.transport.curve import generate as generate_keys
from mesoslite.transport.sockets import DealerClient, RouterServer, tcp_endpoint

__all__ = [
    "CurveClientKeys",
    "CurveServerKeys",
    "DealerClient",
    "RouterServer",
    "generate_keys",
    "tcp_endpoint",
]
