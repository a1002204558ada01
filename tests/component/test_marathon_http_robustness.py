"""Malformed requests get 4xx JSON (never 500), and standbys forward to the leader."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.marathon_fake_service import ApiServer, FakeService

APP = {"id": "/web", "cmd": "sleep 100"}

#: (method, path, raw body or JSON-able value, extra headers, expected status)
MALFORMED: list[tuple[str, str, Any, dict[str, str], int]] = [
    ("POST", "/v2/apps", b"{", {}, 400),
    ("POST", "/v2/apps", b'{"id": "/a", "cmd": "x",}', {}, 400),
    ("POST", "/v2/apps", b"", {}, 400),
    ("POST", "/v2/apps", b"\xff\xfe\x00", {}, 400),
    ("POST", "/v2/apps", b'{"id": "/a", "cmd": "x", "cpus": NaN}', {}, 400),
    ("POST", "/v2/apps", b"[" * 5000 + b"]" * 5000, {}, 400),
    ("POST", "/v2/apps", [1, 2], {}, 422),
    ("POST", "/v2/apps", "just a string", {}, 422),
    ("POST", "/v2/apps", None, {}, 400),
    ("POST", "/v2/apps", {"id": 5, "cmd": "x"}, {}, 422),
    ("POST", "/v2/apps", {"id": "/a", "cmd": "x", "instances": "many"}, {}, 422),
    ("POST", "/v2/apps", {"id": "/a", "cmd": "x", "env": ["not", "a", "map"]}, {}, 422),
    ("POST", "/v2/apps", {"id": "/UPPER", "cmd": "x"}, {}, 422),
    ("POST", "/v2/apps", {"id": "/a"}, {}, 422),
    ("POST", "/v2/apps", {"id": "/a", "cmd": "x"}, {"Content-Type": "text/xml"}, 415),
    ("POST", "/v2/apps", {"id": "/a", "cmd": "x"},
     {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("PUT", "/v2/apps", {"id": "/a"}, {}, 422),
    ("PUT", "/v2/apps", [1], {}, 422),
    ("PUT", "/v2/apps", [], {}, 422),
    ("PUT", "/v2/apps/web", "x", {}, 422),
    ("PUT", "/v2/apps/web", {"version": 5}, {}, 422),
    ("PUT", "/v2/apps/web", {"instances": -1}, {}, 422),
    ("PUT", "/v2/apps/web", {"instances": 2.5}, {}, 422),
    ("DELETE", "/v2/apps/web?force=maybe", None, {}, 400),
    ("POST", "/v2/tasks/delete", {"ids": "t1"}, {}, 422),
    ("POST", "/v2/tasks/delete", {"ids": [1]}, {}, 422),
    ("POST", "/v2/tasks/delete", {}, {}, 422),
    ("POST", "/v2/tasks/delete", [], {}, 422),
    ("POST", "/v2/groups", {"id": 3}, {}, 422),
    ("POST", "/v2/groups", {"id": "/g", "apps": "x"}, {}, 422),
    ("POST", "/v2/groups", {"id": "/g", "apps": [{"id": "/elsewhere/a", "cmd": "x"}]}, {}, 422),
    ("PUT", "/v2/groups/g", {"scaleBy": "x"}, {}, 422),
    ("PUT", "/v2/groups/g", {"scaleBy": -1}, {}, 422),
    ("PUT", "/v2/groups/g", {"bogus": 1}, {}, 422),
    ("GET", "/v2/events?plan-format=huge", None, {}, 400),
    ("GET", "/v2/events?event_type=bad%21type", None, {}, 400),
    ("GET", "/v2/tasks?status=", None, {}, 200),
    ("GET", "/nowhere", None, {}, 404),
    ("GET", "/v2/unknown", None, {}, 404),
    ("DELETE", "/v2/queue//delay", None, {}, 404),
    ("GET", "/v2/apps/%00", None, {}, 404),
    ("GET", "/v2/apps//nope//", None, {}, 404),
    ("PATCH", "/v2/apps", {"id": "/a"}, {}, 405),
    ("POST", "/v2/info", {}, {}, 405),
    ("OPTIONS", "/v2/apps", None, {}, 405),
    ("GET", "/v2/apps?embed=bogus.things", None, {}, 200),
]


def serve(body: Callable[..., Awaitable[None]], *, servers: int = 1,
          **options: Any) -> None:
    """Run ``body`` with ``servers`` fake services, each behind a live API server."""

    async def main() -> None:
        pairs = []
        for _ in range(servers):
            service = FakeService()
            pairs.append((service, ApiServer(service, **options)))
        try:
            await body(*[x for pair in pairs for x in pair])
        finally:
            for _, api in pairs:
                api.stop()

    asyncio.run(main())


def test_malformed_requests_get_4xx_json() -> None:
    """Bad JSON, wrong types, wrong content types, unknown routes: 4xx with a JSON message."""

    async def body(service: FakeService, api: ApiServer) -> None:
        assert (await api.call("POST", "/v2/apps", APP)).code == 201
        service.finish_deployments()
        for method, path, payload, headers, expected in MALFORMED:
            raw = payload if isinstance(payload, bytes) else None
            value = None if isinstance(payload, bytes) else payload
            reply = await api.call(method, path, value, raw=raw, headers=headers)
            case = (method, path, str(payload)[:60], reply.code, reply.text[:200])
            assert reply.code == expected, case
            if reply.code >= 400:
                assert isinstance(reply.json, dict) and reply.json["message"], case
        invalid = await api.call("POST", "/v2/apps", {"id": "/a", "cmd": "x", "mem": "lots"})
        assert invalid.json["message"]
        assert any(d["path"] == "/mem" and d["errors"] for d in invalid.json["details"])
        bad_json = await api.call("POST", "/v2/apps", raw=b"{")
        assert bad_json.json["message"] == "Invalid JSON" and bad_json.json["details"]

    serve(body)


def test_bodies_over_the_limit_get_413() -> None:
    """A 2 MiB body is refused with 413 (limit 1 MiB) and the server keeps serving."""

    async def body(service: FakeService, api: ApiServer) -> None:
        big = b'{"id": "/a", "cmd": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        reply = await api.call("POST", "/v2/apps", raw=big)
        assert reply.code == 413 and "limit" in reply.json["message"]
        assert (await api.call("GET", "/ping")).code == 200

    serve(body)


def test_unexpected_exception_is_a_json_500() -> None:
    """A bug in the service becomes a logged 500 with a JSON body, not a traceback page."""

    async def body(service: FakeService, api: ApiServer) -> None:
        def broken() -> list[Any]:
            raise RuntimeError("kaboom")

        service.list_apps = broken  # type: ignore[method-assign]
        reply = await api.call("GET", "/v2/apps")
        assert reply.code == 500 and reply.json["message"]
        assert "kaboom" not in reply.text

    serve(body)


def test_standby_forwards_requests_to_the_leader() -> None:
    """A standby relays status, headers and body from the leader; answers system routes itself."""

    async def body(leader: FakeService, leader_api: ApiServer,
                   standby: FakeService, standby_api: ApiServer) -> None:
        standby.leading = False
        standby.leader = leader_api.address
        leader.leader = leader_api.address
        created = await standby_api.call("POST", "/v2/apps", APP)
        assert created.code == 201, created.text
        assert created.headers["Location"] == "/v2/apps/web"
        assert created.headers["Marathon-Deployment-Id"] == leader.plans[0].id
        assert "/web" in leader.apps and "/web" not in standby.apps
        assert len(created.headers.get_list("Content-Type")) == 1
        assert created.headers.get_list("X-Marathon-Leader") == [leader_api.address]
        listed = await standby_api.call("GET", "/v2/apps?embed=apps.tasks")
        assert [a["id"] for a in listed.json["apps"]] == ["/web"]
        scaled = await standby_api.call("PUT", "/v2/apps/web?force=true", {"instances": 4})
        assert scaled.code == 200 and leader.apps["/web"].instances == 4
        locked = await standby_api.call("DELETE", "/v2/apps/web")
        assert locked.code == 409 and locked.json["deployments"]
        forced = await standby_api.call("DELETE", "/v2/apps/web?force=true")
        assert forced.code == 200 and "/web" not in leader.apps
        missing = await standby_api.call("GET", "/v2/apps/web")
        assert missing.code == 404 and missing.json["message"] == "App '/web' does not exist"
        info = await standby_api.call("GET", "/v2/info")
        assert info.json["elected"] is False
        assert (await standby_api.call("GET", "/ping")).text.strip() == "pong"
        assert (await standby_api.call("GET", "/v2/leader")).json == {
            "leader": leader_api.address}
        events = await standby_api.call("GET", "/v2/events?event_type=status_update_event")
        assert events.code == 302
        assert events.headers["Location"] == (
            f"http://{leader_api.address}/v2/events?event_type=status_update_event")
        looped = await standby_api.call("GET", "/v2/apps",
                                        headers={"X-Marathon-Via": "1.1 elsewhere"})
        assert looped.code == 502 and "loop" in looped.json["message"]

    serve(body, servers=2)


def test_standby_without_a_leader_answers_503() -> None:
    """No known leader: 503 JSON for API routes; an unreachable leader: 502."""

    async def body(service: FakeService, api: ApiServer) -> None:
        service.leading = False
        service.leader = None
        for method, path in (("GET", "/v2/apps"), ("POST", "/v2/apps"), ("GET", "/v2/events"),
                             ("GET", "/v2/deployments")):
            reply = await api.call(method, path, APP if method == "POST" else None)
            assert reply.code == 503 and reply.json["message"], (method, path)
        assert (await api.call("GET", "/ping")).code == 200
        assert (await api.call("GET", "/v2/leader")).code == 404
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        service.leader = f"127.0.0.1:{closed_port}"
        unreachable = await api.call("GET", "/v2/apps")
        assert unreachable.code in (502, 504) and "leader" in unreachable.json["message"]

    serve(body)


def test_query_booleans_are_case_insensitive() -> None:
    """force=True, force=TRUE and force=1 all force; force=false does not."""

    async def body(service: FakeService, api: ApiServer) -> None:
        assert (await api.call("POST", "/v2/apps", APP)).code == 201
        assert (await api.call("PUT", "/v2/apps/web?force=false", {"instances": 2})).code == 409
        for value in ("True", "TRUE", "1", "true"):
            reply = await api.call("PUT", f"/v2/apps/web?force={value}", {"instances": 3})
            assert reply.code == 200, value

    serve(body)
