"""The v1 APIs' pure parts: RecordIO framing, call parsing and event shapes."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mesoslite.api.executor_calls import (
    executor_event,
    executor_message,
    parse_executor_call,
)
from mesoslite.api.launch_check import check_launch
from mesoslite.api.operator_view import feed_event
from mesoslite.api.recordio import Decoder, RecordIOError, encode
from mesoslite.api.scheduler_calls import Unsupported, event_json, parse_call
from mesoslite.api.v1json import (
    V1Error,
    command_json,
    ip_uint32,
    parse_framework_info,
    parse_task_info,
)
from mesoslite.protocol import (
    Accept,
    Acknowledge,
    Decline,
    Error,
    ExecutorToFrameworkMessage,
    Failure,
    FrameworkToExecutorMessage,
    Heartbeat,
    Kill,
    KillPolicy,
    KillTask,
    MasterInfo,
    Offer,
    Offers,
    Operation,
    Reason,
    Reconcile,
    RegisterExecutor,
    ReregisterExecutor,
    Rescind,
    Revive,
    Shutdown,
    ShutdownExecutor,
    Source,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    Subscribe,
    Subscribed,
    Suppress,
    TaskState,
    TaskStatus,
    Teardown,
    Update,
)
from mesoslite.resources import Resources

FID = {"value": "F1"}


def test_recordio_round_trip_in_arbitrary_pieces() -> None:
    """Records split across any chunk boundaries come out whole and in order."""
    records = [b'{"type":"HEARTBEAT"}', b"x" * 1000, b"\n12\n"]
    stream = b"".join(encode(r) for r in records)
    assert stream.startswith(b'20\n{"type"') and not stream.endswith(b"\n\n")
    for size in (1, 2, 7, 1024, len(stream)):
        decoder = Decoder()
        out: list[bytes] = []
        for i in range(0, len(stream), size):
            out += decoder.feed(stream[i:i + size])
        assert out == records and decoder.pending == 0


@pytest.mark.parametrize("data", [b"abc\n", b"0\n", b"-1\n", b"9" * 30, b"99999999999\n"])
def test_recordio_refuses_bad_lengths(data: bytes) -> None:
    """A non-decimal, zero, negative or oversized length is refused, never buffered."""
    with pytest.raises(RecordIOError):
        Decoder(max_record=1024).feed(data)


def test_recordio_never_encodes_an_empty_record() -> None:
    """An empty record is not RecordIO."""
    with pytest.raises(RecordIOError):
        encode(b"")


def _task(task_id: str = "t1") -> dict[str, Any]:
    return {"name": "n", "task_id": {"value": task_id}, "agent_id": {"value": "A1"},
            "command": {"value": "echo hi"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": 31000, "end": 31001}]}}],
            "kill_policy": {"grace_period": {"nanoseconds": 2_500_000_000}},
            "labels": {"labels": [{"key": "k", "value": "v"}]}}


def test_every_supported_scheduler_call_becomes_its_core_message() -> None:
    """Each v1 call type parses into the message the master core handles."""
    uuid = base64.b64encode(b"\x01\x02").decode()
    calls: list[tuple[dict[str, Any], type | None]] = [
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "u", "name": "n", "roles": ["a"], "capabilities": [{"type": "MULTI_ROLE"}],
            "failover_timeout": 60}}}, Subscribe),
        ({"type": "TEARDOWN"}, Teardown),
        ({"type": "ACCEPT", "accept": {"offer_ids": [{"value": "O1"}], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [_task()]}}],
            "filters": {"refuse_seconds": 10}}}, Accept),
        ({"type": "DECLINE", "decline": {"offer_ids": [{"value": "O1"}]}}, Decline),
        ({"type": "REVIVE", "revive": {"roles": ["a"]}}, Revive),
        ({"type": "SUPPRESS", "suppress": {"roles": ["a"]}}, Suppress),
        ({"type": "KILL", "kill": {"task_id": {"value": "t"}}}, Kill),
        ({"type": "SHUTDOWN", "shutdown": {"executor_id": {"value": "e"},
                                           "agent_id": {"value": "A"}}}, Shutdown),
        ({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": {"value": "A"},
                                                 "task_id": {"value": "t"}, "uuid": uuid}},
         Acknowledge),
        ({"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "t"}}]}},
         Reconcile),
        ({"type": "MESSAGE", "message": {"agent_id": {"value": "A"},
                                         "executor_id": {"value": "e"}, "data": uuid}},
         FrameworkToExecutorMessage),
        ({"type": "REQUEST", "request": {"requests": []}}, None),
        ({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": {
            "user": "u", "name": "n2", "id": FID}}}, Subscribe),
    ]
    for body, kind in calls:
        if body["type"] != "SUBSCRIBE":
            body = {**body, "framework_id": FID}
        call = parse_call(body)
        assert call.type == body["type"]
        assert (type(call.message) if call.message is not None else None) is kind
    accept = parse_call(calls[2][0] | {"framework_id": FID}).message
    task = accept.operations[0].task_infos[0]
    assert task.resources == Resources.parse("cpus:0.5;ports:[31000-31001]")
    assert task.kill_policy.grace_period == 2.5 and task.labels == {"k": "v"}
    assert accept.filters.refuse_seconds == 10
    ack = parse_call(calls[8][0] | {"framework_id": FID}).message
    assert ack.uuid == b"\x01\x02"


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "KILL", "framework_id": FID, "kill": {"task_id": {"value": ""}}},
     "kill.task_id.value"),
    ({"type": "KILL", "framework_id": FID, "kill": {"task_id": "t"}}, "kill.task_id"),
    ({"type": "KILL", "framework_id": FID, "kill": {"task_id": {"value": "../x"}}},
     "kill.task_id.value"),
    ({"type": "ACCEPT", "framework_id": FID, "accept": {"offer_ids": [{"value": "O"}] * 2}},
     "accept.offer_ids"),
    ({"type": "ACCEPT", "framework_id": FID, "accept": {"offer_ids": [], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [{**_task(), "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": "x"}}]}]}}]}},
     "accept.operations[0].launch.task_infos[0].resources"),
    ({"type": "ACCEPT", "framework_id": FID, "accept": {"offer_ids": [], "operations": [
        {"type": "EXPLODE"}]}}, "accept.operations[0].type"),
    ({"type": "DECLINE", "framework_id": FID, "decline": {
        "offer_ids": [], "filters": {"refuse_seconds": -1}}}, "decline.filters.refuse_seconds"),
    ({"type": "REVIVE", "framework_id": FID, "kill": {}}, "kill"),
    ({"type": "RECONCILE", "framework_id": FID, "reconcile": {"tasks": [{}]}},
     "reconcile.tasks[0].task_id"),
    ({"type": "TEARDOWN"}, "framework_id"),
    ({"type": "SUBSCRIBE", "framework_id": {"value": "X"}, "subscribe": {
        "framework_info": {"user": "u", "name": "n"}}}, "framework_id"),
])
def test_malformed_scheduler_calls_name_the_field(body: dict[str, Any], field: str) -> None:
    """Wrong types, missing ids and unknown shapes are refused naming the JSON path."""
    with pytest.raises(V1Error) as error:
        parse_call(body)
    assert error.value.field.startswith(field), error.value


@pytest.mark.parametrize("body", [
    {"type": "ACCEPT_INVERSE_OFFERS", "framework_id": FID},
    {"type": "RECONCILE_OPERATIONS", "framework_id": FID},
    {"type": "ACCEPT", "framework_id": FID, "accept": {"offer_ids": [], "operations": [
        {"type": "RESERVE"}]}},
])
def test_calls_we_do_not_serve_are_unsupported(body: dict[str, Any]) -> None:
    """Mesos calls and operations we lack are Unsupported (501), not silently ignored."""
    with pytest.raises(Unsupported):
        parse_call(body)


def test_task_fields_we_cannot_honour_are_refused() -> None:
    """A task with a URI the fetcher cannot take, two launch kinds, or no command is refused
    by name; a good URI is kept with Mesos's defaults."""
    with pytest.raises(V1Error, match=r"t\.command\.uris\[0\]\.value"):
        parse_task_info({**_task(), "command": {"value": "x", "uris": [{"value": "u"}]}}, "t")
    with pytest.raises(V1Error, match=r"t\.command\.uris\[0\]\.output_file"):
        parse_task_info({**_task(), "command": {"value": "x", "uris": [
            {"value": "http://h/a", "output_file": "../a"}]}}, "t")
    with pytest.raises(V1Error, match=r"t\.command\.uris\[0\]\.sha"):
        parse_task_info({**_task(), "command": {"value": "x", "uris": [
            {"value": "http://h/a", "sha": "1"}]}}, "t")
    kept = parse_task_info({**_task(), "command": {"value": "x", "uris": [
        {"value": "https://h/a.tgz", "cache": True}]}}, "t")
    assert kept.command is not None
    uri = kept.command.uris[0]
    assert (uri.value, uri.extract, uri.executable, uri.cache) == ("https://h/a.tgz", True,
                                                                   False, True)
    with pytest.raises(V1Error, match="exactly one"):
        parse_task_info({**_task(), "command": None} | {"command": {}, "executor": {}}, "t")
    with pytest.raises(V1Error, match="discovery"):
        parse_task_info({**_task(), "discovery": {}}, "t")
    info = parse_framework_info({"user": "u", "name": "n", "role": "web"}, "f")
    assert info.roles == ("web",)


def test_scheduler_events_have_mesos_shapes() -> None:
    """Each message the core sends a framework renders as its v1 event."""
    master = MasterInfo("M", "127.0.0.1", 5050, "localhost", "0.1.0", "tcp://x", "http://y")
    status = TaskStatus("t", TaskState.TASK_RUNNING, source=Source.SOURCE_EXECUTOR,
                        reason=Reason.REASON_RECONCILIATION, agent_id="A", uuid=b"\xff",
                        healthy=True, timestamp=1.5)
    offer = Offer("O", "F", "A", "h", "r", Resources.parse("cpus:1;ports:[1-2]"), {"k": "v"})
    shapes = {
        "SUBSCRIBED": Subscribed("F", 15.0, master),
        "OFFERS": Offers((offer,)),
        "RESCIND": Rescind("O"),
        "UPDATE": Update(status),
        "MESSAGE": ExecutorToFrameworkMessage("F", "A", "e", b"hi"),
        "FAILURE": Failure("A", "e", 9),
        "ERROR": Error("boom"),
        "HEARTBEAT": Heartbeat(),
    }
    events = {kind: event_json(message) for kind, message in shapes.items()}
    for kind, event in events.items():
        assert event is not None and event["type"] == kind
    sub = events["SUBSCRIBED"]["subscribed"]  # type: ignore[index]
    assert sub["framework_id"] == {"value": "F"} and sub["heartbeat_interval_seconds"] == 15.0
    assert sub["master_info"]["ip"] == ip_uint32("127.0.0.1") == 16777343
    update = events["UPDATE"]["update"]["status"]  # type: ignore[index]
    assert update == {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "timestamp": 1.5,
                      "source": "SOURCE_EXECUTOR", "reason": "REASON_RECONCILIATION",
                      "agent_id": {"value": "A"}, "uuid": "/w==", "healthy": True}
    out = events["OFFERS"]["offers"]["offers"][0]  # type: ignore[index]
    assert out["allocation_info"] == {"role": "r"}
    assert {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 2}]},
            "allocation_info": {"role": "r"}} in [
        {k: v for k, v in r.items() if k != "role"} for r in out["resources"]]
    assert events["MESSAGE"]["message"]["data"] == "aGk="  # type: ignore[index]
    assert events["FAILURE"]["failure"]["status"] == 9  # type: ignore[index]


def test_operator_feed_event_for_a_removed_agent() -> None:
    """The operator stream's AGENT_REMOVED names the agent."""
    assert feed_event(None, "AGENT_REMOVED", "A7") == {  # type: ignore[arg-type]
        "type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "A7"}}}


@pytest.mark.parametrize(("info", "field"), [
    ({"user": "u", "name": "n", "roles": []}, "f.roles"),
    ({"user": "u", "name": "n", "roles": ["a", "a"]}, "f.roles"),
    ({"user": "u", "name": "n", "roles": ["a/../b"]}, "f.roles[0]"),
    ({"user": "u", "name": "n", "failover_timeout": -1}, "f.failover_timeout"),
    ({"user": "u", "name": "n", "checkpoint": "yes"}, "f.checkpoint"),
    ({"user": "u", "name": "n", "id": {"value": 3}}, "f.id.value"),
])
def test_bad_framework_infos_name_the_field(info: dict[str, Any], field: str) -> None:
    """A FrameworkInfo the master would refuse is refused before any stream opens."""
    with pytest.raises(V1Error) as error:
        parse_framework_info(info, "f")
    assert error.value.field == field


def test_executor_calls_become_agent_messages() -> None:
    """SUBSCRIBE (fresh or with unacknowledged state), UPDATE, MESSAGE, HEARTBEAT."""
    base = {"framework_id": FID, "executor_id": {"value": "E"}}
    uuid = base64.b64encode(b"u1").decode()
    status = {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": uuid}
    fresh = executor_message(parse_executor_call({**base, "type": "SUBSCRIBE"}), "C")
    assert fresh == RegisterExecutor("F1", "E", "C")
    again = executor_message(parse_executor_call({**base, "type": "SUBSCRIBE", "subscribe": {
        "unacknowledged_tasks": [_task()],
        "unacknowledged_updates": [{"framework_id": FID, "status": status}]}}), "C")
    assert isinstance(again, ReregisterExecutor) and again.container_id == "C"
    assert again.tasks[0].task_id == "t1" and again.updates[0].status.uuid == b"u1"
    update = executor_message(parse_executor_call({**base, "type": "UPDATE",
                                                   "update": {"status": status}}), "C")
    assert isinstance(update, StatusUpdate) and update.status.source is Source.SOURCE_EXECUTOR
    assert update.status.executor_id == "E"
    message = executor_message(parse_executor_call({**base, "type": "MESSAGE",
                                                    "message": {"data": uuid}}), "C")
    assert message == ExecutorToFrameworkMessage("F1", "", "E", b"u1")
    assert executor_message(parse_executor_call({**base, "type": "HEARTBEAT"}), "C") == \
        Heartbeat("E")


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"},
                                              "state": "TASK_RUNNING"}}}, "update.status.uuid"),
    ({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"}, "state": "BOGUS",
                                              "uuid": "dQ=="}}}, "update.status.state"),
    ({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_LOST",
                                              "uuid": "dQ==", "source": "SOURCE_MASTER"}}},
     "update.status.source"),
    ({"type": "UPDATE", "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_LOST",
                                              "uuid": "dQ==", "executor_id": {"value": "X"}}}},
     "update.status.executor_id"),
    ({"type": "MESSAGE", "message": {"data": 3}}, "message.data"),
    ({"type": "HEARTBEAT", "heartbeat": {}}, "heartbeat"),
])
def test_malformed_executor_calls_name_the_field(body: dict[str, Any], field: str) -> None:
    """Bad executor calls are refused naming the field."""
    with pytest.raises(V1Error) as error:
        executor_message(parse_executor_call(
            {"framework_id": FID, "executor_id": {"value": "E"}, **body}), "C")
    assert error.value.field == field


def test_agent_messages_become_executor_events() -> None:
    """What the agent sends an executor renders as v1 executor events."""
    ack = executor_event(StatusUpdateAcknowledgement("A", "F", "t", b"\x01"), "C")
    assert ack == {"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": "t"},
                                                            "uuid": "AQ=="}}
    kill = executor_event(KillTask("F", "t", KillPolicy(2.0)), "C")
    assert kill == {"type": "KILL", "kill": {"task_id": {"value": "t"}, "kill_policy": {
        "grace_period": {"nanoseconds": 2_000_000_000}}}}
    assert executor_event(ShutdownExecutor("F", "E"), "C") == {"type": "SHUTDOWN"}
    assert executor_event(FrameworkToExecutorMessage("F", "A", "E", b"hi"), "C") == {
        "type": "MESSAGE", "message": {"data": "aGk="}}


def _exec_task(task_id: str, executor_id: str) -> Any:
    return parse_task_info({
        "task_id": {"value": task_id}, "agent_id": {"value": "A"},
        "executor": {"executor_id": {"value": executor_id}, "command": {"value": "x"},
                     "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}]},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}}]}, "t")


def test_check_launch_counts_a_new_executor_once_and_names_the_field() -> None:
    """Tasks of one new executor take its resources once; a running one takes none."""
    offers = [Offer("O", "F", "A", "h", "*", Resources.parse("cpus:1"))]
    two = Accept("F", ("O",), (Operation("LAUNCH", (_exec_task("a", "E"),
                                                     _exec_task("b", "E"))),))
    check_launch(two, offers, {"A"}, set(), set())  # 0.5 + 0.25 + 0.25 fits in 1
    three = Accept("F", ("O",), (Operation("LAUNCH", (
        _exec_task("a", "E"), _exec_task("b", "E"), _exec_task("c", "E2"))),))
    with pytest.raises(V1Error) as refused:
        check_launch(three, offers, {"A"}, set(), set())
    assert refused.value.field == "accept.operations[0].launch.task_infos[2].resources"
    assert "new executor" in refused.value.message
    check_launch(three, offers, {"A"}, set(), {"E", "E2"})  # running executors: 0.75
    with pytest.raises(V1Error) as refused:
        check_launch(two, offers, {"A"}, {"b"}, set())
    assert refused.value.field == "accept.operations[0].launch.task_infos[1].task_id"
    two_agents = [*offers, Offer("P", "F", "B", "h", "*", Resources.parse("cpus:1"))]
    with pytest.raises(V1Error) as refused:
        check_launch(two, two_agents, {"A", "B"}, set(), set())
    assert refused.value.field == "accept.offer_ids[1]"


def test_secret_variables_are_references_read_and_shown_without_values() -> None:
    """SECRET variables with a REFERENCE become secret_environment; VALUE secrets (their
    value would travel in the clear) and keys are refused naming the field; rendering
    shows the reference only."""
    env = {"variables": [{"name": "A", "value": "1"}, {
        "name": "DB", "type": "SECRET",
        "secret": {"type": "REFERENCE", "reference": {"name": "/prod/db"}}}]}
    task = parse_task_info({**_task(), "command": {"value": "x", "environment": env}}, "t")
    assert task.command is not None
    assert task.command.environment == {"A": "1"}
    assert task.command.secret_environment == {"DB": "/prod/db"}
    shown = command_json(task.command)["environment"]["variables"]
    assert shown[1] == {"name": "DB", "type": "SECRET", "secret": {
        "type": "REFERENCE", "reference": {"name": "/prod/db"}}}
    for secret, field in (({"type": "VALUE", "value": {"data": "aGk="}}, "secret.type"),
                          ({"type": "REFERENCE", "reference": {"name": "n", "key": "k"}},
                           "secret.reference.key")):
        bad = {"variables": [{"name": "DB", "type": "SECRET", "secret": secret}]}
        with pytest.raises(V1Error) as caught:
            parse_task_info({**_task(), "command": {"value": "x", "environment": bad}}, "t")
        assert caught.value.field == f"t.command.environment.variables[0].{field}"
