"""Marathon App/Task JSON: parsing with defaults and 422 details, rendering, timestamps."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frameworks.marathon.core.model import (
    App,
    AppPortMapping,
    HealthResult,
    InstanceCondition,
    KillSelection,
    MarathonTask,
    PortDefinition,
    UnreachableStrategy,
)
from frameworks.marathon.core.timestamps import iso, new_version, parse_iso
from frameworks.marathon.wire.app_json import parse_app, render_app
from frameworks.marathon.wire.task_json import render_task
from frameworks.marathon.wire.validation import AppValidationError, resolve_app_id
from mesoslite.testing.clock import FakeClock

FULL_APP: dict[str, Any] = {
    "id": "/prod/web",
    "cmd": "python3 -m http.server $PORT0",
    "user": "nobody",
    "env": {"MODE": "prod", "DB_PASS": {"secret": "db"}},
    "secrets": {"db": {"source": "/prod/db/password"}},
    "instances": 3,
    "cpus": 0.5,
    "mem": 64,
    "disk": 10,
    "gpus": 0,
    "constraints": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "3"],
                    ["zone", "LIKE", "eu-.*"], ["hostname", "MAX_PER", "2"]],
    "fetch": [{"uri": "https://example.invalid/a.tgz", "extract": True, "cache": True,
               "destPath": "a.tgz"}],
    "portDefinitions": [{"port": 10001, "protocol": "tcp", "name": "http",
                         "labels": {"vip": "1.2.3.4:80"}},
                        {"port": 0, "protocol": "udp,tcp", "name": "admin"}],
    "requirePorts": False,
    "backoffSeconds": 2,
    "backoffFactor": 1.5,
    "maxLaunchDelaySeconds": 600,
    "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0,
                      "gracePeriodSeconds": 30, "intervalSeconds": 5, "timeoutSeconds": 2,
                      "maxConsecutiveFailures": 4, "delaySeconds": 1}],
    "readinessChecks": [{"name": "ready", "portName": "http", "path": "/ready",
                         "intervalSeconds": 10, "timeoutSeconds": 3,
                         "httpStatusCodesForReady": [200, 204]}],
    "dependencies": ["../db", "/infra/cache"],
    "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2},
    "labels": {"HAPROXY_GROUP": "external", "owner": "team-a"},
    "acceptedResourceRoles": ["*", "web"],
    "role": "web",
    "killSelection": "OLDEST_FIRST",
    "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120},
    "taskKillGracePeriodSeconds": 7,
    "version": "2026-01-02T03:04:05.678Z",
    "versionInfo": {"lastScalingAt": "2026-01-02T03:04:05.678Z",
                    "lastConfigChangeAt": "2026-01-01T00:00:00.000Z"},
}

DOCKER_APP: dict[str, Any] = {
    "id": "/nginx",
    "instances": 2,
    "container": {
        "type": "DOCKER",
        "docker": {"image": "nginx:1.25", "forcePullImage": True, "privileged": False,
                   "parameters": [{"key": "label", "value": "a=b"}]},
        "volumes": [{"containerPath": "/data", "hostPath": "/srv/data", "mode": "RO"}],
        "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 10080,
                          "protocol": "tcp", "name": "http"}],
    },
    "networks": [{"mode": "container/bridge"}],
    "healthChecks": [{"protocol": "MESOS_HTTP", "portIndex": 0}],
}

#: The keys Marathon shows on an App (plus the legacy ``ports``), for a full app.
APP_KEYS = {
    "id", "acceptedResourceRoles", "backoffFactor", "backoffSeconds", "cmd", "constraints",
    "cpus", "dependencies", "disk", "env", "executor", "fetch", "gpus", "healthChecks",
    "instances", "labels", "maxLaunchDelaySeconds", "mem", "networks", "ports",
    "portDefinitions", "readinessChecks", "requirePorts", "secrets",
    "taskKillGracePeriodSeconds", "upgradeStrategy", "user", "version", "versionInfo",
    "killSelection", "unreachableStrategy", "role",
}


def details_of(obj: Any, **kwargs: Any) -> dict[str, list[str]]:
    """Parse expecting failure; return path → errors."""
    with pytest.raises(AppValidationError) as info:
        parse_app(obj, **kwargs)
    body = info.value.to_json()
    assert body["message"] == "Object is not valid"
    return {d["path"]: d["errors"] for d in body["details"]}


def test_minimal_app_gets_marathon_defaults() -> None:
    """A minimal app has instances 1, cpus 1, mem 128, one default port and the backoff defaults."""
    app = parse_app({"id": "web", "cmd": "sleep 100"})
    assert app.id == "/web"
    assert (app.instances, app.cpus, app.mem, app.disk, app.gpus) == (1, 1.0, 128.0, 0.0, 0)
    assert app.port_definitions == (PortDefinition(port=0, name="default"),)
    assert (app.backoff_seconds, app.backoff_factor, app.max_launch_delay_seconds) == (
        1.0, 1.15, 300.0)
    assert app.upgrade_strategy.minimum_health_capacity == 1.0
    assert app.upgrade_strategy.maximum_over_capacity == 1.0
    assert app.kill_selection is KillSelection.YOUNGEST_FIRST
    assert app.unreachable_strategy == UnreachableStrategy(0.0, 0.0)
    assert app.require_ports is False and app.networks[0].mode == "host"


def test_health_check_defaults_follow_marathon() -> None:
    """A bare health check is HTTP on portIndex 0, path /, grace 300, interval 60, timeout 20."""
    app = parse_app({"id": "a", "cmd": "x", "healthChecks": [{}]})
    hc = app.health_checks[0]
    assert (hc.protocol, hc.path, hc.port_index) == ("HTTP", "/", 0)
    assert (hc.grace_period_seconds, hc.interval_seconds, hc.timeout_seconds) == (300, 60, 20)
    assert (hc.max_consecutive_failures, hc.delay_seconds) == (3, 15)


@pytest.mark.parametrize(
    ("text", "group", "expected"),
    [("web", "/", "/web"), ("/a/b", "/x", "/a/b"), ("b", "/a", "/a/b"), ("../c", "/a/b", "/a/c"),
     ("//a//b/", "/", "/a/b"), ("./d", "/g", "/g/d"), ("a.b-c/d1", "/", "/a.b-c/d1")],
)
def test_app_ids_resolve_against_the_group(text: str, group: str, expected: str) -> None:
    """Relative ids, '.', '..' and repeated slashes resolve to a canonical absolute id."""
    assert resolve_app_id(text, group) == expected


@pytest.mark.parametrize("bad", ["", "/", "Web", "a_b", "-a", "a-", "a..b", "/..", "a/b c"])
def test_bad_ids_are_rejected_with_a_detail(bad: str) -> None:
    """Ids breaking the grammar get a detail at /id."""
    assert "/id" in details_of({"id": bad, "cmd": "x"})


MALFORMED = [
    ({"cpus": -1}, "/cpus"),
    ({"mem": -0.5}, "/mem"),
    ({"disk": -1}, "/disk"),
    ({"gpus": -1}, "/gpus"),
    ({"gpus": 0.5}, "/gpus"),
    ({"instances": -1}, "/instances"),
    ({"instances": 1.5}, "/instances"),
    ({"cpus": True}, "/cpus"),
    ({"cpus": 10**400}, "/cpus"),
    ({"mem": 1e300}, "/mem"),
    ({"mem": float("nan")}, "/mem"),
    ({"disk": float("inf")}, "/disk"),
    ({"backoffFactor": 0.5}, "/backoffFactor"),
    ({"backoffSeconds": -1}, "/backoffSeconds"),
    ({"maxLaunchDelaySeconds": -1}, "/maxLaunchDelaySeconds"),
    ({"args": ["a"]}, "/"),
    ({"portDefinitions": [{"port": 70000}]}, "/portDefinitions/0/port"),
    ({"portDefinitions": [{"port": -1}]}, "/portDefinitions/0/port"),
    ({"portDefinitions": [{"protocol": "sctp"}]}, "/portDefinitions/0/protocol"),
    ({"portDefinitions": [{"name": "a"}, {"name": "a"}]}, "/portDefinitions/1/name"),
    ({"portDefinitions": [{"name": "Bad Name"}]}, "/portDefinitions/0/name"),
    ({"ports": [1, 99999]}, "/ports/1"),
    ({"constraints": [["hostname"]]}, "/constraints/0"),
    ({"constraints": [["hostname", "NEAR", "x"]]}, "/constraints/0/1"),
    ({"constraints": [["hostname", "LIKE", "[a"]]}, "/constraints/0/2"),
    ({"constraints": [["hostname", "UNLIKE"]]}, "/constraints/0"),
    ({"constraints": [["hostname", "LIKE", "(" * 500 + ")" * 500]]}, "/constraints/0/2"),
    ({"constraints": [["hostname", "LIKE", "a{99999999999999999999}"]]}, "/constraints/0/2"),
    ({"constraints": [["hostname", "LIKE", "(a+)+$"]]}, "/constraints/0/2"),
    ({"constraints": [["hostname", "UNLIKE", "(a|ab)*c"]]}, "/constraints/0/2"),
    ({"constraints": [["hostname", "UNLIKE", "a" * 1001]]}, "/constraints/0/2"),
    ({"constraints": [["rack", "MAX_PER", "two"]]}, "/constraints/0/2"),
    ({"constraints": [["rack", "GROUP_BY", "x"]]}, "/constraints/0/2"),
    ({"constraints": [["rack", "IS"]]}, "/constraints/0"),
    ({"healthChecks": [{"protocol": "GOPHER"}]}, "/healthChecks/0/protocol"),
    ({"healthChecks": [{"portIndex": 1}]}, "/healthChecks/0/portIndex"),
    ({"portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]}, "/healthChecks/0/portIndex"),
    ({"healthChecks": [{"protocol": "COMMAND"}]}, "/healthChecks/0/command"),
    ({"healthChecks": [{"protocol": "COMMAND", "command": {}}]},
     "/healthChecks/0/command/value"),
    ({"healthChecks": [{"gracePeriodSeconds": -1}]}, "/healthChecks/0/gracePeriodSeconds"),
    ({"healthChecks": [{"intervalSeconds": 0}]}, "/healthChecks/0/intervalSeconds"),
    ({"healthChecks": [{"maxConsecutiveFailures": -2}]},
     "/healthChecks/0/maxConsecutiveFailures"),
    ({"healthChecks": [{"path": "no-slash"}]}, "/healthChecks/0/path"),
    ({"healthChecks": [{"port": 0}]}, "/healthChecks/0/port"),
    ({"upgradeStrategy": {"minimumHealthCapacity": 1.5}},
     "/upgradeStrategy/minimumHealthCapacity"),
    ({"upgradeStrategy": {"maximumOverCapacity": -0.1}},
     "/upgradeStrategy/maximumOverCapacity"),
    ({"unreachableStrategy": "sometimes"}, "/unreachableStrategy"),
    ({"unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 5}},
     "/unreachableStrategy/inactiveAfterSeconds"),
    ({"killSelection": "RANDOM"}, "/killSelection"),
    ({"env": {"A": 1}}, "/env/A"),
    ({"env": {"A": {"secret": "missing"}}}, "/env/A"),
    ({"labels": {"a": 1}}, "/labels/a"),
    ({"container": {"type": "RKT"}}, "/container/type"),
    ({"container": {"type": "DOCKER"}}, "/container/docker"),
    ({"container": {"type": "DOCKER", "docker": {}}}, "/container/docker/image"),
    ({"container": {"type": "MESOS", "docker": {"image": "x"}}}, "/container/docker/image"),
    ({"container": {"type": "DOCKER", "docker": {"image": "x"}},
      "networks": [{"mode": "overlay"}]}, "/networks/0/mode"),
    ({"networks": [{"mode": "container/bridge"}]}, "/networks"),
    ({"container": {"type": "MESOS"}, "networks": [{"mode": "container/bridge"}]}, "/networks"),
    ({"container": {"type": "DOCKER", "docker": {"image": "x"}},
      "networks": [{"mode": "host"}, {"mode": "container", "name": "n"}]}, "/networks"),
    ({"container": {"type": "DOCKER", "docker": {"image": "x"},
                    "portMappings": [{"containerPort": 80}]}}, "/container/portMappings"),
    ({"container": {"type": "DOCKER", "docker": {"image": "x"},
                    "portMappings": [{"containerPort": 80, "protocol": "icmp"}]},
      "networks": [{"mode": "container/bridge"}]}, "/container/portMappings/0/protocol"),
    ({"container": {"type": "DOCKER", "docker": {"image": "x"}},
      "networks": [{"mode": "container/bridge"}], "portDefinitions": [{"port": 0}]},
     "/portDefinitions"),
    ({"readinessChecks": [{"portName": "nope"}]}, "/readinessChecks/0/portName"),
    ({"fetch": [{"cache": True}]}, "/fetch/0/uri"),
    ({"fetch": [], "uris": []}, "/uris"),
    ({"version": "yesterday"}, "/version"),
    ({"version": "9999-12-31T23:59:59.999-01:00"}, "/version"),
    ({"versionInfo": {"lastScalingAt": "2026-01-02T03:04:05Z"}},
     "/versionInfo/lastConfigChangeAt"),
    ({"taskKillGracePeriodSeconds": -3}, "/taskKillGracePeriodSeconds"),
    ({"dependencies": ["../../.."]}, "/dependencies/0"),
    ({"acceptedResourceRoles": ["a", "a"]}, "/acceptedResourceRoles/1"),
    ({"somethingNew": 1}, "/somethingNew"),
    ({"id": "/" + "a" * 200}, "/id"),
    ({"healthChecks": [{"path": "/a\x00b"}]}, "/healthChecks/0/path"),
    ({"container": {"docker": {"image": "x"}}, "networks": [{"mode": "container", "name": "n"}],
      "healthChecks": [{"protocol": "MESOS_TCP"}]}, "/healthChecks/0/portIndex"),
    ({"networks": [{"mode": "host", "name": "n"}]}, "/networks/0/name"),
    ({"container": {"type": "DOCKER", "docker": {"image": "x", "network": "NONE"}}},
     "/container/docker/network"),
    ({"container": {"docker": {"image": "x"}, "volumes": [{"containerPath": "/d"}]}},
     "/container/volumes/0/hostPath"),
    ({"readinessChecks": [{"portName": "default", "timeoutSeconds": 40}]},
     "/readinessChecks/0/timeoutSeconds"),
    ({"ipAddress": {"networkName": "n"}}, "/ipAddress"),
]


@pytest.mark.parametrize(("patch", "path"), MALFORMED)
def test_each_rule_yields_a_detail_naming_the_path(patch: dict[str, Any], path: str) -> None:
    """A malformed field gives AppValidationError with a detail at that field's path."""
    obj = {"id": "/app", "cmd": "sleep 1", **patch}
    details = details_of(obj)
    assert path in details, details
    assert all(errors and all(isinstance(e, str) and e for e in errors)
               for errors in details.values())


def test_all_errors_are_collected_at_once() -> None:
    """Several bad fields produce one error with a detail for each."""
    details = details_of({"id": "/a", "cmd": "x", "cpus": -1, "mem": "lots",
                          "instances": None, "killSelection": 3, "labels": []})
    assert {"/cpus", "/mem", "/killSelection", "/labels"} <= set(details)


def test_large_numbers_round_trip_up_to_the_limit() -> None:
    """Numbers up to 2^53 in magnitude parse, render and parse back unchanged."""
    app = parse_app({"id": "/a", "cmd": "x", "mem": 2.0**53, "cpus": 1e-9})
    assert parse_app(json.loads(json.dumps(render_app(app)))) == app


def test_app_needs_cmd_args_or_docker_image() -> None:
    """An app with neither cmd, args nor a Docker container is rejected at /."""
    assert "/" in details_of({"id": "/a"})
    app = parse_app({"id": "/a", "container": {"docker": {"image": "busybox"}}})
    assert app.is_docker and app.cmd is None and app.args is None


WRONG_TYPES = [1, 1.5, True, "s", [], [1], {}, {"x": 1}]
FIELDS = ["id", "cmd", "args", "user", "env", "instances", "cpus", "mem", "disk", "gpus",
          "executor", "constraints", "fetch", "uris", "portDefinitions", "ports",
          "requirePorts", "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds",
          "container", "networks", "healthChecks", "readinessChecks", "dependencies",
          "upgradeStrategy", "labels", "acceptedResourceRoles", "role", "killSelection",
          "unreachableStrategy", "taskKillGracePeriodSeconds", "secrets", "version",
          "versionInfo"]


@pytest.mark.parametrize("field", FIELDS)
def test_wrong_types_anywhere_raise_only_validation_errors(field: str) -> None:
    """Every field fed values of the wrong JSON type fails with AppValidationError or parses."""
    for value in WRONG_TYPES:
        for wrapped in (value, [value], {"k": value}, [{"k": value}], [[value]]):
            try:
                parse_app({"id": "/a", "cmd": "x", field: wrapped})
            except AppValidationError as exc:
                assert exc.details and all(d["path"].startswith("/") for d in exc.details)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from([*FIELDS, "docker", "image", "mode", "protocol",
                                       "portIndex", "command", "value", "x"]),
                      children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6), json_values)
def test_random_json_never_raises_anything_but_validation_errors(
    fields: dict[str, Any], top: Any
) -> None:
    """Random JSON, as the body or as field values, yields an App or an AppValidationError."""
    for body in (top, {"id": "/h", "cmd": "x", **fields}):
        try:
            app = parse_app(body)
        except AppValidationError as exc:
            assert exc.details
            continue
        rendered = render_app(app)
        json.dumps(rendered, allow_nan=False)
        assert parse_app(rendered) == app


def test_read_only_fields_sent_back_are_ignored() -> None:
    """tasksRunning, deployments, tasks and lastTaskFailure in a body are ignored."""
    app = parse_app({"id": "/a", "cmd": "x", "tasksRunning": 3, "deployments": [{"id": "d"}],
                     "tasks": [], "lastTaskFailure": {"x": 1}, "tasksHealthy": "?"})
    assert app == parse_app({"id": "/a", "cmd": "x"})


def test_partial_update_keeps_fields_not_sent() -> None:
    """A partial update changes only the fields it sends."""
    base = parse_app(FULL_APP)
    updated = parse_app({"instances": 7, "tasksRunning": 3}, base=base, partial=True)
    assert updated.instances == 7
    assert updated == App(**{**{a.name: getattr(base, a.name) for a in App.__attrs_attrs__},
                             "instances": 7})


def test_partial_update_switches_cmd_to_args_and_checks_id() -> None:
    """Sending args replaces the base's cmd; a different id in the body is refused."""
    base = parse_app({"id": "/g/a", "cmd": "x"})
    updated = parse_app({"args": ["/bin/echo", "hi"]}, base=base, partial=True)
    assert updated.cmd is None and updated.args == ("/bin/echo", "hi")
    assert "/id" in details_of({"id": "/g/other"}, base=base, partial=True)
    assert parse_app({"id": "a", "mem": 1}, base=base, partial=True, group="/g").mem == 1.0


def test_partial_update_to_bridge_networking_drops_port_definitions() -> None:
    """Moving a host app onto the bridge drops its port definitions and adds a mapping."""
    base = parse_app({"id": "/a", "container": {"docker": {"image": "nginx"}}})
    updated = parse_app({"networks": [{"mode": "container/bridge"}]}, base=base, partial=True)
    assert updated.port_definitions == ()
    assert updated.container is not None
    assert updated.container.port_mappings == (AppPortMapping(container_port=0, host_port=0),)


def test_partial_update_to_host_networking_drops_port_mappings() -> None:
    """Moving a bridge app onto the host network drops its mappings and adds a default port."""
    base = parse_app(DOCKER_APP)
    updated = parse_app({"networks": [{"mode": "host"}], "healthChecks": []}, base=base,
                        partial=True)
    assert updated.container is not None and updated.container.port_mappings is None
    assert updated.port_definitions == (PortDefinition(name="default"),)
    assert updated.container.docker == base.container.docker if base.container else False


def test_partial_update_with_legacy_docker_network_replaces_networks() -> None:
    """An old-style update with docker.network BRIDGE moves a host app onto the bridge."""
    base = parse_app({"id": "/a", "container": {"docker": {"image": "nginx"}}})
    updated = parse_app({"container": {"type": "DOCKER", "docker": {
        "image": "nginx:2", "network": "BRIDGE",
        "portMappings": [{"containerPort": 80}]}}}, base=base, partial=True)
    assert [n.mode for n in updated.networks] == ["container/bridge"]
    assert updated.port_definitions == ()
    assert updated.container is not None and updated.container.port_mappings == (
        AppPortMapping(container_port=80, host_port=0),)


def test_full_replacement_resets_fields_not_sent() -> None:
    """Without partial, fields not sent get defaults and the id may come from the base."""
    base = parse_app(FULL_APP)
    replaced = parse_app({"cmd": "y"}, base=base)
    assert replaced.id == base.id and replaced.instances == 1 and replaced.labels == {}


def test_legacy_ports_map_to_port_definitions() -> None:
    """A legacy ports list becomes one port definition per entry."""
    app = parse_app({"id": "/a", "cmd": "x", "ports": [0, 10005]})
    assert app.port_definitions == (PortDefinition(port=0), PortDefinition(port=10005))
    assert render_app(app)["ports"] == [0, 10005]
    assert parse_app({"id": "/a", "cmd": "x", "ports": []}).port_definitions == ()


def test_legacy_docker_network_and_port_mappings_are_migrated() -> None:
    """docker.network BRIDGE and docker.portMappings become networks and container.portMappings."""
    app = parse_app({"id": "/a", "container": {"type": "DOCKER", "docker": {
        "image": "nginx", "network": "BRIDGE",
        "portMappings": [{"containerPort": 80, "servicePort": 10080}]}}})
    assert [n.mode for n in app.networks] == ["container/bridge"]
    assert app.container is not None
    assert app.container.port_mappings == (
        AppPortMapping(container_port=80, host_port=0, service_port=10080),)
    rendered = render_app(app)
    assert "network" not in rendered["container"]["docker"]
    assert rendered["ports"] == [10080] and "portDefinitions" not in rendered


def test_container_network_mapping_has_no_host_port_by_default() -> None:
    """On a named container network a mapping without hostPort takes no host port."""
    app = parse_app({"id": "/a", "container": {"docker": {"image": "i"}, "portMappings": [
        {"containerPort": 80}]}, "networks": [{"mode": "container", "name": "dcos"}]})
    assert app.container is not None and app.container.port_mappings is not None
    assert app.container.port_mappings[0].host_port is None
    assert app.host_port_count == 0


def test_round_trip_is_identity_for_full_apps() -> None:
    """parse → render → parse gives an equal App, and render output is JSON."""
    for obj in (FULL_APP, DOCKER_APP, {"id": "x", "args": ["a", "b"],
                                       "unreachableStrategy": "disabled"}):
        app = parse_app(obj)
        rendered = render_app(app)
        json.loads(json.dumps(rendered, allow_nan=False))
        assert parse_app(rendered) == app


def test_render_has_exactly_marathons_keys() -> None:
    """A full app renders Marathon's App keys, no more, and the embeds come from extra."""
    app = parse_app(FULL_APP)
    assert set(render_app(app)) == APP_KEYS
    rendered = render_app(app, extra={"tasksRunning": 1, "deployments": []})
    assert set(rendered) == APP_KEYS | {"tasksRunning", "deployments"}
    assert rendered["dependencies"] == ["/prod/db", "/infra/cache"]
    assert rendered["env"]["DB_PASS"] == {"secret": "db"}
    assert rendered["mem"] == 64 and isinstance(rendered["mem"], int)


def test_render_health_checks_show_only_their_protocols_fields() -> None:
    """COMMAND checks show command and no port; HTTP checks show path and portIndex."""
    checks = render_app(parse_app(FULL_APP))["healthChecks"]
    assert checks[0]["path"] == "/health" and checks[0]["portIndex"] == 0

    def only(check: dict[str, Any]) -> dict[str, Any]:
        [rendered] = render_app(parse_app({"id": "/a", "cmd": "x",
                                           "healthChecks": [check]}))["healthChecks"]
        return rendered

    command = only({"protocol": "COMMAND", "command": {"value": "true"}})
    assert command["command"] == {"value": "true"} and "portIndex" not in command
    tcp = only({"protocol": "TCP", "port": 8080})
    assert tcp["port"] == 8080 and "path" not in tcp


def test_more_than_one_health_check_is_refused() -> None:
    """The agent runs one health check per task (as Mesos): a second is refused, not ignored."""
    details = details_of({"id": "/a", "cmd": "x", "healthChecks": [
        {"protocol": "COMMAND", "command": {"value": "true"}}, {"protocol": "TCP"}]})
    assert "/healthChecks" in details


def test_version_is_normalised_to_milliseconds_z() -> None:
    """A version with an offset is stored as the same instant in Z form."""
    app = parse_app({"id": "/a", "cmd": "x", "version": "2026-01-02T04:04:05+01:00"})
    assert app.version == "2026-01-02T03:04:05.000Z"


def test_timestamps_round_trip_and_use_z() -> None:
    """iso() renders milliseconds with Z, parse_iso() reads it back; new_version uses the clock."""
    assert iso(1767323045.678) == "2026-01-02T03:04:05.678Z"
    assert parse_iso("2026-01-02T03:04:05.678Z") == pytest.approx(1767323045.678)
    assert parse_iso("2026-01-02T03:04:05Z") == 1767323045.0
    assert parse_iso("2026-01-02T03:04:05.123456789+00:00") == pytest.approx(1767323045.123456)
    assert new_version(FakeClock(1767323045.5)) == "2026-01-02T03:04:05.500Z"
    for bad in ("", "2026-13-01T00:00:00Z", "2026-01-02", "2026-01-02T03:04:05", "now"):
        with pytest.raises(ValueError):
            parse_iso(bad)


def _task(**kw: Any) -> MarathonTask:
    base: dict[str, Any] = {
        "task_id": "web.instance-1._app.1", "instance_id": "web.instance-1", "app_id": "/web",
        "version": "2026-01-02T03:04:05.678Z", "condition": InstanceCondition.RUNNING,
        "agent_id": "agent-1", "host": "h1", "ports": (31000,), "service_ports": (10000,),
        "staged_at": 1767323045.0, "started_at": 1767323046.5, "ip_addresses": ("10.0.0.1",),
    }
    base.update(kw)
    return MarathonTask(**base)


def test_render_task_has_marathons_keys() -> None:
    """A running task of an app without health checks shows Marathon's Task keys."""
    app = parse_app({"id": "/web", "cmd": "x"})
    out = render_task(_task(), app)
    assert set(out) == {"id", "appId", "host", "ports", "servicePorts", "slaveId", "state",
                        "stagedAt", "startedAt", "version", "ipAddresses", "localVolumes"}
    assert out["state"] == "TASK_RUNNING" and out["slaveId"] == "agent-1"
    assert out["startedAt"] == "2026-01-02T03:04:06.500Z"
    assert out["ipAddresses"] == [{"ipAddress": "10.0.0.1", "protocol": "IPv4"}]
    json.dumps(out)


def test_render_task_health_results_only_with_health_checks() -> None:
    """healthCheckResults appears when the app has health checks, with Marathon's fields."""
    app = parse_app({"id": "/web", "cmd": "x", "role": "r", "healthChecks": [{}]})
    health = HealthResult(alive=True, first_success="2026-01-02T03:04:07.000Z")
    out = render_task(_task(health=health, healthy=True), app)
    assert out["role"] == "r"
    assert out["healthCheckResults"] == [{
        "alive": True, "consecutiveFailures": 0, "firstSuccess": "2026-01-02T03:04:07.000Z",
        "lastFailure": None, "lastSuccess": None, "lastFailureCause": None,
        "taskId": "web.instance-1._app.1", "instanceId": "web.instance-1"}]
    assert render_task(_task(), app)["healthCheckResults"] == []


def test_render_terminal_task_hides_ports_and_times() -> None:
    """A task no longer active shows no ports, times or version, like Marathon."""
    out = render_task(_task(condition=InstanceCondition.FAILED), None)
    assert out["ports"] == [] and "startedAt" not in out and "version" not in out
    assert out["state"] == "TASK_FAILED"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_random_partial_updates_never_raise_anything_else(fields: dict[str, Any]) -> None:
    """Random partial updates of a full app yield an App or an AppValidationError."""
    base = parse_app(FULL_APP)
    for candidate in (base, parse_app(DOCKER_APP)):
        try:
            app = parse_app(fields, base=candidate, partial=True)
        except AppValidationError as exc:
            assert exc.details
            continue
        assert app.id == candidate.id
        assert parse_app(render_app(app)) == app


def test_huge_and_deep_bad_bodies_give_bounded_errors() -> None:
    """Deeply nested or huge wrong values give a bounded, short list of details."""
    deep = json.loads("[" * 900 + "]" * 900)
    details = details_of({"id": "/a", "cmd": "x", "cpus": deep, "labels": deep})
    assert set(details) == {"/cpus", "/labels"}
    many = details_of({"id": "/a", "cmd": "x", "healthChecks": [1] * 5000})
    assert len(many) == 100 and len(json.dumps(many)) < 20_000


def test_an_empty_uri_is_refused_like_an_empty_fetch_uri() -> None:
    """uris: [''] is refused naming /uris/0 (fetch[].uri may not be empty either)."""
    with pytest.raises(AppValidationError) as caught:
        parse_app({"id": "/h", "cmd": "x", "uris": ["http://a/b", ""]})
    assert [d["path"] for d in caught.value.details] == ["/uris/1"]
    app = parse_app({"id": "/h", "cmd": "x", "uris": ["http://a/b"]})
    assert parse_app(render_app(app)) == app
