"""The Mesos v1 HTTP APIs of a real in-process master and agent (loopback HTTP)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from mesoslite.protocol import FrameworkInfo, TaskState
from mesoslite.scheduler import SchedulerDriver
from mesoslite.testing import InProcessCluster
from tests.support.frameworks import RecordingScheduler, shell_task
from tests.support.v1http import EventStream, get, post

SCHED = "/api/v1/scheduler"
FAST = {"allocation_interval": 0.05, "framework_heartbeat_interval": 0.5}


async def call(url: str, path: str, body: Any, **headers: str) -> tuple[int, dict[str, str],
                                                                       bytes]:
    """POST on a thread (the master runs on this loop)."""
    return await asyncio.to_thread(post, url, path, body, headers)


async def op(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """An operator call that must answer 200 with JSON."""
    status, _headers, data = await call(url, "/api/v1", body)
    assert status == 200, data
    return json.loads(data)


async def next_event(stream: EventStream, *kinds: str, timeout: float = 20.0) -> dict[str, Any]:
    """The next event of one of ``kinds`` on a stream read by its thread."""
    return await asyncio.to_thread(stream.next, kinds, timeout)


def drain(stream: EventStream, timeout: float = 20.0) -> None:
    """Read events until the stream ends (EOFError), failing if it stays open."""
    while True:
        stream.next((), timeout)


def framework_info(**extra: Any) -> dict[str, Any]:
    """A FrameworkInfo as a v1 client sends it."""
    return {"user": "root", "name": "v1-test", "roles": ["*"], **extra}


def task_info(task_id: str, agent_id: str, command: str) -> dict[str, Any]:
    """A command task of 0.1 cpu and 32 MB."""
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
            "command": {"shell": True, "value": command},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}


def test_operator_reads_and_refusals() -> None:
    """GET_* calls answer Mesos shapes; unsupported calls 501, bad ones 400 naming the field."""
    asyncio.run(_test_operator_reads_and_refusals())


async def _test_operator_reads_and_refusals() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        for path in ("/api/v1", "/api/v1/operator", "/master/api/v1"):
            status, _h, body = await call(url, path, {"type": "GET_HEALTH"})
            assert status == 200 and json.loads(body)["get_health"] == {"healthy": True}
        version = (await op(url, {"type": "GET_VERSION"}))["get_version"]["version_info"]
        assert [int(x) for x in version["version"].split(".")] == [1, 11, 0]
        flags = (await op(url, {"type": "GET_FLAGS"}))["get_flags"]["flags"]
        assert {"name": "allocation_interval", "value": "0.05"} in flags
        metrics = (await op(url, {"type": "GET_METRICS"}))["get_metrics"]["metrics"]
        assert any(m["name"] == "master/elected" and m["value"] == 1.0 for m in metrics)
        agents = (await op(url, {"type": "GET_AGENTS"}))["get_agents"]["agents"]
        assert len(agents) == 1 and agents[0]["active"] is True
        names = {r["name"] for r in agents[0]["total_resources"]}
        assert {"cpus", "mem", "ports"} <= names
        state = (await op(url, {"type": "GET_STATE"}))["get_state"]
        assert set(state) == {"get_tasks", "get_executors", "get_frameworks", "get_agents"}
        master = (await op(url, {"type": "GET_MASTER"}))["get_master"]["master_info"]
        assert master["ip"] == 16777343 and master["address"]["ip"] == "127.0.0.1"
        update = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
            {"role": "eng", "weight": 2.5}]}}
        status, _h, body = await call(url, "/api/v1", update)
        assert status == 200, body
        weights = (await op(url, {"type": "GET_WEIGHTS"}))["get_weights"]["weight_infos"]
        assert {"role": "eng", "weight": 2.5} in weights
        roles = (await op(url, {"type": "GET_ROLES"}))["get_roles"]["roles"]
        assert any(r["name"] == "eng" and r["weight"] == 2.5 for r in roles)
        status, headers, body = await call(url, "/api/v1", {"type": "GET_STATE"},
                                           **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert "get_state" in json.loads(gzip.decompress(body))

        refusals = [
            ({"type": "GET_QUOTA"}, 501, "type", "GET_QUOTA"),
            ({"type": "RESERVE_RESOURCES"}, 501, "type", "reservations"),
            ({"type": "NO_SUCH_CALL"}, 400, "type", "NO_SUCH_CALL"),
            ({"type": 7}, 400, "type", "string"),
            ([1, 2], 400, "", "object"),
            (b"{not json", 400, "body", "JSON"),
            ({"type": "GET_HEALTH", "get_state": {}}, 400, "get_state", "GET_HEALTH"),
            ({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
                {"role": "eng", "weight": -1}]}}, 400,
             "update_weights.weight_infos[0].weight", ">"),
            ({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
                {"role": "../x", "weight": 1}]}}, 400, "update_weights.weight_infos[0].role", ""),
            ({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "nope"}}}, 400,
             "teardown.framework_id", "nope"),
            ({"type": "TEARDOWN", "teardown": {}}, 400, "teardown.framework_id", ""),
            ({"type": "LIST_FILES", "list_files": {"path": "/etc"}}, 404, "list_files.path",
             "agent"),
            (b"x" * (9 * 1024 * 1024), 413, "body", "bytes"),
        ]
        for body_in, code, field, words in refusals:
            status, _h, body = await call(url, "/api/v1", body_in)
            answer = json.loads(body)
            assert (status, answer["field"]) == (code, field), (body_in, answer)
            assert words in answer["message"], answer
        status, _h, body = await call(url, "/api/v1", {"type": "GET_HEALTH"},
                                      **{"Content-Type": "application/x-protobuf"})
        assert status == 415 and json.loads(body)["field"] == "Content-Type"
        weights = (await op(url, {"type": "GET_WEIGHTS"}))["get_weights"]["weight_infos"]
        assert {"role": "eng", "weight": 2.5} in weights  # refused calls changed nothing


def test_http_scheduler_runs_tasks_and_operator_stream_sees_them() -> None:
    """Subscribe, launch, ack, reconcile, kill over HTTP; the operator stream follows."""
    asyncio.run(_test_http_scheduler_runs_tasks_and_operator_stream_sees_them())


async def _test_http_scheduler_runs_tasks_and_operator_stream_sees_them() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        watch = await asyncio.to_thread(EventStream, url, "/api/v1", {"type": "SUBSCRIBE"})
        first = await next_event(watch)
        assert first["type"] == "SUBSCRIBED"
        assert len(first["subscribed"]["get_state"]["get_agents"]["agents"]) == 1

        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info(
            failover_timeout=60)}}
        sched = await asyncio.to_thread(EventStream, url, SCHED, sub)
        assert sched.status == 200 and sched.stream_id
        subscribed = (await next_event(sched, "SUBSCRIBED"))["subscribed"]
        fid = subscribed["framework_id"]["value"]
        assert subscribed["heartbeat_interval_seconds"] == 0.5
        added = await next_event(watch, "FRAMEWORK_ADDED")
        assert added["framework_added"]["framework"]["framework_info"]["id"]["value"] == fid
        hdr = {"Mesos-Stream-Id": sched.stream_id}

        async def sched_call(body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
            status, _h, data = await call(url, SCHED, {"framework_id": {"value": fid}, **body},
                                          **{**hdr, **headers})
            return status, json.loads(data) if data else {}

        offer = (await next_event(sched, "OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        assert offer["framework_id"]["value"] == fid
        status, answer = await sched_call({"type": "ACCEPT", "accept": {
            "offer_ids": [{"value": "not-an-offer"}], "operations": []}})
        assert (status, answer["field"]) == (400, "accept.offer_ids[0]")
        status, answer = await sched_call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH_GROUP"}]}})
        assert status == 501 and "LAUNCH_GROUP" in answer["message"]
        status, answer = await sched_call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {
                "task_infos": [task_info("t1", agent_id, "echo hi")]}}]}},
            **{"Mesos-Stream-Id": "wrong"})
        assert status == 403 and answer["field"] == "Mesos-Stream-Id"
        status, _ = await sched_call({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {
                "task_infos": [task_info("t1", agent_id, "echo hi"),
                               task_info("t2", agent_id, "sleep 60")]}}],
            "filters": {"refuse_seconds": 1}}})
        assert status == 202

        seen: dict[str, list[str]] = {"t1": [], "t2": []}
        while seen["t1"][-1:] != ["TASK_FINISHED"] or seen["t2"][-1:] != ["TASK_RUNNING"]:
            update = (await next_event(sched, "UPDATE"))["update"]["status"]
            seen[update["task_id"]["value"]].append(update["state"])
            assert update["agent_id"]["value"] == agent_id and update["source"]
            if "uuid" in update:
                status, _ = await sched_call({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": update["agent_id"], "task_id": update["task_id"],
                    "uuid": update["uuid"]}})
                assert status == 202
        assert seen["t1"][-1] == "TASK_FINISHED"

        task_added = await next_event(watch, "TASK_ADDED")
        assert task_added["task_added"]["task"]["task_id"]["value"] in ("t1", "t2")
        updated = await next_event(watch, "TASK_UPDATED")
        assert updated["task_updated"]["framework_id"]["value"] == fid

        status, _ = await sched_call({"type": "RECONCILE", "reconcile": {"tasks": [
            {"task_id": {"value": "t2"}}]}})
        assert status == 202
        update = (await next_event(sched, "UPDATE"))["update"]["status"]
        assert (update["task_id"]["value"], update["state"], update["reason"]) == (
            "t2", "TASK_RUNNING", "REASON_RECONCILIATION")
        status, _ = await sched_call({"type": "KILL", "kill": {"task_id": {"value": "t2"}}})
        assert status == 202
        while True:
            update = (await next_event(sched, "UPDATE"))["update"]["status"]
            if "uuid" in update:
                await sched_call({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": update["agent_id"], "task_id": update["task_id"],
                    "uuid": update["uuid"]}})
            if update["state"] == "TASK_KILLED":
                break
        frameworks = (await op(url, {"type": "GET_FRAMEWORKS"}))["get_frameworks"]
        assert [f["framework_info"]["id"]["value"] for f in frameworks["frameworks"]] == [fid]
        state = json.loads(await asyncio.to_thread(get, url, "/state"))
        assert [f["id"] for f in state["frameworks"]] == [fid]  # as an SDK framework shows
        for kind in ("SUPPRESS", "REVIVE"):
            status, _ = await sched_call({"type": kind, kind.lower(): {"roles": ["*"]}})
            assert status == 202
        status, _ = await sched_call({"type": "TEARDOWN"})
        assert status == 202
        await next_event(watch, "FRAMEWORK_REMOVED")
        with pytest.raises(EOFError):  # the torn-down framework's stream ends
            await asyncio.to_thread(drain, sched)
        status, answer = await sched_call({"type": "REVIVE"})
        assert status == 403
        await asyncio.to_thread(sched.close)
        await asyncio.to_thread(watch.close)


def test_scheduler_calls_malformed_and_unsubscribed() -> None:
    """Malformed scheduler calls get 400 naming the field; unsubscribed ones 403."""
    asyncio.run(_test_scheduler_calls_malformed_and_unsubscribed())


async def _test_scheduler_calls_malformed_and_unsubscribed() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        cases: list[tuple[Any, int, str]] = [
            (b"[]", 400, ""),
            (b"nonsense", 400, "body"),
            ({"type": "NOPE"}, 400, "type"),
            ({"type": "ACCEPT_INVERSE_OFFERS", "framework_id": {"value": "f"}}, 501, "type"),
            ({"type": "SUBSCRIBE"}, 400, "subscribe"),
            ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": 1}}}, 400,
             "subscribe.framework_info.user"),
            ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
                                                                    "bogus": 1}}},
             400, "subscribe.framework_info.bogus"),
            ({"type": "DECLINE", "decline": {"offer_ids": []}}, 400, "framework_id"),
            ({"type": "KILL", "framework_id": {"value": "f"}, "kill": {}}, 400,
             "kill.task_id"),
            ({"type": "ACKNOWLEDGE", "framework_id": {"value": "f"}, "acknowledge": {
                "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "%%"}}, 400,
             "acknowledge.uuid"),
            ({"type": "KILL", "framework_id": {"value": "f"},
              "kill": {"task_id": {"value": "t"}}}, 400, "Mesos-Stream-Id"),
        ]
        for body, code, field in cases:
            status, _h, data = await call(url, SCHED, body)
            answer = json.loads(data)
            assert (status, answer["field"]) == (code, field), (body, answer)
        status, _h, data = await call(url, SCHED, {
            "type": "KILL", "framework_id": {"value": "f"}, "kill": {"task_id": {"value": "t"}}},
            **{"Mesos-Stream-Id": "0000"})
        assert status == 403
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}
        status, _h, data = await call(url, SCHED, sub, **{"Mesos-Stream-Id": "x"})
        assert status == 400 and json.loads(data)["field"] == "Mesos-Stream-Id"
        bad_launch = await asyncio.to_thread(EventStream, url, SCHED, sub)
        fid = (await next_event(bad_launch, "SUBSCRIBED"))["subscribed"]["framework_id"]["value"]
        offer = (await next_event(bad_launch, "OFFERS"))["offers"]["offers"][0]
        task = task_info("u1", offer["agent_id"]["value"], "true")
        task["command"]["uris"] = [{"value": "ftp://example.invalid/x"}]
        status, _h, data = await call(url, SCHED, {
            "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                "offer_ids": [offer["id"]], "operations": [
                    {"type": "LAUNCH", "launch": {"task_infos": [task]}}]}},
            **{"Mesos-Stream-Id": bad_launch.stream_id})
        assert status == 400
        assert json.loads(data)["field"] == (
            "accept.operations[0].launch.task_infos[0].command.uris[0].value")
        await _launches_that_do_not_fit(url, fid, offer, bad_launch)
        tasks = (await op(url, {"type": "GET_TASKS"}))["get_tasks"]
        assert tasks["tasks"] == []  # nothing launched
        frameworks = (await op(url, {"type": "GET_FRAMEWORKS"}))["get_frameworks"]
        assert len(frameworks["frameworks"][0]["offers"]) == 1  # the offer is still out
        status, _h, data = await call(url, SCHED, {
            "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {
                    "task_infos": [task_info("fits", offer["agent_id"]["value"], "true")]}}]}},
            **{"Mesos-Stream-Id": bad_launch.stream_id})
        assert status == 202, data
        first = (await next_event(bad_launch, "UPDATE"))["update"]["status"]
        assert first["task_id"]["value"] == "fits"  # no TASK_ERROR came before it
        await asyncio.to_thread(bad_launch.close)


async def _launches_that_do_not_fit(url: str, fid: str, offer: dict[str, Any],
                                    stream: EventStream) -> None:
    """ACCEPTs the core would answer with TASK_ERROR: 400 naming the field, no update."""
    agent = offer["agent_id"]["value"]
    cpus = next(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus")
    huge = task_info("big", agent, "true")
    huge["resources"][0]["scalar"]["value"] = cpus + 1
    half = task_info("h1", agent, "true")
    half["resources"][0]["scalar"]["value"] = cpus * 0.6
    half2 = task_info("h2", agent, "true")
    half2["resources"][0]["scalar"]["value"] = cpus * 0.6
    port = task_info("p", agent, "true")
    port["resources"].append({"name": "ports", "type": "RANGES",
                              "ranges": {"range": [{"begin": 1, "end": 2}]}})
    custom = task_info("e", agent, "true")
    del custom["command"]
    custom["executor"] = {"executor_id": {"value": "ex"}, "command": {"value": "true"},
                          "framework_id": {"value": "someone-else"}}
    where = "accept.operations[0].launch.task_infos"
    cases = [
        ([huge], f"{where}[0].resources", "more than the offers hold"),
        ([task_info("a", agent, "true"), half, half2], f"{where}[2].resources", "h2"),
        ([port], f"{where}[0].resources", "ports"),
        ([task_info("x", "no-such-agent", "true")], f"{where}[0].agent_id", "no-such-agent"),
        ([task_info("d", agent, "true"), task_info("d", agent, "true")],
         f"{where}[1].task_id", "repeated"),
        ([custom], f"{where}[0].executor.framework_id", "someone-else"),
    ]
    for tasks, field, words in cases:
        status, _h, data = await call(url, SCHED, {
            "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                "offer_ids": [offer["id"]], "operations": [
                    {"type": "LAUNCH", "launch": {"task_infos": tasks}}]}},
            **{"Mesos-Stream-Id": stream.stream_id})
        answer = json.loads(data)
        assert (status, answer["field"]) == (400, field), (tasks, answer)
        assert words in answer["message"], answer
    # a second LAUNCH operation is checked against what the first one took
    status, _h, data = await call(url, SCHED, {
        "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
            "offer_ids": [offer["id"]], "operations": [
                {"type": "LAUNCH", "launch": {"task_infos": [half]}},
                {"type": "LAUNCH", "launch": {"task_infos": [half2]}}]}},
        **{"Mesos-Stream-Id": stream.stream_id})
    assert (status, json.loads(data)["field"]) == (
        400, "accept.operations[1].launch.task_infos[0].resources")


def test_framework_fails_over_between_sdk_and_http_with_its_id() -> None:
    """An SDK framework fails over to HTTP with its id, keeps its task, and back again."""
    asyncio.run(_failover_between_sdk_and_http())


async def _failover_between_sdk_and_http() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        recorder = RecordingScheduler()
        info = FrameworkInfo(user="", name="fo", failover_timeout=60.0)
        driver = SchedulerDriver(recorder, info, cluster.master_address)
        await driver.start_async()
        fid = await cluster.wait_for(lambda: recorder.framework_id, timeout=20)
        offer = await cluster.wait_for(lambda: recorder.held_offers(), timeout=20)
        driver.launch_tasks([offer[0].id], [shell_task("long", offer[0].agent_id,
                                                       "cpus:0.1;mem:32", "sleep 60")])
        await cluster.wait_for(lambda: TaskState.TASK_RUNNING in recorder.states("long"),
                               timeout=30)
        await driver.stop_async(failover=True)

        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info(
            id={"value": fid}, failover_timeout=60)}}
        stream = await asyncio.to_thread(EventStream, url, SCHED, sub)
        subscribed = (await next_event(stream, "SUBSCRIBED"))["subscribed"]
        assert subscribed["framework_id"]["value"] == fid
        status, _h, _b = await call(url, SCHED, {
            "type": "RECONCILE", "framework_id": {"value": fid}, "reconcile": {}},
            **{"Mesos-Stream-Id": stream.stream_id})
        assert status == 202
        update = (await next_event(stream, "UPDATE"))["update"]["status"]
        assert (update["task_id"]["value"], update["state"]) == ("long", "TASK_RUNNING")
        state = json.loads(await asyncio.to_thread(get, url, "/state"))
        assert [(f["id"], f["connected"]) for f in state["frameworks"]] == [(fid, True)]

        back = RecordingScheduler()
        driver2 = SchedulerDriver(back, attrs.evolve(info, id=fid), cluster.master_address)
        await driver2.start_async()
        assert await cluster.wait_for(lambda: back.framework_id, timeout=20) == fid
        event = await next_event(stream, "ERROR")  # the HTTP stream hears it, and ends
        assert "failed over" in event["error"]["message"]
        with pytest.raises(EOFError):  # the master ended the stream after ERROR
            await next_event(stream, timeout=20)
        await driver2.stop_async()
        await asyncio.to_thread(stream.close)


def test_paths_and_shapes_mesos_tools_read() -> None:
    """/state.json, /master/..., /slave(1)/..., a numeric /version and ?jsonp= answer."""
    asyncio.run(_paths_and_shapes())


async def _paths_and_shapes() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        for path in ("/state.json", "/master/state.json", "/master/state", "/state"):
            state = json.loads(await asyncio.to_thread(get, url, path))
            assert len(state["slaves"]) == 1, path
        version = json.loads(await asyncio.to_thread(get, url, "/version"))
        assert [int(part) for part in version["version"].split(".")] == [1, 11, 0]
        assert version["mesoslite_version"]
        wrapped = await asyncio.to_thread(get, url, "/master/state?jsonp=angular.callbacks._0")
        assert wrapped.startswith(b"angular.callbacks._0({") and wrapped.endswith(b"});")
        assert json.loads(wrapped[len(b"angular.callbacks._0("):-2])["slaves"]
        status, _h, body = await call(url, "/api/v1?jsonp=cb", {"type": "GET_HEALTH"})
        assert status == 200 and json.loads(body)["type"] == "GET_HEALTH"  # POSTs: plain JSON
        with pytest.raises(AssertionError, match="400"):
            await asyncio.to_thread(get, url, "/state?jsonp=alert(1)")
        agent = f"127.0.0.1:{cluster.agents[0].http_port}"
        for path in ("/slave(1)/state", "/slave(1)/state.json", "/state"):
            state = json.loads(await asyncio.to_thread(get, agent, path))
            assert state["pid"].startswith("slave(1)@"), path
        agent_version = json.loads(await asyncio.to_thread(get, agent, "/slave(1)/version"))
        assert agent_version["version"] == "1.11.0"
        flags = await asyncio.to_thread(get, agent, "/slave(1)/flags?jsonp=cb")
        assert flags.startswith(b"cb(")


DISCOVERY = {"visibility": "CLUSTER", "name": "web", "version": "2", "ports": {"ports": [
    {"number": 31000, "name": "http", "protocol": "tcp"},
    {"number": 31001, "name": "dns", "protocol": "udp",
     "labels": {"labels": [{"key": "vip", "value": "dns:53"}]}}]},
    "labels": {"labels": [{"key": "tier", "value": "front"}]}}


def test_state_shows_discovery_and_container_status() -> None:
    """A task's DiscoveryInfo is honoured and rendered; statuses carry the task's IP."""
    asyncio.run(_discovery_and_container_status())


async def _discovery_and_container_status() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}
        sched = await asyncio.to_thread(EventStream, url, SCHED, sub)
        fid = (await next_event(sched, "SUBSCRIBED"))["subscribed"]["framework_id"]["value"]
        offer = (await next_event(sched, "OFFERS"))["offers"]["offers"][0]
        hdr = {"Mesos-Stream-Id": sched.stream_id}

        async def accept(discovery: Any) -> tuple[int, dict[str, Any]]:
            task = {**task_info("web", offer["agent_id"]["value"], "sleep 60"),
                    "discovery": discovery}
            status, _h, data = await call(url, SCHED, {
                "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                    "offer_ids": [offer["id"]], "operations": [
                        {"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}, **hdr)
            return status, json.loads(data) if data else {}

        where = "accept.operations[0].launch.task_infos[0].discovery"
        bad = [({"name": "x"}, f"{where}.visibility"),
               ({**DISCOVERY, "visibility": "EVERYONE"}, f"{where}.visibility"),
               ({**DISCOVERY, "ports": {"ports": [{"number": 70000}]}},
                f"{where}.ports.ports[0].number"),
               ({**DISCOVERY, "ports": {"ports": [{"number": 1, "visibility": "X"}]}},
                f"{where}.ports.ports[0].visibility"),
               ({**DISCOVERY, "ports": [{"number": 1}]}, f"{where}.ports"),
               ({**DISCOVERY, "info": {}}, f"{where}.info"),
               ("web", where)]
        for discovery, field in bad:
            status, answer = await accept(discovery)
            assert (status, answer["field"]) == (400, field), (discovery, answer)
        status, answer = await accept(DISCOVERY)
        assert status == 202, answer
        while True:
            update = (await next_event(sched, "UPDATE"))["update"]["status"]
            if update["state"] == "TASK_RUNNING":
                break
            status, _h, _b = await call(url, SCHED, {
                "type": "ACKNOWLEDGE", "framework_id": {"value": fid}, "acknowledge": {
                    "agent_id": update["agent_id"], "task_id": update["task_id"],
                    "uuid": update["uuid"]}}, **hdr)
            assert status == 202
        [network] = update["container_status"]["network_infos"]
        assert network["ip_addresses"] == [{"ip_address": "127.0.0.1", "protocol": "IPv4"}]

        state = json.loads(await asyncio.to_thread(get, url, "/master/state"))
        [task] = state["frameworks"][0]["tasks"]
        assert task["discovery"] == DISCOVERY
        running = [s for s in task["statuses"] if s["state"] == "TASK_RUNNING"]
        assert running[-1]["container_status"]["network_infos"][0]["ip_addresses"][0][
            "ip_address"] == "127.0.0.1"
        [v1_task] = (await op(url, {"type": "GET_TASKS"}))["get_tasks"]["tasks"]
        assert v1_task["discovery"] == DISCOVERY
        assert v1_task["statuses"][-1]["container_status"]["network_infos"]
        agent = f"127.0.0.1:{cluster.agents[0].http_port}"
        agent_state = json.loads(await asyncio.to_thread(get, agent, "/state"))
        [agent_task] = agent_state["frameworks"][0]["executors"][0]["tasks"]
        assert agent_task["discovery"] == DISCOVERY
        assert agent_task["statuses"][-1]["container_status"]["network_infos"][0][
            "ip_addresses"][0]["ip_address"] == "127.0.0.1"
        await asyncio.to_thread(sched.close)


EXECUTOR_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "v1_executor.py"


def test_http_executor_runs_tasks_for_an_http_scheduler() -> None:
    """A v1 executor written with http.client, launched as a custom executor, runs tasks,
    is killed, relays messages both ways and sees Mesos's environment."""
    asyncio.run(_http_executor())


async def _http_executor() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info(
            checkpoint=True)}}
        sched = await asyncio.to_thread(EventStream, url, SCHED, sub)
        fid = (await next_event(sched, "SUBSCRIBED"))["subscribed"]["framework_id"]["value"]
        hdr = {"Mesos-Stream-Id": sched.stream_id}
        offer = (await next_event(sched, "OFFERS"))["offers"]["offers"][0]
        agent_id = offer["agent_id"]
        executor = {"executor_id": {"value": "http-ex"}, "name": "http executor",
                    "command": {"value": f"{sys.executable} {EXECUTOR_SCRIPT}"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}

        def task(task_id: str) -> dict[str, Any]:
            body = task_info(task_id, agent_id["value"], "unused")
            del body["command"]
            body["name"] = task_id
            return {**body, "executor": executor}

        status, _h, data = await call(url, SCHED, {
            "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {
                    "task_infos": [task("once"), task("wait")]}}]}}, **hdr)
        assert status == 202, data
        states: dict[str, list[str]] = {"once": [], "wait": []}
        env: dict[str, str] = {}
        while "TASK_FINISHED" not in states["once"] or "TASK_RUNNING" not in states["wait"]:
            update = (await next_event(sched, "UPDATE", timeout=60))["update"]["status"]
            states[update["task_id"]["value"]].append(update["state"])
            if update["state"] == "TASK_RUNNING":
                env = json.loads(base64.b64decode(update["data"]))
            await call(url, SCHED, {"type": "ACKNOWLEDGE", "framework_id": {"value": fid},
                                    "acknowledge": {"agent_id": agent_id,
                                                    "task_id": update["task_id"],
                                                    "uuid": update["uuid"]}}, **hdr)
        assert env["MESOS_FRAMEWORK_ID"] == fid and env["MESOS_EXECUTOR_ID"] == "http-ex"
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"].endswith("secs")
        assert env["MESOS_CHECKPOINT"] == "1" and env["MESOS_DIRECTORY"] == env["MESOS_SANDBOX"]
        assert env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] and env["MESOS_RECOVERY_TIMEOUT"]

        status, _h, _b = await call(url, SCHED, {
            "type": "MESSAGE", "framework_id": {"value": fid}, "message": {
                "agent_id": agent_id, "executor_id": {"value": "http-ex"},
                "data": base64.b64encode(b"ping").decode()}}, **hdr)
        assert status == 202
        message = (await next_event(sched, "MESSAGE"))["message"]
        assert base64.b64decode(message["data"]) == b"echo:ping"
        assert message["executor_id"] == {"value": "http-ex"}

        status, _h, _b = await call(url, SCHED, {"type": "KILL", "framework_id": {"value": fid},
                                                 "kill": {"task_id": {"value": "wait"}}}, **hdr)
        assert status == 202
        while "TASK_KILLED" not in states["wait"]:
            update = (await next_event(sched, "UPDATE", timeout=60))["update"]["status"]
            states[update["task_id"]["value"]].append(update["state"])
        agent = f"127.0.0.1:{cluster.agents[0].http_port}"
        refusals = [
            ({"type": "UPDATE", "framework_id": {"value": fid},
              "executor_id": {"value": "nobody"}, "update": {}}, 403, "executor_id"),
            ({"type": "SUBSCRIBE", "framework_id": {"value": fid},
              "executor_id": {"value": "nobody"}}, 400, "executor_id"),
            ({"type": "UPDATE", "framework_id": {"value": fid},
              "executor_id": {"value": "http-ex"}, "update": {"status": {
                  "task_id": {"value": "once"}, "state": "TASK_RUNNING"}}}, 400,
             "update.status.uuid"),
            ({"type": "LAUNCH", "framework_id": {"value": fid},
              "executor_id": {"value": "http-ex"}}, 400, "type"),
            (b"]", 400, "body"),
        ]
        for body, code, field in refusals:
            status, _h, data = await call(agent, "/api/v1/executor", body)
            assert (status, json.loads(data)["field"]) == (code, field), (body, data)
        await asyncio.to_thread(sched.close)


def test_agent_operator_api_and_sandbox_files_through_both() -> None:
    """The agent's /api/v1 answers its calls; LIST_FILES/READ_FILE reach a task's sandbox
    on the agent and, through the agent, on the master."""
    asyncio.run(_agent_operator())


async def _agent_operator() -> None:
    async with InProcessCluster(agents=1, master_config=FAST) as cluster:
        url = cluster.http_url
        agent = f"127.0.0.1:{cluster.agents[0].http_port}"
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}
        sched = await asyncio.to_thread(EventStream, url, SCHED, sub)
        fid = (await next_event(sched, "SUBSCRIBED"))["subscribed"]["framework_id"]["value"]
        offer = (await next_event(sched, "OFFERS"))["offers"]["offers"][0]
        status, _h, _b = await call(url, SCHED, {
            "type": "ACCEPT", "framework_id": {"value": fid}, "accept": {
                "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {
                    "task_infos": [task_info("files-1", offer["agent_id"]["value"],
                                             "echo hello-files")]}}]}},
            **{"Mesos-Stream-Id": sched.stream_id})
        assert status == 202
        while True:
            update = (await next_event(sched, "UPDATE"))["update"]["status"]
            await call(url, SCHED, {"type": "ACKNOWLEDGE", "framework_id": {"value": fid},
                                    "acknowledge": {"agent_id": update["agent_id"],
                                                    "task_id": update["task_id"],
                                                    "uuid": update["uuid"]}},
                       **{"Mesos-Stream-Id": sched.stream_id})
            if update["state"] == "TASK_FINISHED":
                break
        for path in ("/api/v1", "/slave(1)/api/v1"):
            status, _h, body = await call(agent, path, {"type": "GET_HEALTH"})
            assert status == 200 and json.loads(body)["get_health"]["healthy"] is True
        version = (await op(agent, {"type": "GET_VERSION"}))["get_version"]["version_info"]
        assert version["version"] == "1.11.0"
        info = (await op(agent, {"type": "GET_AGENT"}))["get_agent"]["agent_info"]
        assert info["id"]["value"] == offer["agent_id"]["value"]
        state = (await op(agent, {"type": "GET_STATE"}))["get_state"]
        assert [f["framework_info"]["id"]["value"]
                for f in state["get_frameworks"]["frameworks"]] == [fid]
        tasks = state["get_tasks"]
        done = [t for kind in ("terminated_tasks", "completed_tasks") for t in tasks[kind]]
        assert [t["task_id"]["value"] for t in done] == ["files-1"]
        assert done[0]["state"] == "TASK_FINISHED"
        metrics = (await op(agent, {"type": "GET_METRICS"}))["get_metrics"]["metrics"]
        assert any(m["name"] == "slave/tasks_finished" and m["value"] == 1.0 for m in metrics)
        status, _h, body = await call(agent, "/api/v1", {"type": "GET_CONTAINERS"})
        assert status == 501 and json.loads(body)["field"] == "type"

        v0 = json.loads(await asyncio.to_thread(get, agent, "/state"))
        framework = v0["frameworks"][0]
        directory = (framework["executors"] + framework["completed_executors"])[0]["directory"]
        for where in (agent, url):
            listing = (await op(where, {"type": "LIST_FILES", "list_files": {
                "path": directory}}))["list_files"]["file_infos"]
            assert f"{directory}/stdout" in {f["path"] for f in listing}, where
            read = (await op(where, {"type": "READ_FILE", "read_file": {
                "path": f"{directory}/stdout", "offset": 0}}))["read_file"]
            assert b"hello-files" in base64.b64decode(read["data"]) and read["size"] > 0
        status, _h, body = await call(agent, "/api/v1", {"type": "LIST_FILES", "list_files": {
            "path": "/etc"}})
        assert status in (403, 404) and json.loads(body)["field"] == "list_files.path"
        await asyncio.to_thread(sched.close)
