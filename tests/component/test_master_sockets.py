"""A real MasterProcess on loopback, driven by raw DealerClient peers and an HTTP client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import msgpack
import zmq
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from mesoslite.master import MasterConfig
from mesoslite.master.http import YIELD_EVERY, state_json
from mesoslite.master.main import MasterProcess
from mesoslite.protocol import Accept as AcceptCall
from mesoslite.protocol import (
    Acknowledge,
    AgentInfo,
    AgentRegistered,
    CommandInfo,
    Failure,
    FrameworkInfo,
    Offers,
    Operation,
    Ping,
    Pong,
    ProtocolError,
    RegisterAgent,
    RunTask,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    Subscribe,
    Subscribed,
    TaskInfo,
    TaskState,
    TaskStatus,
    Update,
    decode_frame,
)
from mesoslite.resources import Resources
from mesoslite.transport import DealerClient
from tests.support import promtext
from tests.support.procs import until

AGENT_RESOURCES = "cpus:2;mem:1024;ports:[31000-31005]"


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def _start(**config: Any) -> MasterProcess:
    config.setdefault("allocation_interval", 0.05)
    master = MasterProcess(MasterConfig(http_port=0, zmq_port=0, **config))
    await master.start()
    return master


class Peer:
    """A raw protocol peer: a DealerClient and everything it received."""

    def __init__(self, master: MasterProcess) -> None:
        self.got: list[Any] = []
        self._taken: set[int] = set()
        self.client = DealerClient(self.got.append)
        self.client.connect(master.zmq_endpoint)
        self.client.start()

    def send(self, msg: Any) -> None:
        """Send one message to the master."""
        assert self.client.send(msg)

    async def next(self, kind: type, timeout: float = 5.0,
                   where: Callable[[Any], bool] = lambda m: True) -> Any:
        """The first not yet taken received message of ``kind`` matching ``where``."""
        def find() -> Any:
            for i, msg in enumerate(self.got):
                if i not in self._taken and isinstance(msg, kind) and where(msg):
                    self._taken.add(i)
                    return msg
            return None
        return await until(find, timeout, f"a {kind.__name__} message")

    def close(self) -> None:
        """Close the socket."""
        self.client.close()


async def _get(master: MasterProcess, path: str, **kwargs: Any) -> HTTPResponse:
    url = f"http://127.0.0.1:{master.http_port}{path}"
    if kwargs.get("method", "GET") in ("POST", "PUT"):  # writes are JSON (forms are refused)
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
    return await AsyncHTTPClient().fetch(url, raise_error=False, follow_redirects=False,
                                         **kwargs)


async def _json(master: MasterProcess, path: str) -> Any:
    response = await _get(master, path)
    assert response.code == 200, (path, response.code, response.body[:200])
    return json.loads(response.body)


async def _register(master: MasterProcess, hostname: str = "agent-1") -> tuple[Peer, str]:
    agent = Peer(master)
    agent.send(RegisterAgent(AgentInfo(hostname=hostname,
                                       resources=Resources.parse(AGENT_RESOURCES))))
    return agent, (await agent.next(AgentRegistered)).agent_id


async def _subscribe(master: MasterProcess, **info: Any) -> tuple[Peer, str]:
    scheduler = Peer(master)
    scheduler.send(Subscribe(FrameworkInfo(user="tester", name="fw", **info)))
    return scheduler, (await scheduler.next(Subscribed)).framework_id


async def _launch(scheduler: Peer, framework_id: str, task_id: str,
                  timeout: float = 5.0) -> Any:
    offer = (await scheduler.next(Offers, timeout=timeout)).offers[0]
    task = TaskInfo(name=task_id, task_id=task_id, agent_id=offer.agent_id,
                    resources=Resources.parse("cpus:1;mem:128"),
                    command=CommandInfo(value="sleep 1"))
    scheduler.send(AcceptCall(framework_id=framework_id, offer_ids=(offer.id,),
                              operations=(Operation("LAUNCH", (task,)),)))
    return offer


def test_task_flows_between_fake_agent_and_fake_scheduler() -> None:
    """Register, subscribe, offer, accept, RunTask, updates, acks — all over real sockets."""

    async def main() -> None:
        master = await _start()
        try:
            agent, agent_id = await _register(master)
            scheduler, framework_id = await _subscribe(master)
            await _launch(scheduler, framework_id, "t1")
            run = await agent.next(RunTask)
            assert (run.task.task_id, run.framework_info.id) == ("t1", framework_id)
            for n, state in enumerate((TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                                       TaskState.TASK_FINISHED)):
                uuid = os.urandom(16)
                agent.send(StatusUpdate(framework_id=framework_id, status=TaskStatus(
                    task_id="t1", state=state, uuid=uuid, agent_id=agent_id)))
                update = await scheduler.next(Update)
                assert (update.status.state, update.status.uuid) == (state, uuid)
                scheduler.send(Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                           task_id="t1", uuid=uuid))
                ack = await agent.next(StatusUpdateAcknowledgement)
                assert (ack.task_id, ack.uuid, n) == ("t1", uuid, n)
            state = await _json(master, "/state")
            [framework] = state["frameworks"]
            assert framework["tasks"] == []
            assert [t["state"] for t in framework["completed_tasks"]] == ["TASK_FINISHED"]
            snapshot = await _json(master, "/metrics/snapshot")
            assert snapshot["master/tasks_finished"] == 1
            assert snapshot["master/messages_status_update"] == 3
            assert snapshot["master/invalid_messages"] == 0
            # One launch reached TASK_RUNNING: one observation, in every bucket up to +Inf.
            samples = promtext.parse((await _get(master, "/metrics")).body.decode())
            name = "mesoslite_master_task_launch_to_running_seconds"
            assert samples[(f"{name}_count", ())] == 1.0
            assert samples[(f"{name}_sum", ())] >= 0.0
            buckets = sorted((float(dict(labels)["le"]), value) for labels, value
                             in promtext.series(samples, f"{name}_bucket").items())
            assert buckets[-1] == (float("inf"), 1.0)
            counts = [value for _, value in buckets]
            assert counts == sorted(counts) and len(counts) > 10
            agent.close()
            scheduler.close()
        finally:
            await master.stop()

    _run(main)


def _raw_dealer(master: MasterProcess) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(master.zmq_endpoint)
    return sock


async def _recv_all(sock: zmq.Socket, count: int, timeout: float = 5.0) -> list[Any]:
    replies: list[Any] = []

    def poll() -> bool:
        while sock.poll(0):
            replies.extend(decode_frame(sock.recv()))  # the master batches per loop turn
        return len(replies) >= count

    await until(poll, timeout, f"{count} replies on the raw socket")
    return replies


def test_garbage_on_the_zmq_port_is_refused_counted_and_survived() -> None:
    """Bad frames get ProtocolErrors and are counted; the master keeps serving."""

    async def main() -> None:
        limit = 64 * 1024
        master = await _start(max_message_size=limit)
        try:
            raw = _raw_dealer(master)
            envelope = msgpack.packb([1, "Subscribe", {"framework_info": 5}])
            garbage = [
                [os.urandom(64)],  # random bytes
                [msgpack.packb([1, "Ping", {"connected": True}])[:-3]],  # truncated
                [envelope],  # wrong field type
                [msgpack.packb([1, "NoSuchMessage", {}])],  # unknown type
                [msgpack.packb([7, "Ping", {}])],  # wrong version
                [b"\x00" * (limit + 100)],  # over the size limit
                [b"a", b"b"],  # multi-frame
                [msgpack.packb([1, "Pong", {"agent_id": "nobody"}])],  # not registered
            ]
            for frames in garbage:
                raw.send_multipart(frames)
            replies = await _recv_all(raw, len(garbage))
            assert all(isinstance(r, ProtocolError) for r in replies)
            assert {r.field for r in replies} >= {"frame", "Subscribe.framework_info", "type",
                                                  "version"}
            assert replies[-1].code == "NOT_REGISTERED"
            # Beyond twice the limit ZeroMQ drops the peer unread (not counted).
            raw.send(b"\x01" * (2 * limit + 64 * 1024))
            raw.close()
            snapshot = await _json(master, "/metrics/snapshot")
            assert snapshot["master/invalid_messages"] == len(garbage)
            # Still serving: a whole offer cycle works.
            _agent, _agent_id = await _register(master)
            scheduler, _framework_id = await _subscribe(master)
            assert (await scheduler.next(Offers)).offers
            assert (await _get(master, "/health")).code == 200
        finally:
            await master.stop()

    _run(main)


def test_bad_http_input_gets_400_with_the_field() -> None:
    """Malformed HTTP requests are answered 400 naming the field; serving continues."""

    async def main() -> None:
        master = await _start()
        try:
            cases = [
                ("/weights", "PUT", b"not json", "body"),
                ("/weights", "PUT", b'{"role": "x"}', "body"),
                ("/weights", "PUT", b'[{"role": "web", "weight": -1}]', "[0].weight"),
                ("/weights", "PUT", b'[{"role": "a b", "weight": 1}]', "[0].role"),
                ("/weights", "PUT", b'[{"role": "web", "weight": 1, "x": 1}]', "[0].x"),
                ("/teardown", "POST", b"", "body"),
                ("/teardown", "POST", b'{"frameworkId": 7}', "framework_id"),
                ("/tasks?limit=abc", "GET", None, "limit"),
                ("/tasks?order=sideways", "GET", None, "order"),
            ]
            missing = await _get(master, "/no/such/endpoint")
            assert missing.code == 404
            assert json.loads(missing.body)["field"] == "path"
            wrong = await _get(master, "/state", method="POST", body=b"x")
            assert wrong.code == 405
            assert "message" in json.loads(wrong.body)
            for path, method, body, field in cases:
                response = await _get(master, path, method=method, body=body)
                assert response.code == 400, (path, body, response.code)
                error = json.loads(response.body)
                assert error["field"] == field, (path, body, error)
                assert error["message"]
            form = await _get(master, "/teardown", method="POST", body=b"frameworkId=nope",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert form.code == 415  # forms only with HTTP authentication on
            assert json.loads(form.body)["field"] == "Content-Type"
            reader, writer = await asyncio.open_connection("127.0.0.1", master.http_port)
            writer.write(b"\x00\xffGARBAGE \x01\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5.0)  # the server answers or closes
            writer.close()
            assert (await _get(master, "/health")).code == 200
            assert (await _json(master, "/state"))["slaves"] == []
        finally:
            await master.stop()

    _run(main)


STATE_KEYS = {"version", "id", "pid", "hostname", "leader", "leader_info", "activated_slaves",
              "deactivated_slaves", "start_time", "elected_time", "cluster", "flags", "slaves",
              "frameworks", "completed_frameworks", "unregistered_frameworks", "build_date"}
AGENT_KEYS = {"id", "hostname", "pid", "resources", "used_resources", "offered_resources",
              "unreserved_resources", "attributes", "active", "registered_time", "version"}
FRAMEWORK_KEYS = {"id", "name", "user", "roles", "role", "active", "connected",
                  "registered_time", "failover_timeout", "checkpoint", "capabilities",
                  "hostname", "principal", "webui_url", "resources", "used_resources",
                  "offered_resources", "tasks", "completed_tasks", "offers"}
TASK_KEYS = {"id", "name", "framework_id", "executor_id", "slave_id", "state", "resources",
             "statuses", "labels"}


def test_state_and_other_endpoints_are_mesos_shaped() -> None:
    """/state and friends carry the Mesos fields; weights, teardown and redirect work."""

    async def main() -> None:
        master = await _start(cluster="test-cluster")
        try:
            agent, agent_id = await _register(master)
            scheduler, framework_id = await _subscribe(master, roles=("web",))
            await _launch(scheduler, framework_id, "t1")
            await agent.next(RunTask)
            state = await _json(master, "/state")
            assert set(state) >= STATE_KEYS
            assert state["cluster"] == "test-cluster"
            assert state["leader_info"]["id"] == master.info.id
            [slave] = state["slaves"]
            assert set(slave) >= AGENT_KEYS
            assert slave["id"] == agent_id
            assert slave["used_resources"]["cpus"] == 1.0
            [framework] = state["frameworks"]
            assert set(framework) >= FRAMEWORK_KEYS
            assert framework["roles"] == ["web"]
            [task] = framework["tasks"]
            assert set(task) >= TASK_KEYS
            assert (task["state"], task["slave_id"]) == ("TASK_STAGING", agent_id)
            assert (await _json(master, "/master/state"))["id"] == state["id"]
            summary = await _json(master, "/state-summary")
            assert summary["slaves"][0]["TASK_STAGING"] == 1
            assert await _json(master, "/slaves") == await _json(master, "/agents")
            assert (await _json(master, "/tasks"))["tasks"][0]["id"] == "t1"
            frameworks = await _json(master, "/frameworks")
            assert frameworks["frameworks"][0]["id"] == framework_id
            roles = {r["name"]: r for r in (await _json(master, "/roles"))["roles"]}
            assert roles["web"]["frameworks"] == [framework_id]
            put = await _get(master, "/weights", method="PUT",
                             body=json.dumps([{"role": "web", "weight": 2.5}]))
            assert put.code == 200
            assert {"role": "web", "weight": 2.5} in await _json(master, "/weights")
            version = await _json(master, "/version")
            assert {"version", "build_date"} <= set(version)
            redirect = await _get(master, "/redirect")
            assert redirect.code == 307
            assert redirect.headers["Location"].endswith(f":{master.http_port}")
            assert "/state" in (await _json(master, "/"))["endpoints"]
            down = await _get(master, "/teardown", method="POST",
                              body=json.dumps({"frameworkId": framework_id}))
            assert down.code == 200
            state = await _json(master, "/state")
            assert state["frameworks"] == []
            assert state["completed_frameworks"][0]["id"] == framework_id
        finally:
            await master.stop()

    _run(main)


_PROM_LINE = re.compile(
    r"^(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*"
    r"|# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)"
    r"|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[+-]Inf))$"
)


def test_metrics_is_prometheus_text() -> None:
    """/metrics is valid exposition text with one TYPE per sample, names mesoslite_..."""

    async def main() -> None:
        master = await _start()
        try:
            await _register(master)
            response = await _get(master, "/metrics")
            assert response.code == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            lines = response.body.decode().splitlines()
            assert lines and all(_PROM_LINE.match(line) for line in lines), [
                line for line in lines if not _PROM_LINE.match(line)]
            parsed = promtext.parse(response.body.decode())  # every sample has its TYPE
            samples = {name: value for (name, labels), value in parsed.items() if not labels}
            typed = {line.split()[2] for line in lines if line.startswith("# TYPE")}
            assert {name for name, _ in parsed} - typed == {
                "mesoslite_master_task_launch_to_running_seconds_" + part
                for part in ("bucket", "sum", "count")}
            assert samples["mesoslite_master_task_launch_to_running_seconds_count"] == 0.0
            assert samples["mesoslite_master_slaves_active"] == 1.0
            assert samples["mesoslite_master_elected"] == 1.0
            assert all(name.startswith("mesoslite_") for name in samples)
        finally:
            await master.stop()

    _run(main)


def test_agent_that_stops_answering_pings_is_removed() -> None:
    """A silent agent's task is reported lost and every framework gets Failure."""

    async def main() -> None:
        # Pings every 0.5 s: long enough for the test's loop to answer on a busy machine.
        master = await _start(agent_ping_timeout=0.5, max_agent_ping_timeouts=2)
        try:
            peers: dict[str, Peer] = {}
            silent: set[str] = set()
            answering = []
            for i in range(2):  # both answer until the task is launched (a busy machine
                peer, agent_id = await _register(master, f"agent-{i}")  # may take a while)
                peers[agent_id] = peer
                answering.append(asyncio.create_task(_answer_pings(peer, agent_id, silent)))
            scheduler, framework_id = await _subscribe(master)
            offer = await _launch(scheduler, framework_id, "t1", timeout=60.0)
            healthy = next(agent_id for agent_id in peers if agent_id != offer.agent_id)
            silent.add(offer.agent_id)
            failure = await scheduler.next(Failure, timeout=60.0)
            assert failure.agent_id == offer.agent_id
            update = await scheduler.next(Update)
            assert (update.status.task_id, update.status.state) == ("t1", TaskState.TASK_LOST)
            assert list(master.state.agents) == [healthy]
            snapshot = await _json(master, "/metrics/snapshot")
            assert snapshot["master/slave_removals"] == 1
            for task in answering:
                task.cancel()
        finally:
            await master.stop()

    _run(main)


async def _answer_pings(peer: Peer, agent_id: str, silent: Collection[str] = ()) -> None:
    """Answer the master's pings to ``agent_id`` while it is not in ``silent``."""
    while True:
        await peer.next(Ping, timeout=60.0)
        if agent_id not in silent:
            peer.send(Pong(agent_id=agent_id))


def test_state_with_many_agents_does_not_stall_the_loop() -> None:
    """Rendering /state for 10,000 agents hands the loop back every few hundred agents."""

    async def main() -> None:
        master = await _start(allocation_interval=60.0)
        try:
            state = master.state
            resources = Resources.parse(AGENT_RESOURCES)
            for i in range(10_000):
                info = AgentInfo(hostname=f"h{i}", resources=resources)
                state.register_agent(f"peer-{i}".encode(), RegisterAgent(agent_info=info))
            state.take_allocation_request()
            # Drive the renderer by hand and count how often it suspends:
            # each suspension is a point where offers and pings get the loop.
            for _ in range(2):  # the second pass mostly reuses cached agent JSON
                coro = state_json(master.shell)
                suspensions = 0
                try:
                    while True:
                        coro.send(None)
                        suspensions += 1
                except StopIteration as done:
                    document = done.value
                assert suspensions >= 10_000 // YIELD_EVERY
                assert len(json.loads(document)["slaves"]) == 10_000
            response = await _get(master, "/state", request_timeout=60.0)
            assert response.code == 200
            assert len(json.loads(response.body)["slaves"]) == 10_000
        finally:
            await master.stop()

    _run(main)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_port_in_use_is_an_error_naming_the_flag_and_nothing_stays_bound() -> None:
    """A busy HTTP or ZeroMQ port: OSError naming http_port/zmq_port; the other port is freed."""

    async def main() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            for flag, other in (("http_port", "zmq_port"), ("zmq_port", "http_port")):
                free = socket.socket()
                free.bind(("127.0.0.1", 0))
                other_port = free.getsockname()[1]
                free.close()
                master = MasterProcess(MasterConfig(ip="127.0.0.1",
                                                    **{flag: port, other: other_port}))
                try:
                    await master.start()
                except OSError as exc:
                    assert str(exc).startswith(f"{flag}: cannot bind"), exc
                else:
                    await master.stop()
                    raise AssertionError(f"a busy {flag} was accepted")
                await until(lambda port=other_port: _bindable(port), 10,
                            f"port {other_port} released again")

    _run(main)
