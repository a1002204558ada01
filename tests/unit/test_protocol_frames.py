"""Frames that carry several envelopes: join_frames and decode_frame."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from mesoslite.protocol import (
    DecodeError,
    Heartbeat,
    Kill,
    Ping,
    Pong,
    StatusUpdate,
    TaskState,
    TaskStatus,
    decode,
    decode_frame,
    encode,
    join_frames,
)

MESSAGES = [
    Ping(),
    Pong(agent_id="a-1"),
    Kill(framework_id="f-1", task_id="t-1"),
    StatusUpdate("f-1", TaskStatus(task_id="t-1", state=TaskState.TASK_RUNNING, uuid=b"u" * 16)),
]


def test_one_envelope_is_a_plain_message() -> None:
    """A lone message is framed exactly as encode() made it, and decode() reads it."""
    data = encode(Ping())
    assert join_frames([data]) == [data]
    assert decode_frame(data) == [Ping()]
    assert decode(join_frames([data])[0]) == Ping()


def test_several_envelopes_share_a_frame_in_order() -> None:
    """Envelopes joined into one frame decode back in order."""
    frames = join_frames([encode(m) for m in MESSAGES])
    assert len(frames) == 1
    assert decode_frame(frames[0]) == MESSAGES


def test_frames_are_split_at_the_size_limit() -> None:
    """No joined frame exceeds the limit, and nothing is lost or reordered."""
    parts = [encode(Heartbeat(sender_id=f"s-{i}")) for i in range(50)]
    limit = 3 * max(len(p) for p in parts)
    frames = join_frames(parts, limit)
    assert len(frames) > 1
    assert all(len(f) <= limit for f in frames)
    decoded = [m for f in frames for m in decode_frame(f, limit)]
    assert decoded == [Heartbeat(sender_id=f"s-{i}") for i in range(50)]


def test_a_refused_envelope_does_not_stop_the_others() -> None:
    """An envelope with bad contents is a DecodeError item; its neighbours still decode."""
    bad = msgpack.packb([1, "Kill", {"framework_id": "f"}], use_bin_type=True)
    unknown = msgpack.packb([1, "NoSuchMessage", {}], use_bin_type=True)
    items = decode_frame(encode(Ping()) + bad + unknown + encode(Pong(agent_id="a")))
    assert items[0] == Ping() and items[3] == Pong(agent_id="a")
    assert isinstance(items[1], DecodeError) and items[1].field == "Kill.task_id"
    assert isinstance(items[2], DecodeError) and items[2].field == "type"


def test_garbage_ends_the_frame_with_one_error() -> None:
    """Bytes that are not envelopes end the frame: one 'frame' error, the rest dropped."""
    items = decode_frame(encode(Ping()) + msgpack.packb(7) + encode(Pong(agent_id="a")))
    assert items[0] == Ping()
    assert len(items) == 2 and isinstance(items[1], DecodeError) and items[1].field == "frame"
    truncated = decode_frame(encode(Ping()) + encode(Pong(agent_id="a"))[:-2])
    assert truncated[0] == Ping()
    assert len(truncated) == 2 and truncated[1].field == "frame"


def test_an_oversized_frame_is_one_error() -> None:
    """A frame over the limit is refused as a whole."""
    items = decode_frame(b"".join(encode(m) for m in MESSAGES), max_size=10)
    assert len(items) == 1 and isinstance(items[0], DecodeError) and items[0].field == "frame"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_frames_yield_only_messages_or_decode_errors(data: bytes) -> None:
    """Random bytes give messages and DecodeErrors, at most one of them a 'frame' error, last."""
    items = decode_frame(data)
    assert items
    framing = [i for i, item in enumerate(items)
               if isinstance(item, DecodeError) and item.field == "frame"]
    assert framing in ([], [len(items) - 1])
    for item in items:
        assert isinstance(item, DecodeError) or type(item).__module__.startswith("mesoslite")
