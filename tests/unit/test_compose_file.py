"""docker-compose.yml and the Dockerfile describe a cluster our CLI actually accepts."""

from __future__ import annotations

from pathlib import Path

import yaml

from frameworks.marathon.config import MarathonConfig
from mesoslite.agent import AgentConfig
from mesoslite.cli import build_config, build_parser
from mesoslite.dns.main import config_from_args as dns_config
from mesoslite.lb.config import LbConfig
from mesoslite.master import MasterConfig

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_are_zookeeper_three_masters_two_agents_and_two_marathons() -> None:
    """The cluster has ZooKeeper, three masters, two agents, two framework instances, the
    load balancer and the DNS server."""
    services = _compose()["services"]
    assert sorted(services) == ["agent-1", "agent-2", "dns", "lb", "marathon-1", "marathon-2",
                                "master-1", "master-2", "master-3", "zookeeper"]


def test_every_command_parses_into_a_valid_config() -> None:
    """Each master and agent command is accepted by the real CLI and builds a valid config."""
    parser = build_parser()
    masters, agents, marathons, lbs, dnss = [], [], [], [], []
    for name, service in _compose()["services"].items():
        if name == "zookeeper":
            continue
        args = parser.parse_args([str(a) for a in service["command"]])
        if args.command == "master":
            masters.append(build_config(MasterConfig, args))
        elif args.command == "marathon":
            marathons.append(build_config(MarathonConfig, args))
        elif args.command == "lb":
            lbs.append(build_config(LbConfig, args))
        elif args.command == "dns":
            dnss.append(dns_config(args))
        else:
            assert args.command == "agent"
            agents.append(build_config(AgentConfig, args))
    assert len(masters) == 3 and len(agents) == 2 and len(marathons) == 2
    assert len(lbs) == 1 and len(dnss) == 1
    zk = {m.zk for m in masters}
    assert len(zk) == 1 and next(iter(zk)).startswith("zk://")
    assert all(m.quorum == 2 for m in masters)
    assert {a.master for a in agents} == zk
    assert {m.master for m in marathons} == zk
    assert len({m.zk for m in marathons}) == 1 and marathons[0].zk.startswith("zk://")
    assert marathons[0].zk != next(iter(zk)), "the framework keeps its state apart"
    assert all(m.http_address == "127.0.0.1" for m in marathons)
    ports = [m.http_port for m in masters] + [m.zmq_port for m in masters] + [
        a.http_port for a in agents] + [m.http_port for m in marathons] + [
        lbs[0].http_port, lbs[0].https_port, lbs[0].stats_port, lbs[0].appid_port,
        lbs[0].api_port, dnss[0].port, dnss[0].http_port]
    assert lbs[0].marathon in {f"http://127.0.0.1:{m.http_port}" for m in marathons}
    assert dnss[0].master in zk and dnss[0].ip == "127.0.0.1"
    assert len(set(ports)) == len(ports), "two services would bind the same port"
    assert all(m.ip == "127.0.0.1" for m in masters) and all(a.ip == "127.0.0.1" for a in agents)
    assert all("docker" in a.containerizers for a in agents)


def test_agent_work_dirs_are_the_same_path_inside_and_outside() -> None:
    """Agents mount their work_dir at the same path and can reach the Docker engine."""
    parser = build_parser()
    for name, service in _compose()["services"].items():
        if not name.startswith("agent"):
            continue
        config = build_config(AgentConfig, parser.parse_args([str(a) for a in service["command"]]))
        mounts = dict(v.split(":", 1) for v in service["volumes"])
        assert mounts[config.work_dir] == config.work_dir
        assert mounts["/var/run/docker.sock"] == "/var/run/docker.sock"


def test_dockerfile_installs_the_package_with_docker_support() -> None:
    """The image installs mesoslite with the docker extra and runs the CLI."""
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install" in text and ".[docker]" in text
    assert 'ENTRYPOINT ["mesoslite"]' in text
    for path in ("setup.cfg", "pyproject.toml", "mesoslite"):
        assert (ROOT / path).exists()
