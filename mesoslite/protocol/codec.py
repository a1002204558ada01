"""The wire codec: msgpack envelopes with strict decoding (PURE).

Owns: :func:`encode` and :func:`decode`, the envelope layout, the protocol
version and the maximum message size; :func:`join_frames` and
:func:`decode_frame` for frames that carry several envelopes.

An envelope is a msgpack array ``[version, type_name, body]`` where ``body``
is a map of the message's fields.  :func:`decode` never lets anything but
:class:`DecodeError` escape: oversized frames, garbage bytes, truncated
msgpack, a wrong version, an unknown type and every field error become a
``DecodeError`` whose ``field`` says where the problem is.

A frame may hold several envelopes back to back (a msgpack stream): senders
batch what they have for one peer in one event-loop turn.  A frame with one
envelope is exactly an encoded message, so a lone message looks as it always
did; :func:`decode_frame` decodes every envelope of a frame in order, each
as strictly as :func:`decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from mesoslite.protocol.messages import MESSAGE_TYPES
from mesoslite.protocol.schema import DecodeError, converters

PROTOCOL_VERSION = 1

#: Default upper bound for one encoded message (bytes); transports enforce it too.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Envelopes one frame may carry: senders split there, receivers refuse the rest.
MAX_ENVELOPES_PER_FRAME = 4096


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
    return _from_envelope(envelope)


def join_frames(envelopes: Sequence[bytes], max_size: int = MAX_MESSAGE_SIZE,
                max_envelopes: int = MAX_ENVELOPES_PER_FRAME) -> list[bytes]:
    """Pack encoded envelopes, in order, into as few frames of at most ``max_size`` as fit.

    One envelope stays exactly as it is.  An envelope is never split, so one
    over ``max_size`` gets a frame of its own (and is refused by the receiver).
    A frame holds at most ``max_envelopes`` envelopes.
    """
    if len(envelopes) == 1:
        return [envelopes[0]]
    frames: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for data in envelopes:
        if batch and (size + len(data) > max_size or len(batch) >= max_envelopes):
            frames.append(b"".join(batch))
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        frames.append(b"".join(batch))
    return frames


def decode_frame(data: bytes, max_size: int = MAX_MESSAGE_SIZE,
                 max_envelopes: int = MAX_ENVELOPES_PER_FRAME) -> list[Any]:
    """Decode every envelope of a frame, in order; each item is a message or a DecodeError.

    Each envelope is decoded as strictly as :func:`decode`, and one refused
    for its contents (version, type, fields) does not stop the others.  When
    the bytes themselves are not envelopes (garbage, truncated msgpack, not a
    ``[version, type, body]`` array) that is the last item: the rest of the
    frame cannot be framed and is dropped.  So is everything after
    ``max_envelopes`` envelopes (a DecodeError says so), which bounds the work
    one frame costs.
    """
    if len(data) > max_size:
        return [DecodeError("frame", f"message of {len(data)} bytes exceeds {max_size} bytes")]
    try:
        envelope = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except msgpack.ExtraData:
        return _decode_stream(data, max_envelopes)
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        return [DecodeError("frame", f"not a valid msgpack message ({type(exc).__name__})")]
    try:
        return [_from_envelope(envelope)]
    except DecodeError as exc:
        return [exc]


def _decode_stream(data: bytes, max_envelopes: int) -> list[Any]:
    unpacker = msgpack.Unpacker(
        raw=False, use_list=True, strict_map_key=True, max_buffer_size=max(len(data), 1)
    )
    unpacker.feed(data)
    out: list[Any] = []
    end = 0  # where the last whole envelope ended
    while True:
        try:
            envelope = unpacker.unpack()
        except msgpack.OutOfData:
            if end != len(data):
                out.append(DecodeError("frame", "truncated envelope at the end of the frame"))
            return out
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
            out.append(DecodeError(
                "frame", f"not a valid msgpack message ({type(exc).__name__})"
            ))
            return out
        end = unpacker.tell()
        if len(out) >= max_envelopes:
            out.append(DecodeError("frame", f"more than {max_envelopes} envelopes in one "
                                            "frame; the rest is dropped"))
            return out
        try:
            out.append(_from_envelope(envelope))
        except DecodeError as exc:
            out.append(exc)
            if exc.field == "frame":
                return out


def _from_envelope(envelope: Any) -> Any:
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
