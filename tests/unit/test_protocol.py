"""The codec, the message schema and the task state machine."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesoslite.protocol import (
    MAX_MESSAGE_SIZE,
    MESSAGE_TYPES,
    TERMINAL_STATES,
    Accept,
    CommandInfo,
    DecodeError,
    EncodeError,
    FrameworkInfo,
    Kill,
    Operation,
    Ping,
    RunTask,
    StatusUpdate,
    TaskInfo,
    TaskState,
    TaskStatus,
    TransitionError,
    can_transition,
    check_transition,
    decode,
    encode,
)
from mesoslite.resources import Resources


def _run_task() -> RunTask:
    task = TaskInfo(
        name="web",
        task_id="web-1",
        agent_id="m-S1",
        resources=Resources.parse("cpus:0.5;mem:64;ports:[31000-31001]"),
        command=CommandInfo(value="echo hi", environment={"A": "1"}),
        labels={"tier": "front"},
    )
    return RunTask(framework_info=FrameworkInfo(user="root", name="fw", id="m-0001"), task=task)


def test_round_trip_nested_message() -> None:
    """A nested message decodes to an equal object."""
    msg = _run_task()
    assert decode(encode(msg)) == msg


def test_round_trip_every_registered_type_with_defaults() -> None:
    """Every registered message type that has no required fields round-trips."""
    import attrs

    for cls in MESSAGE_TYPES.values():
        if all(f.default is not attrs.NOTHING for f in attrs.fields(cls)):
            assert decode(encode(cls())) == cls()


def _envelope(name: str, body: object, version: int = 1) -> bytes:
    return msgpack.packb([version, name, body], use_bin_type=True)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", "frame"),
        (b"\xc1", "frame"),
        (msgpack.packb({"a": 1}), "frame"),
        (msgpack.packb([1, "Ping"]), "frame"),
        (_envelope("Ping", {}, version=2), "version"),
        (_envelope("NoSuchMessage", {}), "type"),
        (msgpack.packb([1, 7, {}]), "type"),
        (_envelope("Ping", []), "Ping"),
        (_envelope("Ping", {"connected": 1}), "Ping.connected"),
        (_envelope("Ping", {"bogus": True}), "Ping.bogus"),
        (_envelope("Kill", {"framework_id": "f"}), "Kill.task_id"),
        (_envelope("Kill", {"framework_id": "f", "task_id": "../../etc"}), "Kill.task_id"),
        (_envelope("Kill", {"framework_id": "f", "task_id": ""}), "Kill.task_id"),
        (_envelope("Decline", {"framework_id": "f", "offer_ids": "o1"}), "Decline.offer_ids"),
        (
            _envelope("Decline", {"framework_id": "f", "offer_ids": [1]}),
            "Decline.offer_ids[0]",
        ),
        (
            _envelope("Decline", {"framework_id": "f", "offer_ids": [],
                                  "filters": {"refuse_seconds": float("nan")}}),
            "Decline.filters.refuse_seconds",
        ),
        (
            _envelope("Update", {"status": {"task_id": "t", "state": "TASK_BOGUS"}}),
            "Update.status.state",
        ),
    ],
)
def test_malformed_input_names_the_field(data: bytes, field: str) -> None:
    """Malformed frames raise DecodeError whose field says where the fault is."""
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.field == field


def test_truncated_message_is_refused() -> None:
    """Every truncation of a valid message is refused with DecodeError only."""
    data = encode(_run_task())
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:cut])


def test_resources_errors_name_the_nested_field() -> None:
    """A bad resource inside a task names the path down to the resource."""
    body = {
        "framework_info": {"user": "u", "name": "n"},
        "task": {"name": "x", "task_id": "t", "agent_id": "a", "resources": [{"name": "cpus"}]},
    }
    with pytest.raises(DecodeError) as info:
        decode(_envelope("RunTask", body))
    assert info.value.field.startswith("RunTask.task.resources[0]")


def test_oversized_messages_are_refused_both_ways() -> None:
    """Messages over the size limit are refused when encoding and decoding."""
    big = StatusUpdate(
        framework_id="f",
        status=TaskStatus(task_id="t", state=TaskState.TASK_RUNNING, data=b"x" * 2048),
    )
    with pytest.raises(EncodeError):
        encode(big, max_size=1024)
    with pytest.raises(DecodeError) as info:
        decode(encode(big), max_size=1024)
    assert info.value.field == "frame"
    assert MAX_MESSAGE_SIZE >= 1 << 20


def test_unregistered_objects_are_not_encoded() -> None:
    """Only registered message classes can be encoded."""
    with pytest.raises(EncodeError):
        encode(CommandInfo(value="x"))


def test_accept_with_operations_round_trips() -> None:
    """An Accept carrying LAUNCH operations survives the wire."""
    task = _run_task().task
    msg = Accept(framework_id="f-1", offer_ids=("o-1",), operations=(Operation("LAUNCH", (task,)),))
    assert decode(encode(msg)) == msg


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from([*sorted(MESSAGE_TYPES), "Nope"]), body=json_like)
def test_arbitrary_bodies_only_raise_decode_error(name: str, body: object) -> None:
    """Any body for any type name decodes or raises DecodeError, nothing else."""
    data = msgpack.packb([1, name, body], use_bin_type=True)
    try:
        msg = decode(data)
    except DecodeError:
        return
    assert type(msg).__name__ == name


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    """Random bytes decode or raise DecodeError, nothing else."""
    try:
        decode(data)
    except DecodeError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    task_id=st.from_regex(r"\A[A-Za-z0-9_.\-]{1,40}\Z").filter(lambda s: s not in (".", "..")),
    framework_id=st.from_regex(r"\A[a-z0-9\-]{1,20}\Z"),
)
def test_kill_round_trips_for_valid_ids(task_id: str, framework_id: str) -> None:
    """Any valid id survives encode/decode unchanged."""
    msg = Kill(framework_id=framework_id, task_id=task_id)
    assert decode(encode(msg)) == msg


def test_fourteen_states_and_terminal_set() -> None:
    """There are the fourteen Mesos task states, eight of them terminal."""
    assert len(TaskState) == 14
    assert len(TERMINAL_STATES) == 8
    assert TaskState.TASK_UNREACHABLE not in TERMINAL_STATES
    assert TaskState.TASK_FINISHED.is_terminal


def test_transitions() -> None:
    """Legal transitions pass; leaving a terminal state is illegal."""
    assert can_transition(TaskState.TASK_STAGING, TaskState.TASK_STARTING)
    assert can_transition(TaskState.TASK_RUNNING, TaskState.TASK_RUNNING)
    assert can_transition(TaskState.TASK_UNREACHABLE, TaskState.TASK_RUNNING)
    assert not can_transition(TaskState.TASK_RUNNING, TaskState.TASK_STAGING)
    for terminal in TERMINAL_STATES:
        for state in TaskState:
            assert not can_transition(terminal, state)
    with pytest.raises(TransitionError, match="TASK_FINISHED -> TASK_RUNNING"):
        check_transition("t1", TaskState.TASK_FINISHED, TaskState.TASK_RUNNING)


def test_ping_default_round_trip() -> None:
    """The smallest message round-trips."""
    assert decode(encode(Ping())) == Ping()
