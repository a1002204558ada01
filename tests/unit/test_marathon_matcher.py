"""Unit tests for the Marathon offer matcher and service-port allocation.

Covers frameworks.marathon.core.matcher and frameworks.marathon.core.service_ports.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from frameworks.marathon.core.matcher import LaunchWant, match_offers, reject_summary
from frameworks.marathon.core.model import (
    App,
    AppPortMapping,
    Container,
    Docker,
    Network,
    PortDefinition,
)
from frameworks.marathon.core.service_ports import (
    ServicePortsExhausted,
    allocate_service_ports,
    service_ports,
    used_service_ports,
)
from mesoslite.resources import Resources
from mesoslite.testing import make_offer


def web(**fields: object) -> App:
    """A small host-networking app with one port unless told otherwise."""
    base: dict[str, object] = {"id": "/web", "cmd": "serve", "cpus": 0.5, "mem": 64.0}
    base.update(fields)
    return App(**base)  # type: ignore[arg-type]


def bridge_app(*mappings: AppPortMapping) -> App:
    """A Docker app on the bridge network with the given port mappings."""
    return App(
        id="/br",
        cpus=0.1,
        mem=32.0,
        networks=(Network(mode="container/bridge"),),
        container=Container(type="DOCKER", docker=Docker(image="nginx"), port_mappings=mappings),
    )


def offer(res: str = "cpus:4;mem:4096;disk:1000;ports:[31000-31099]", **kw: object):
    """An offer on a fresh agent."""
    return make_offer(res, **kw)  # type: ignore[arg-type]


# -- ports ----------------------------------------------------------------------------------


def test_random_host_ports_come_from_the_offer_and_are_recorded_exactly() -> None:
    """Host ports are distinct offered ports and the placement consumes exactly them."""
    app = web(port_definitions=(PortDefinition(name="http"), PortDefinition(name="admin")))
    o = offer()
    result = match_offers([o], [LaunchWant(app, 1)], {}, rng=random.Random(7))
    (p,) = result.placements
    assert len(p.host_ports) == 2 and len(set(p.host_ports)) == 2
    assert all(31000 <= port <= 31099 for port in p.host_ports)
    expected = Resources.from_dict(
        {"cpus": 0.5, "mem": 64.0, "ports": [(port, port) for port in p.host_ports]}
    )
    assert p.resources == expected
    assert o.resources.contains(p.resources)
    assert (p.offer_id, p.agent_id, p.hostname) == (o.id, o.agent_id, o.hostname)
    assert result.unused_offers == []


def test_random_host_ports_depend_on_the_injected_rng() -> None:
    """Different seeds draw different ports; the same seed draws the same ones."""
    app = web()
    o = offer()
    draws = {
        match_offers([o], [LaunchWant(app, 1)], {}, rng=random.Random(s)).placements[0].host_ports
        for s in range(20)
    }
    assert len(draws) > 5
    again = [
        match_offers([o], [LaunchWant(app, 1)], {}, rng=random.Random(3)).placements[0].host_ports
        for _ in range(2)
    ]
    assert again[0] == again[1]


def test_instances_on_one_offer_never_share_host_ports() -> None:
    """Several instances on one offer get disjoint host ports."""
    app = web(port_definitions=(PortDefinition(), PortDefinition()))
    o = offer("cpus:4;mem:4096;ports:[31000-31007]")
    result = match_offers([o], [LaunchWant(app, 5)], {}, rng=random.Random(1))
    ports = [port for p in result.placements for port in p.host_ports]
    assert len(result.placements) == 4  # 8 ports / 2 per instance
    assert len(set(ports)) == 8
    assert result.rejections == {}


def test_require_ports_uses_exactly_the_service_ports() -> None:
    """With requirePorts the host ports equal the service ports."""
    app = web(
        require_ports=True,
        port_definitions=(PortDefinition(port=31005), PortDefinition(port=31050)),
    )
    result = match_offers([offer()], [LaunchWant(app, 1)], {}, rng=random.Random(0))
    assert result.placements[0].host_ports == (31005, 31050)


def test_require_ports_rejects_offer_without_them() -> None:
    """An offer lacking a required port is rejected with InsufficientPorts."""
    app = web(require_ports=True, port_definitions=(PortDefinition(port=10001),))
    o = offer()
    result = match_offers([o], [LaunchWant(app, 1)], {})
    assert result.placements == []
    assert result.unused_offers == [o.id]
    assert result.rejections == {"/web": {"InsufficientPorts": 1}}


def test_require_ports_allows_one_instance_per_offer() -> None:
    """The same fixed port cannot be used twice on one agent."""
    app = web(require_ports=True, port_definitions=(PortDefinition(port=31001),))
    result = match_offers([offer()], [LaunchWant(app, 3)], {})
    assert len(result.placements) == 1


def test_bridge_mappings_random_fixed_and_none() -> None:
    """Bridge: hostPort 0 is random, a fixed hostPort is exact, None needs no host port."""
    app = bridge_app(
        AppPortMapping(container_port=80, host_port=0),
        AppPortMapping(container_port=81, host_port=31010),
        AppPortMapping(container_port=82, host_port=None),
    )
    for seed in range(10):
        result = match_offers([offer()], [LaunchWant(app, 1)], {}, rng=random.Random(seed))
        (p,) = result.placements
        assert len(p.host_ports) == 2
        assert p.host_ports[1] == 31010
        assert p.host_ports[0] != 31010 and 31000 <= p.host_ports[0] <= 31099
        assert p.resources.count_range_values("ports") == 2


def test_bridge_fixed_host_port_missing_is_rejected() -> None:
    """A fixed bridge hostPort outside the offer's ranges rejects the offer."""
    app = bridge_app(AppPortMapping(container_port=80, host_port=8080))
    result = match_offers([offer()], [LaunchWant(app, 1)], {})
    assert result.placements == []
    assert result.rejections == {"/br": {"InsufficientPorts": 1}}


def test_app_without_ports_needs_none() -> None:
    """An app with no port definitions launches on an offer without ports."""
    app = web(port_definitions=())
    result = match_offers([offer("cpus:1;mem:128")], [LaunchWant(app, 1)], {})
    (p,) = result.placements
    assert p.host_ports == ()
    assert p.resources == Resources.parse("cpus:0.5;mem:64")


# -- resources, roles, limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("res", "reason"),
    [
        ("cpus:0.4;mem:4096;disk:100;ports:[31000-31010]", "InsufficientCpus"),
        ("cpus:4;mem:63;disk:100;ports:[31000-31010]", "InsufficientMemory"),
        ("cpus:4;mem:4096;disk:9;ports:[31000-31010]", "InsufficientDisk"),
        ("cpus:4;mem:4096;disk:100;ports:[31000-31010]", "InsufficientGpus"),
        ("cpus:4;mem:4096;disk:100;gpus:1", "InsufficientPorts"),
    ],
)
def test_rejection_reasons(res: str, reason: str) -> None:
    """Each missing resource is reported with Marathon's reason name."""
    app = web(disk=10.0, gpus=1)
    o = offer(res)
    result = match_offers([o], [LaunchWant(app, 1)], {})
    assert result.placements == []
    assert result.rejections == {"/web": {reason: 1}}
    assert result.unused_offers == [o.id]


def test_gpus_are_consumed_when_wanted() -> None:
    """A GPU app's placement includes its gpus."""
    app = web(gpus=1, port_definitions=())
    result = match_offers([offer("cpus:4;mem:4096;gpus:2")], [LaunchWant(app, 1)], {})
    assert result.placements[0].resources == Resources.parse("cpus:0.5;gpus:1;mem:64")


def test_accepted_resource_roles() -> None:
    """acceptedResourceRoles filters offers by role; None accepts any."""
    star, prod = offer(role="*"), offer(role="prod")
    only_star = web(accepted_resource_roles=("*",))
    result = match_offers([star, prod], [LaunchWant(only_star, 2)], {})
    assert {p.offer_id for p in result.placements} == {star.id}
    assert result.rejections == {"/web": {"UnfulfilledRole": 1}}
    any_role = web()
    result = match_offers([star, prod], [LaunchWant(any_role, 2)], {})
    assert {p.offer_id for p in result.placements} == {star.id, prod.id}
    only_prod = web(accepted_resource_roles=("prod",))
    result = match_offers([star], [LaunchWant(only_prod, 1)], {})
    assert result.rejections == {"/web": {"UnfulfilledRole": 1}}


def test_max_per_offer_bounds_launches_across_apps() -> None:
    """At most max_per_offer launches go onto one offer, whichever apps they belong to."""
    big = offer("cpus:100;mem:100000;ports:[31000-32000]")
    a, b = web(id="/a"), web(id="/b")
    result = match_offers([big], [LaunchWant(a, 4), LaunchWant(b, 4)], {})
    assert Counter(p.app_id for p in result.placements) == {"/a": 4, "/b": 1}
    result = match_offers([big], [LaunchWant(a, 10)], {}, max_per_offer=3)
    assert len(result.placements) == 3


def test_instances_spread_round_robin_over_offers() -> None:
    """Instances of one want spread over offers before doubling up."""
    o1, o2 = offer(), offer()
    result = match_offers([o1, o2], [LaunchWant(web(), 4)], {})
    assert Counter(p.offer_id for p in result.placements) == {o1.id: 2, o2.id: 2}


def test_priority_order_of_wants() -> None:
    """When an offer fits only one instance, the first want gets it."""
    small = offer("cpus:0.5;mem:64;ports:[31000-31001]")
    result = match_offers([small], [LaunchWant(web(id="/hi"), 1), LaunchWant(web(id="/lo"), 1)], {})
    assert [p.app_id for p in result.placements] == ["/hi"]
    assert result.rejections == {"/lo": {"InsufficientCpus": 1}}


def test_unused_offers_are_reported() -> None:
    """Offers that received nothing are listed as unused."""
    o1, o2 = offer(), offer()
    result = match_offers([o1, o2], [LaunchWant(web(), 1)], {})
    assert len(result.placements) == 1
    assert result.unused_offers == [o2.id]
    assert match_offers([o1], [], {}).unused_offers == [o1.id]
    assert match_offers([o1], [LaunchWant(web(), 0)], {}).placements == []


# -- constraints ------------------------------------------------------------------------------


def test_unique_hostname_across_instances_in_one_round() -> None:
    """UNIQUE hostname holds across instances placed in the same round and running ones."""
    app = web(constraints=(("hostname", "UNIQUE"),))
    offers = [offer(hostname=h) for h in ("h1", "h2", "h3")]
    extra_on_h1 = offer(hostname="h1")
    running = {"/web": [{"hostname": "h3"}]}
    result = match_offers([*offers, extra_on_h1], [LaunchWant(app, 5)], running)
    assert sorted(p.hostname for p in result.placements) == ["h1", "h2"]
    assert result.rejections == {"/web": {"UnfulfilledConstraint": 2}}


def test_constraint_on_attributes_and_running_tasks() -> None:
    """CLUSTER without value follows the first running task's attribute."""
    app = web(constraints=(("rack", "CLUSTER"),))
    r1, r2 = offer(attributes={"rack": "r1"}), offer(attributes={"rack": "r2"})
    running = {"/web": [{"hostname": "old", "rack": "r2"}]}
    result = match_offers([r1, r2], [LaunchWant(app, 3)], running)
    assert {p.offer_id for p in result.placements} == {r2.id}
    assert len(result.placements) == 3
    assert result.placements[0].attributes == {"rack": "r2", "hostname": r2.hostname}


def test_group_by_spreads_evenly_within_one_round() -> None:
    """GROUP_BY zone spreads 4 instances 2/2 even when zone A has two offers."""
    app = web(constraints=(("zone", "GROUP_BY"),))
    a1, a2 = offer(attributes={"zone": "A"}), offer(attributes={"zone": "A"})
    b1 = offer(attributes={"zone": "B"})
    result = match_offers([a1, a2, b1], [LaunchWant(app, 4)], {})
    zones = Counter(p.attributes["zone"] for p in result.placements)
    assert zones == {"A": 2, "B": 2}


def test_max_per_and_missing_attribute() -> None:
    """MAX_PER limits per value; an agent without the attribute is rejected."""
    app = web(constraints=(("rack", "MAX_PER", "2"),))
    r1, bare = offer(attributes={"rack": "r1"}), offer()
    result = match_offers([r1, bare], [LaunchWant(app, 5)], {})
    assert [p.offer_id for p in result.placements] == [r1.id, r1.id]
    assert result.rejections == {"/web": {"UnfulfilledConstraint": 1}}


# -- service ports ----------------------------------------------------------------------------


def test_service_ports_allocated_lowest_free_avoiding_used() -> None:
    """Port 0 gets the lowest free service port not used by other apps; given ports stay."""
    app = web(port_definitions=(PortDefinition(), PortDefinition(port=10001), PortDefinition()))
    done = allocate_service_ports(app, {10000, 10002})
    assert service_ports(done) == (10003, 10001, 10004)
    assert done.port_definitions[1].port == 10001
    assert allocate_service_ports(done, set()) is done


def test_service_ports_for_port_mappings() -> None:
    """Bridge apps get servicePort allocated on their port mappings."""
    app = bridge_app(
        AppPortMapping(container_port=80), AppPortMapping(container_port=81, service_port=10500)
    )
    done = allocate_service_ports(app, {10000})
    assert service_ports(done) == (10001, 10500)
    assert done.container is not None and done.container.port_mappings is not None
    assert done.container.port_mappings[0].container_port == 80


def test_service_ports_reuse_previous_allocation() -> None:
    """An update with port 0 keeps the port allocated to the previous version."""
    before = web(port_definitions=(PortDefinition(port=10042),))
    after = web(cmd="new", port_definitions=(PortDefinition(),))
    assert service_ports(allocate_service_ports(after, {10000}, previous=before)) == (10042,)
    # Taken meanwhile by another app: a fresh one instead.
    assert service_ports(allocate_service_ports(after, {10042}, previous=before)) == (10000,)


def test_service_ports_exhausted() -> None:
    """Running out of the range raises ServicePortsExhausted."""
    app = web(port_definitions=(PortDefinition(), PortDefinition()))
    with pytest.raises(ServicePortsExhausted, match="/web"):
        allocate_service_ports(app, {10000}, port_range=(10000, 10001))


def test_used_service_ports_excludes_the_app_itself() -> None:
    """used_service_ports collects other apps' non-zero service ports."""
    apps = [
        web(id="/a", port_definitions=(PortDefinition(port=10005), PortDefinition())),
        web(id="/b", port_definitions=(PortDefinition(port=10006),)),
    ]
    assert used_service_ports(apps) == {10005, 10006}
    assert used_service_ports(apps, exclude="/b") == {10005}


def test_reject_summary_funnel() -> None:
    """The summary lists every reason in order with the offers that reached it."""
    summary = reject_summary(10, {"UnfulfilledRole": 2, "InsufficientCpus": 3})
    assert [s["reason"] for s in summary][:3] == [
        "UnfulfilledRole", "UnfulfilledConstraint", "InsufficientCpus"
    ]
    assert summary[0] == {"reason": "UnfulfilledRole", "declined": 2, "processed": 10}
    assert summary[1] == {"reason": "UnfulfilledConstraint", "declined": 0, "processed": 8}
    assert summary[2] == {"reason": "InsufficientCpus", "declined": 3, "processed": 8}
    assert summary[3] == {"reason": "InsufficientMemory", "declined": 0, "processed": 5}
