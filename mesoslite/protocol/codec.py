"""The wire codec: msgpack envelopes with strict decoding (PURE).

Owns: :func:`encode` and :func:`decode`, the envelope layout, the protocol
version and the maximum message size.

An envelope is a msgpack array ``[version, type_name, body]`` where ``body``
is a map of the message's fields.  :func:`decode` never lets anything but
:class:`DecodeError` escape: oversized frames, garbage bytes, truncated
msgpack, a wrong version, an unknown type and every field error become a
``DecodeError`` whose ``field`` says where the problem is.
"""

from __future__ import annotations

from typing import Any

import msgpack

from mesoslite.protocol.messages import MESSAGE_TYPES
from mesoslite.protocol.schema import DecodeError, converters

PROTOCOL_VERSION = 1

#: Default upper bound for one encoded message (bytes); transports enforce it too.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024


class EncodeError(ValueError):
    """A message could not be encoded (not a registered type, or too large)."""


def encode(msg: Any, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """Encode a registered message into an envelope; raise EncodeError if too big."""
    name = type(msg).__name__
    if MESSAGE_TYPES.get(name) is not type(msg):
        raise EncodeError(f"{name} is not a registered message type")
    _, enc = converters(type(msg))
    data = msgpack.packb([PROTOCOL_VERSION, name, enc(msg)], use_bin_type=True)
    if len(data) > max_size:
        raise EncodeError(f"{name} is {len(data)} bytes, over the {max_size}-byte limit")
    return data


def decode(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> Any:
    """Decode an envelope into a message instance, strictly."""
    if len(data) > max_size:
        raise DecodeError("frame", f"message of {len(data)} bytes exceeds {max_size} bytes")
    try:
        envelope = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
        )
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        # msgpack's ExtraData, FormatError and StackError are ValueErrors.
        raise DecodeError("frame", f"not a valid msgpack message ({type(exc).__name__})") from None
    if type(envelope) is not list or len(envelope) != 3:
        raise DecodeError("frame", "expected an envelope [version, type, body]")
    version, name, body = envelope
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise DecodeError(
            "version", f"unsupported protocol version {version!r}, expected {PROTOCOL_VERSION}"
        )
    if type(name) is not str:
        raise DecodeError("type", f"expected a message type name, got {type(name).__name__}")
    cls = MESSAGE_TYPES.get(name)
    if cls is None:
        raise DecodeError("type", f"unknown message type {name[:64]!r}")
    dec, _ = converters(cls)
    return dec(body, name)
