"""Unit tests for deployment plans and step decisions (core.deployments) and their JSON.

Includes a rolling-restart simulation: a fake cluster applies the decisions
tick by tick, tasks become running/healthy/ready after random delays, and the
health-capacity bounds are asserted at every step.
"""

from __future__ import annotations

import itertools
import random

import attrs
import pytest

from frameworks.marathon.core.deployments import (
    DeploymentAction,
    DeploymentPlan,
    action_decisions,
    capacity_bounds,
    is_healthy,
    plan,
    restart_decisions,
    scale_decisions,
    stop_decisions,
)
from frameworks.marathon.core.model import (
    App,
    AppHealthCheck,
    InstanceCondition,
    MarathonTask,
    ReadinessCheck,
    UpgradeStrategy,
    VersionInfo,
)
from frameworks.marathon.wire.deployment_json import (
    plan_from_record,
    plan_to_record,
    render_deployment,
    render_event_plan,
)

C = InstanceCondition
_ids = itertools.count()


def app(app_id: str = "/web", instances: int = 1, version: str = "v1", **fields: object) -> App:
    """An app."""
    base: dict[str, object] = {"cmd": "serve"}
    base.update(fields)
    return App(id=app_id, instances=instances, version=version, **base)  # type: ignore[arg-type]


def task(
    condition: InstanceCondition = C.RUNNING, *, version: str = "v1", app_id: str = "/web",
    **fields: object,
) -> MarathonTask:
    """A task."""
    n = next(_ids)
    fields.setdefault("staged_at", float(n))
    return MarathonTask(
        task_id=f"t{n}", instance_id=f"i{n}", app_id=app_id, version=version,
        condition=condition, **fields,  # type: ignore[arg-type]
    )


def actions(p: DeploymentPlan) -> list[list[tuple[str, str]]]:
    """A plan's steps as (action, app) pairs."""
    return [[(a.action, a.app_id) for a in step] for step in p.steps]


# -- planning -----------------------------------------------------------------------------------


def test_plan_new_app_is_started_then_scaled() -> None:
    """A new app gets StartApplication, then ScaleApplication."""
    p = plan({}, {"/web": app(instances=3)}, "v1", "d1")
    assert actions(p) == [[("StartApplication", "/web")], [("ScaleApplication", "/web")]]
    assert (p.id, p.version, p.current_step, p.affected_app_ids) == ("d1", "v1", 0, ("/web",))


def test_plan_removed_app_is_stopped() -> None:
    """A removed app gets StopApplication."""
    p = plan({"/web": app()}, {}, "v2", "d")
    assert actions(p) == [[("StopApplication", "/web")]]


def test_plan_config_change_restarts_and_scale_only_scales() -> None:
    """A config change restarts; an instances-only change scales; no change: no step."""
    before = {"/a": app("/a"), "/b": app("/b"), "/c": app("/c")}
    after = {
        "/a": app("/a", cmd="new", version="v2"),
        "/b": app("/b", instances=4, version="v2"),
        "/c": app("/c", version="v2"),
    }
    p = plan(before, after, "v2", "d")
    assert actions(p) == [[("RestartApplication", "/a"), ("ScaleApplication", "/b")]]
    assert plan(before, dict(before), "v2", "d").steps == ()


def test_plan_restart_by_new_config_change_time() -> None:
    """Same fields but a new lastConfigChangeAt (POST .../restart) is a restart."""
    before = app(version_info=VersionInfo("v1", "v1"))
    after = app(version="v2", version_info=VersionInfo("v2", "v2"))
    assert actions(plan({"/web": before}, {"/web": after}, "v2", "d")) == [
        [("RestartApplication", "/web")]
    ]
    scaled = app(version="v2", instances=2, version_info=VersionInfo("v2", "v1"))
    assert actions(plan({"/web": before}, {"/web": scaled}, "v2", "d")) == [
        [("ScaleApplication", "/web")]
    ]


def test_plan_dependencies_start_first_and_stop_in_reverse() -> None:
    """Dependencies are scaled first and stopped last."""
    db = app("/prod/db")
    web = app("/prod/web", dependencies=("/prod/db",))
    lb = app("/lb", dependencies=("/prod",))  # a group dependency
    target = {"/prod/db": db, "/prod/web": web, "/lb": lb}
    p = plan({}, target, "v1", "d")
    assert actions(p) == [
        [("StartApplication", "/lb"), ("StartApplication", "/prod/db"),
         ("StartApplication", "/prod/web")],
        [("ScaleApplication", "/prod/db")],
        [("ScaleApplication", "/prod/web")],
        [("ScaleApplication", "/lb")],
    ]
    stop = plan(target, {}, "v2", "d")
    assert actions(stop) == [
        [("StopApplication", "/lb")],
        [("StopApplication", "/prod/web")],
        [("StopApplication", "/prod/db")],
    ]


def test_plan_relative_dependency_and_cycle_do_not_break() -> None:
    """A relative dependency resolves within the group; a cycle still yields a plan."""
    db = app("/prod/db")
    web = app("/prod/web", dependencies=("db",))
    p = plan({}, {"/prod/db": db, "/prod/web": web}, "v1", "d")
    assert actions(p)[1:] == [
        [("ScaleApplication", "/prod/db")], [("ScaleApplication", "/prod/web")]
    ]
    x = app("/x", dependencies=("/y",))
    y = app("/y", dependencies=("/x",))
    cyc = plan({}, {"/x": x, "/y": y}, "v1", "d")
    assert sorted(a.app_id for step in cyc.steps[1:] for a in step) == ["/x", "/y"]


def test_plan_mixed_change() -> None:
    """Stops come first, then starts, then scale/restart steps."""
    before = {"/old": app("/old"), "/keep": app("/keep")}
    after = {"/keep": app("/keep", cmd="v2", version="v2"), "/new": app("/new", version="v2")}
    assert actions(plan(before, after, "v2", "d")) == [
        [("StopApplication", "/old")],
        [("StartApplication", "/new")],
        [("RestartApplication", "/keep"), ("ScaleApplication", "/new")],
    ]


def test_plan_advances() -> None:
    """advanced() moves through the steps and stops at the end."""
    p = plan({}, {"/web": app()}, "v1", "d")
    assert p.current_actions == (DeploymentAction("StartApplication", "/web"),)
    p = p.advanced().advanced()
    assert p.finished and p.current_actions == ()
    assert p.advanced().current_step == 2


# -- rendering ----------------------------------------------------------------------------------


def test_render_deployment_shape() -> None:
    """GET /v2/deployments elements have Marathon's keys; currentStep is 1-based."""
    p = plan({}, {"/web": app(instances=2)}, "2026-01-02T03:04:05.678Z", "d-1").advanced()
    out = render_deployment(p, {"/web": [{"taskId": "t", "ready": False}]})
    assert out == {
        "id": "d-1",
        "version": "2026-01-02T03:04:05.678Z",
        "affectedApps": ["/web"],
        "affectedPods": [],
        "steps": [
            {"actions": [{"action": "StartApplication", "app": "/web"}]},
            {"actions": [{"action": "ScaleApplication", "app": "/web"}]},
        ],
        "currentActions": [
            {"action": "ScaleApplication", "app": "/web",
             "readinessCheckResults": [{"taskId": "t", "ready": False}]},
        ],
        "currentStep": 2,
        "totalSteps": 2,
    }
    first = render_deployment(plan({}, {"/web": app()}, "v", "d"))
    assert first["currentStep"] == 1
    assert first["currentActions"][0]["readinessCheckResults"] == []


def test_render_event_plan_groups_and_light() -> None:
    """The event plan nests apps in groups; light leaves original/target out."""
    target = {"/a": app("/a"), "/grp/sub/b": app("/grp/sub/b")}
    p = plan({}, target, "V", "d")
    out = render_event_plan(p, lambda a: {"id": a.id})
    assert list(out) == ["id", "original", "target", "steps", "version"]
    assert out["original"] == {
        "id": "/", "apps": [], "groups": [], "pods": [], "dependencies": [], "version": "V"
    }
    root = out["target"]
    assert root["apps"] == [{"id": "/a"}]
    (grp,) = root["groups"]
    assert grp["id"] == "/grp" and grp["apps"] == []
    (sub,) = grp["groups"]
    assert sub["id"] == "/grp/sub" and sub["apps"] == [{"id": "/grp/sub/b"}]
    light = render_event_plan(p, lambda a: {"id": a.id}, light=True)
    assert list(light) == ["id", "steps", "version"]
    assert light["steps"][0] == {"actions": [{"action": "StartApplication", "app": "/a"},
                                             {"action": "StartApplication", "app": "/grp/sub/b"}]}


def test_plan_record_round_trip() -> None:
    """plan_to_record and plan_from_record round-trip; a bad record raises ValueError."""
    apps = {"/a": app("/a"), "/b": app("/b", version="v2")}
    p = plan({"/a": apps["/a"]}, {"/b": apps["/b"]}, "v2", "d").advanced()
    record = plan_to_record(p, lambda a: {"id": a.id, "version": a.version})
    back = plan_from_record(record, lambda d: apps[d["id"]])
    assert back == p
    with pytest.raises(ValueError, match="currentStep"):
        plan_from_record({**record, "currentStep": -1}, lambda d: apps[d["id"]])
    with pytest.raises(ValueError, match="unknown action"):
        plan_from_record({**record, "steps": [[{"action": "Nope", "app": "/a"}]]},
                         lambda d: apps[d["id"]])
    with pytest.raises(ValueError, match="deployment record"):
        plan_from_record({"id": "x"}, lambda d: apps[d["id"]])


# -- single decisions ---------------------------------------------------------------------------


def test_capacity_bounds_ignore_float_noise() -> None:
    """⌈10 × 0.7⌉ is 7 and ⌊10 × 1.2⌋ is 12."""
    a = app(instances=10, upgrade_strategy=UpgradeStrategy(0.7, 0.2))
    assert capacity_bounds(a) == (7, 12)
    assert capacity_bounds(app(instances=5, upgrade_strategy=UpgradeStrategy(0.5, 0.0))) == (3, 5)


def test_is_healthy_rules() -> None:
    """Health checks need healthy=True; without them RUNNING suffices."""
    checked = app(health_checks=(AppHealthCheck(),))
    assert not is_healthy(task(), checked)
    assert is_healthy(task(healthy=True), checked)
    assert not is_healthy(task(C.STAGING, healthy=True), checked)
    assert is_healthy(task(), app())
    assert is_healthy(task(version="v0"), checked, current=False)
    assert not is_healthy(task(kill_requested=True), app())


def test_scale_decisions() -> None:
    """Scale launches or kills to the instance count and is done when all are healthy."""
    a = app(instances=3)
    assert scale_decisions(a, [task()], set()) == (2, [], False)
    old = task()
    young = task()
    launch, kills, done = scale_decisions(app(instances=1), [old, young], set())
    assert (launch, kills, done) == (0, [young.task_id], False)
    assert scale_decisions(a, [task(), task(), task(C.STAGING)], set()) == (0, [], False)
    assert scale_decisions(a, [task(), task(), task()], set()) == (0, [], True)
    dying = task(kill_requested=True)
    assert scale_decisions(app(instances=1), [task(), dying], set()) == (0, [], False)


def test_stop_decisions() -> None:
    """Stop kills every task once and is done when none is left (unreachable aside)."""
    a = app(instances=2)
    live, dying = task(), task(C.KILLING, kill_requested=True)
    assert stop_decisions(a, [live, dying]) == (0, [live.task_id], False)
    assert stop_decisions(a, [task(C.KILLED)]) == (0, [], True)
    lost = task(C.UNREACHABLE)
    assert stop_decisions(a, [lost]) == (0, [lost.task_id], True)


def test_action_decisions_dispatch() -> None:
    """action_decisions routes each action to its rule."""
    before, after = app(instances=1), app(instances=2, cmd="x", version="v2")
    p = plan({"/web": before}, {"/web": after}, "v2", "d")
    old = task()
    assert action_decisions(p, DeploymentAction("StartApplication", "/web"), []) == (0, [], True)
    assert action_decisions(p, DeploymentAction("RestartApplication", "/web"), [old]) == (
        restart_decisions(after, [old], set())
    )
    assert action_decisions(p, DeploymentAction("ScaleApplication", "/web"), [old])[0] == 1
    assert action_decisions(p, DeploymentAction("StopApplication", "/web"), [old]) == (
        0, [old.task_id], False
    )
    with pytest.raises(ValueError, match="action"):
        action_decisions(p, DeploymentAction("Bogus", "/web"), [])


def test_restart_kills_unhealthy_old_freely() -> None:
    """Unhealthy old tasks are killed without waiting for new ones."""
    a = app(instances=2, version="v2", health_checks=(AppHealthCheck(),))
    bad1, bad2 = task(healthy=False), task(healthy=False)
    launch, kills, done = restart_decisions(a, [bad1, bad2], set())
    assert sorted(kills) == sorted([bad1.task_id, bad2.task_id])
    assert launch == 2 and not done  # maxOC 1.0: room for 2 more


def test_restart_waits_for_readiness() -> None:
    """With readiness checks, old tasks are kept until new ones are ready."""
    a = app(instances=1, version="v2", readiness_checks=(ReadinessCheck(),))
    old, new = task(), task(version="v2")
    assert restart_decisions(a, [old, new], set()) == (0, [], False)
    assert restart_decisions(a, [old, new], {new.task_id}) == (0, [old.task_id], False)
    assert restart_decisions(a, [new], {new.task_id}) == (0, [], True)


# -- rolling-restart simulation -----------------------------------------------------------------


@attrs.define
class FakeCluster:
    """Tasks that start, turn healthy/ready and die after random numbers of ticks."""

    app: App
    rng: random.Random
    tasks: dict[str, MarathonTask] = attrs.field(factory=dict)
    ready: set[str] = attrs.field(factory=set)
    #: task id → (tick running, tick healthy, tick ready) or tick killed
    timeline: dict[str, tuple[int, int, int]] = attrs.field(factory=dict)
    dies_at: dict[str, int] = attrs.field(factory=dict)
    tick: int = 0

    def seed_old(self, count: int) -> None:
        """``count`` healthy, ready tasks of the previous version."""
        for _ in range(count):
            t = task(version="v1", healthy=True if self.app.health_checks else None)
            self.tasks[t.task_id] = t

    def launch(self, count: int) -> None:
        """Stage ``count`` tasks of the target version."""
        for _ in range(count):
            t = task(C.STAGING, version=self.app.version, staged_at=float(self.tick))
            running = self.tick + self.rng.randint(1, 3)
            healthy = running + self.rng.randint(0, 3)
            ready = healthy + self.rng.randint(0, 2)
            self.tasks[t.task_id] = t
            self.timeline[t.task_id] = (running, healthy, ready)

    def kill(self, task_ids: list[str]) -> None:
        """Ask to kill tasks; they die after a few ticks."""
        for task_id in task_ids:
            t = self.tasks[task_id]
            assert not t.kill_requested, "a task was killed twice"
            self.tasks[task_id] = attrs.evolve(t, kill_requested=True, condition=C.KILLING)
            self.dies_at[task_id] = self.tick + self.rng.randint(1, 3)

    def advance(self) -> None:
        """One tick: tasks progress through their timelines."""
        self.tick += 1
        for task_id, t in list(self.tasks.items()):
            if task_id in self.dies_at:
                if self.tick >= self.dies_at[task_id]:
                    del self.tasks[task_id]  # terminal and expunged
                    self.ready.discard(task_id)
                continue
            if task_id not in self.timeline:
                continue
            running, healthy, ready = self.timeline[task_id]
            if self.tick >= running and t.condition is C.STAGING:
                t = attrs.evolve(t, condition=C.RUNNING, started_at=float(self.tick))
            if self.tick >= healthy and self.app.health_checks and t.healthy is None:
                t = attrs.evolve(t, healthy=True)
            if self.tick >= ready and self.app.readiness_checks:
                self.ready.add(task_id)
            self.tasks[task_id] = t

    def healthy_ready(self) -> int:
        """Tasks that are healthy and (for new ones) ready, not being killed."""
        count = 0
        for t in self.tasks.values():
            current = t.version == self.app.version
            if not is_healthy(t, self.app, current=current):
                continue
            if current and self.app.readiness_checks and t.task_id not in self.ready:
                continue
            count += 1
        return count


def simulate(a: App, seed: int, *, floor_slack: int = 0) -> int:
    """Run a rolling restart to ``a`` on a fake cluster; returns the ticks it took."""
    cluster = FakeCluster(a, random.Random(seed))
    cluster.seed_old(a.instances)
    min_healthy, max_capacity = capacity_bounds(a)
    for _ in range(1000):
        launch, kills, done = restart_decisions(a, list(cluster.tasks.values()), cluster.ready)
        if done:
            assert len(cluster.tasks) == a.instances
            assert all(t.version == a.version for t in cluster.tasks.values())
            assert cluster.healthy_ready() == a.instances
            return cluster.tick
        cluster.kill(kills)
        cluster.launch(launch)
        assert cluster.healthy_ready() >= min_healthy - floor_slack, cluster.tick
        assert len(cluster.tasks) <= max_capacity, cluster.tick
        cluster.advance()
        assert cluster.healthy_ready() >= min_healthy - floor_slack, cluster.tick
    raise AssertionError("the rolling restart did not finish in 1000 ticks")


COMBOS = [
    (1, 1.0, 1.0),
    (5, 0.5, 0.0),
    (10, 1.0, 0.2),
    (3, 0.0, 0.0),
    (4, 0.75, 0.25),
    (7, 0.3, 0.5),
    (2, 0.0, 1.0),
    (6, 1.0, 1.0),
]


@pytest.mark.parametrize(("n", "min_hc", "max_oc"), COMBOS)
@pytest.mark.parametrize("checks", ["none", "health", "health+readiness"])
def test_rolling_restart_respects_bounds_and_terminates(
    n: int, min_hc: float, max_oc: float, checks: str
) -> None:
    """At every tick healthy ≥ ⌈n×minHC⌉ and total ≤ ⌊n×(1+maxOC)⌋; it finishes."""
    fields: dict[str, object] = {}
    if "health" in checks:
        fields["health_checks"] = (AppHealthCheck(protocol="COMMAND", command="true"),)
    if "readiness" in checks:
        fields["readiness_checks"] = (ReadinessCheck(),)
    a = app(instances=n, version="v2", cmd="new",
            upgrade_strategy=UpgradeStrategy(min_hc, max_oc), **fields)
    for seed in range(5):
        simulate(a, seed)


def test_rolling_restart_without_room_kills_one_to_progress() -> None:
    """minHC 1.0 / maxOC 0.0 cannot move without dipping one below the floor; it still ends."""
    a = app(instances=3, version="v2", cmd="new", upgrade_strategy=UpgradeStrategy(1.0, 0.0))
    for seed in range(5):
        simulate(a, seed, floor_slack=1)
    with pytest.raises(AssertionError):
        simulate(a, 0)  # the strict floor is broken here, by design


def test_rolling_restart_to_fewer_instances() -> None:
    """Restarting to fewer instances keeps the floor of the new count and ends at it."""
    a = app(instances=3, version="v2", cmd="new", upgrade_strategy=UpgradeStrategy(1.0, 0.5))
    cluster = FakeCluster(a, random.Random(1))
    cluster.seed_old(6)
    for _ in range(200):
        launch, kills, done = restart_decisions(a, list(cluster.tasks.values()), cluster.ready)
        if done:
            break
        cluster.kill(kills)
        cluster.launch(launch)
        assert cluster.healthy_ready() >= 3
        cluster.advance()
    else:
        raise AssertionError("did not finish")
    assert len(cluster.tasks) == 3


def test_restart_during_an_agent_drain_keeps_the_health_floor() -> None:
    """An old task killed by a drain (KILLING, not requested by the framework) counts neither
    as healthy nor as room: no healthy old task is killed below minimumHealthCapacity and
    launches stay within maximumOverCapacity."""
    strategy = UpgradeStrategy(minimum_health_capacity=0.5, maximum_over_capacity=0.0)
    a = app(instances=4, version="v2", upgrade_strategy=strategy)
    drained = task(C.KILLING)
    old = [task() for _ in range(3)]
    launch, kills, done = restart_decisions(a, [drained, *old], set())
    # minHealthy 2 of 3 healthy old tasks: one may go; the drained one still takes room.
    assert (len(kills), launch, done) == (1, 0, False)
    assert drained.task_id not in kills
    launch, kills, _ = restart_decisions(a, old, set())  # the drained task has ended
    assert (len(kills), launch) == (1, 1)
