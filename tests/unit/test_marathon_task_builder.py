"""The Marathon task builder: environment, Docker mappings, health checks, kill policy."""

from __future__ import annotations

from typing import Any

import pytest

from frameworks.marathon.core.model import App
from frameworks.marathon.core.task_builder import build_task_info, task_environment
from frameworks.marathon.wire.app_json import parse_app
from mesoslite.agent.containerizer.docker_spec import (
    DockerLaunchSpec,
    DockerOptions,
    plan_container,
)
from mesoslite.health.schedule import validate_health_check
from mesoslite.master.validation import check_tasks
from mesoslite.protocol import CommandURI, Operation, TaskInfo
from mesoslite.resources import Resources

TASK_ID = "web.instance-0b1c._app.1"
AGENT = "agent-7"


def build(app: App, host_ports: tuple[int, ...], **kw: Any) -> TaskInfo:
    """Build a task of ``app`` with resources holding exactly ``host_ports``."""
    ports = ";".join(f"ports:[{p}-{p}]" for p in host_ports)
    resources = Resources.parse(f"cpus:{app.cpus};mem:{app.mem};{ports}")
    return build_task_info(app, task_id=TASK_ID, agent_id=AGENT, hostname="node1.local",
                           resources=resources, host_ports=host_ports,
                           service_ports=kw.pop("service_ports", ()), **kw)


def assert_master_accepts(task: TaskInfo) -> None:
    """The master's ACCEPT validation launches the task from an offer holding its resources."""
    offered = [("*", task.resources + Resources.parse("cpus:4;mem:4096"))]
    verdicts, _left, op_errors = check_tasks(
        [Operation(type="LAUNCH", task_infos=(task,))], "fw-1", AGENT, offered, (), ())
    assert op_errors == []
    assert verdicts[0].error == "", verdicts[0].error


def test_shell_app_environment_has_marathons_variables() -> None:
    """PORTn, PORT, PORTS, PORT_<NAME>, HOST, MARATHON_APP_* and MESOS_TASK_ID are set."""
    app = parse_app({
        "id": "/grp/web", "cmd": "serve --port $PORT0", "cpus": 0.25, "mem": 64, "gpus": 0,
        "env": {"MODE": "prod", "TOKEN": {"secret": "tok"}},
        "secrets": {"tok": {"source": "/s/tok"}},
        "portDefinitions": [{"port": 10001, "name": "http"}, {"port": 0, "name": "admin-ui"}],
        "labels": {"owner": "team-a", "HAPROXY_0_VHOST": "web.example", "big": "x" * 512,
                   "a.b--c": "d"},
        "version": "2026-01-02T03:04:05.678Z",
    })
    task = build(app, (31000, 31001))
    assert task.command is not None and task.command.shell
    assert task.command.value == "serve --port $PORT0"
    env = task.command.environment
    assert env["MODE"] == "prod" and "TOKEN" not in env
    assert task.command.secret_environment == {"TOKEN": "/s/tok"}  # resolved by the agent
    assert (env["PORT0"], env["PORT1"], env["PORT"]) == ("31000", "31001", "31000")
    assert env["PORTS"] == "31000,31001"
    assert env["PORT_HTTP"] == "31000" and env["PORT_ADMIN-UI"] == "31001"
    assert env["PORT_ADMIN_UI"] == "31001"
    assert env["PORT_10001"] == "31000" and env["PORT_31001"] == "31001"
    assert env["HOST"] == "node1.local"
    assert env["MARATHON_APP_ID"] == "/grp/web"
    assert env["MARATHON_APP_VERSION"] == "2026-01-02T03:04:05.678Z"
    assert env["MESOS_TASK_ID"] == TASK_ID
    assert env["MARATHON_APP_LABELS"] == "OWNER HAPROXY_0_VHOST A_B_C"
    assert env["MARATHON_APP_LABEL_OWNER"] == "team-a"
    assert env["MARATHON_APP_LABEL_A_B_C"] == "d"
    assert "MARATHON_APP_LABEL_BIG" not in env
    assert env["MARATHON_APP_RESOURCE_CPUS"] == "0.25"
    assert env["MARATHON_APP_RESOURCE_MEM"] == "64.0"
    assert env["MARATHON_APP_RESOURCE_GPUS"] == "0"
    assert task.name == "web.grp" and task.labels["owner"] == "team-a"
    assert task.container is None and task.kill_policy is None and task.health_check is None
    assert_master_accepts(task)


def test_args_app_runs_an_argv_without_shell() -> None:
    """args become a non-shell command whose value is argv[0]."""
    app = parse_app({"id": "/a", "args": ["/bin/echo", "hi"], "portDefinitions": []})
    task = build(app, ())
    assert task.command is not None and not task.command.shell
    assert task.command.value == "/bin/echo" and task.command.arguments == ("/bin/echo", "hi")
    assert not any(k.startswith("PORT") for k in task.command.environment)
    assert_master_accepts(task)


def test_docker_bridge_app_maps_chosen_host_ports() -> None:
    """A bridge app gets DockerInfo BRIDGE with each mapping on its chosen host port."""
    app = parse_app({
        "id": "/nginx", "cpus": 0.5, "mem": 64,
        "container": {"type": "DOCKER",
                      "docker": {"image": "nginx:1.25", "forcePullImage": True,
                                 "parameters": [{"key": "label", "value": "a=b"}]},
                      "volumes": [{"containerPath": "/data", "hostPath": "/srv/d", "mode": "RO"}],
                      "portMappings": [{"containerPort": 80, "name": "http"},
                                       {"containerPort": 0, "protocol": "udp,tcp"}]},
        "networks": [{"mode": "container/bridge"}],
    })
    task = build(app, (31005, 31006))
    assert task.container is not None and task.container.type == "DOCKER"
    docker = task.container.docker
    assert docker is not None
    assert (docker.image, docker.network, docker.force_pull_image) == ("nginx:1.25", "BRIDGE",
                                                                       True)
    assert [(m.host_port, m.container_port, m.protocol) for m in docker.port_mappings] == [
        (31005, 80, "tcp"), (31006, 31006, "udp"), (31006, 31006, "tcp")]
    assert [(p.key, p.value) for p in docker.parameters] == [("label", "a=b")]
    assert task.container.volumes[0].mode == "RO"
    env = task.command.environment if task.command else {}
    assert env["PORT0"] == "31005" and env["PORT_HTTP"] == "31005"
    assert env["MARATHON_APP_DOCKER_IMAGE"] == "nginx:1.25"
    assert task.command is not None and task.command.value == "" and not task.command.shell
    assert_master_accepts(task)
    spec = DockerLaunchSpec(command=task.command, sandbox="/tmp/sandbox", environment=env,
                            resources=task.resources, container_info=task.container,
                            agent_id=AGENT, framework_id="fw-1", executor_id=TASK_ID,
                            task_id=TASK_ID)
    plan = plan_container("c1", spec, DockerOptions(volume_allowed_paths=("/srv",)), "scope")
    assert plan.image == "nginx:1.25"


def test_user_network_mapping_without_host_port_takes_none() -> None:
    """On a named container network, mappings without host ports get no Docker mapping."""
    app = parse_app({"id": "/u", "container": {"docker": {"image": "i"}, "portMappings": [
        {"containerPort": 8080, "name": "api"}, {"containerPort": 9090, "hostPort": 0}]},
        "networks": [{"mode": "container", "name": "overlay"}],
        "healthChecks": [{"protocol": "MESOS_TCP", "portIndex": 0}]})
    task = build(app, (31010,))
    docker = task.container.docker if task.container else None
    assert docker is not None and docker.network == "USER" and docker.user_network == "overlay"
    assert [(m.host_port, m.container_port) for m in docker.port_mappings] == [(31010, 9090)]
    env = task.command.environment if task.command else {}
    assert (env["PORT0"], env["PORT_8080"], env["PORT_API"]) == ("8080", "8080", "8080")
    assert (env["PORT1"], env["PORT_9090"]) == ("31010", "31010")
    assert (env["PORT"], env["PORTS"]) == ("31010", "31010")
    assert task.health_check is not None and task.health_check.tcp is not None
    assert task.health_check.tcp.port == 8080


@pytest.mark.parametrize(
    ("check", "kind", "port", "scheme"),
    [({"protocol": "MESOS_HTTP", "portIndex": 1, "path": "/health"}, "HTTP", 31001, "http"),
     ({"protocol": "HTTPS", "portIndex": 0}, "HTTP", 31000, "https"),
     ({"protocol": "MESOS_HTTPS", "port": 8443}, "HTTP", 8443, "https"),
     ({"protocol": "TCP", "portIndex": 1}, "TCP", 31001, None),
     ({"protocol": "MESOS_TCP"}, "TCP", 31000, None)],
)
def test_health_checks_translate_with_port_index(
    check: dict[str, Any], kind: str, port: int, scheme: str | None
) -> None:
    """The app's health check becomes the task's check on the indexed host port."""
    app = parse_app({"id": "/h", "cmd": "x",
                     "portDefinitions": [{"port": 0}, {"port": 0}],
                     "healthChecks": [{**check, "gracePeriodSeconds": 12, "intervalSeconds": 3,
                                       "timeoutSeconds": 2, "maxConsecutiveFailures": 5,
                                       "delaySeconds": 1}]})
    hc = build(app, (31000, 31001)).health_check
    assert hc is not None and hc.type == kind
    assert (hc.grace_period_seconds, hc.interval_seconds, hc.timeout_seconds) == (12, 3, 2)
    assert (hc.consecutive_failures, hc.delay_seconds) == (5, 1)
    if kind == "HTTP":
        assert hc.http is not None and (hc.http.port, hc.http.scheme) == (port, scheme)
        assert hc.http.path == check.get("path", "/")
    else:
        assert hc.tcp is not None and hc.tcp.port == port
    assert validate_health_check(hc) == ""


def test_bridge_health_check_uses_the_mapped_host_port() -> None:
    """With bridge networking the indexed mapping's host port is probed."""
    app = parse_app({"id": "/b", "container": {"docker": {"image": "i"}, "portMappings": [
        {"containerPort": 80}, {"containerPort": 81}]},
        "networks": [{"mode": "container/bridge"}],
        "healthChecks": [{"protocol": "MESOS_HTTP", "portIndex": 1}]})
    hc = build(app, (32000, 32001)).health_check
    assert hc is not None and hc.http is not None and hc.http.port == 32001


def test_command_health_check_and_kill_policy() -> None:
    """COMMAND checks run a shell command with the task env; the grace period is the kill policy."""
    app = parse_app({"id": "/c", "cmd": "x", "taskKillGracePeriodSeconds": 9,
                     "healthChecks": [{"protocol": "COMMAND",
                                       "command": {"value": "curl -f localhost:$PORT0"},
                                       "maxConsecutiveFailures": 0}]})
    task = build(app, (31000,))
    hc = task.health_check
    assert hc is not None and hc.type == "COMMAND" and hc.command is not None
    assert hc.command.shell and hc.command.value == "curl -f localhost:$PORT0"
    assert hc.command.environment["PORT0"] == "31000"
    assert hc.consecutive_failures == 0
    assert validate_health_check(hc) == ""
    assert task.kill_policy is not None and task.kill_policy.grace_period == 9.0
    assert_master_accepts(task)


def test_wrong_number_of_host_ports_is_refused() -> None:
    """Building with fewer host ports than the app needs raises ValueError naming host_ports."""
    app = parse_app({"id": "/p", "cmd": "x", "portDefinitions": [{}, {}]})
    with pytest.raises(ValueError, match="host_ports"):
        build(app, (31000,))


def test_environment_helper_matches_the_task() -> None:
    """task_environment gives the same variables the built task carries."""
    app = parse_app({"id": "/e", "cmd": "x"})
    env = task_environment(app, task_id=TASK_ID, hostname="h", host_ports=(31000,))
    task = build(app, (31000,))
    assert task.command is not None
    assert env == {**task.command.environment, "HOST": "h"}


def test_fetch_becomes_the_commands_uris() -> None:
    """fetch (and the deprecated uris, extracted by extension) become command.uris with
    destPath as output_file; a Docker app's command carries them too."""
    app = parse_app({"id": "/f", "cmd": "./run", "fetch": [
        {"uri": "https://h/app.tgz", "cache": True},
        {"uri": "http://h/tool", "executable": True, "extract": False, "destPath": "bin/t"}]})
    task = build(app, (31000,)[:app.host_port_count])
    assert task.command is not None
    assert task.command.uris == (
        CommandURI(value="https://h/app.tgz", executable=False, extract=True, cache=True),
        CommandURI(value="http://h/tool", executable=True, extract=False, output_file="bin/t"))
    legacy = parse_app({"id": "/l", "cmd": "x", "uris": ["http://h/a.tar.gz", "http://h/b.sh"]})
    assert [(u.uri, u.extract) for u in legacy.fetch] == [("http://h/a.tar.gz", True),
                                                         ("http://h/b.sh", False)]
    docker = parse_app({"id": "/d", "container": {"docker": {"image": "busybox"}},
                        "fetch": [{"uri": "http://h/c"}]})
    built = build(docker, (31000,)[:docker.host_port_count])
    assert built.command is not None and built.command.uris[0].value == "http://h/c"
