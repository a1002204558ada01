"""The agent's pure core: messages and events in, effects out — on a FakeClock, without I/O.

A small harness builds an :class:`AgentState` with deterministic container ids
and update uuids, registers it, and offers shortcuts (run a task, register an
executor, report an update, acknowledge).  Tests read the effects returned.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import attrs
import pytest

from mesoslite.agent import AgentConfig, AgentState
from mesoslite.agent.checkpointed import (
    CheckpointedAgent,
    CheckpointedExecutor,
    CheckpointedFramework,
    CheckpointedRun,
    CheckpointedTask,
)
from mesoslite.agent.core import MASTER_DISPATCH
from mesoslite.agent.effects import (
    AdoptContainer,
    ArmRetry,
    Effect,
    EnforceShutdown,
    ForgetAgent,
    ForgetFramework,
    KillContainer,
    KillDockerTask,
    LaunchExecutor,
    Registered,
    RunDockerTask,
    StopAgent,
    ToExecutor,
    ToMaster,
    WriteAgentInfo,
    WriteExecutor,
    WriteFramework,
    WriteRun,
    WriteTask,
    WriteUpdates,
)
from mesoslite.agent.records import ExecutorState
from mesoslite.protocol import (
    AgentInfo,
    AgentRegistered,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    ExecutorInfo,
    ExecutorRegistered,
    ExitedExecutor,
    FrameworkInfo,
    KillPolicy,
    KillTask,
    Reason,
    RegisterExecutor,
    ReregisterAgent,
    ReregisterExecutor,
    RunTask,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
    Source,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.testing import FakeClock

AGENT_ID = "M1-S0"
FW = "M1-0001"


class Harness:
    """An agent core on a FakeClock, registered as :data:`AGENT_ID`."""

    def __init__(self, *, register: bool = True, **config: Any) -> None:
        self.clock = FakeClock()
        self.config = AgentConfig(work_dir="/w", **config)
        ids = itertools.count(1)
        uuids = itertools.count(1)
        self.core = AgentState(self.config, self.clock,
                               new_container_id=lambda: f"c{next(ids)}",
                               new_uuid=lambda: next(uuids).to_bytes(16, "big"),
                               python="/py")
        self.core.start(work_dir="/w", http_port=5051, boot_id="boot",
                        resources=Resources.parse("cpus:4;mem:4096"))
        if register:
            self.master(AgentRegistered(agent_id=AGENT_ID, ping_interval_seconds=15.0))

    def master(self, msg: Any) -> list[Effect]:
        """Route a master message as the shell does."""
        return MASTER_DISPATCH[type(msg)](self.core, msg)

    def run(self, task: TaskInfo, info: FrameworkInfo | None = None) -> list[Effect]:
        """RunTask for ``task``."""
        return self.master(RunTask(framework_info=info or framework(), task=task))

    def launched(self, effects: list[Effect]) -> str:
        """Start the one executor process ``effects`` asks for; return its container id."""
        [launch] = of(effects, LaunchExecutor)
        self.core.container_launched(launch.container_id, 4242)
        return launch.container_id

    def register(self, peer: bytes, container_id: str, executor_id: str) -> list[Effect]:
        """The executor process in ``container_id`` registers from ``peer``."""
        return self.core.executor_message(peer, RegisterExecutor(
            framework_id=FW, executor_id=executor_id, container_id=container_id))

    def report(self, peer: bytes, task_id: str, state: TaskState, uuid: bytes,
               executor_id: str = "") -> list[Effect]:
        """The executor on ``peer`` reports ``state`` for ``task_id``."""
        status = TaskStatus(task_id=task_id, state=state, uuid=uuid, executor_id=executor_id)
        return self.core.executor_message(peer, StatusUpdate(framework_id=FW, status=status))

    def ack(self, update: StatusUpdate) -> list[Effect]:
        """The master acknowledges ``update``."""
        return self.master(StatusUpdateAcknowledgement(
            agent_id=AGENT_ID, framework_id=update.framework_id,
            task_id=update.status.task_id, uuid=update.status.uuid))


def framework(*capabilities: str, checkpoint: bool = False) -> FrameworkInfo:
    """The test framework."""
    return FrameworkInfo(user="u", name="fw", id=FW, capabilities=capabilities,
                         checkpoint=checkpoint)


def command_task(task_id: str, command: str = "sleep 10") -> TaskInfo:
    """A command task."""
    return TaskInfo(name=task_id, task_id=task_id, agent_id=AGENT_ID,
                    resources=Resources.parse("cpus:0.1;mem:32"),
                    command=CommandInfo(value=command))


def executor_task(task_id: str, executor_id: str = "exec", command: str = "./run") -> TaskInfo:
    """A task for the custom executor ``executor_id``."""
    executor = ExecutorInfo(executor_id=executor_id, command=CommandInfo(value=command))
    return TaskInfo(name=task_id, task_id=task_id, agent_id=AGENT_ID,
                    resources=Resources.parse("cpus:0.1;mem:32"), executor=executor)


def docker_task(task_id: str) -> TaskInfo:
    """A Docker command task."""
    container = ContainerInfo(type="DOCKER", docker=DockerInfo(image="busybox"))
    return attrs.evolve(command_task(task_id, "true"), container=container)


def of(effects: list[Effect], kind: type) -> list[Any]:
    """The effects of one type, in order."""
    return [e for e in effects if isinstance(e, kind)]


def sent(effects: list[Effect], kind: type = StatusUpdate) -> list[Any]:
    """Messages of one type sent to the master."""
    return [e.message for e in of(effects, ToMaster) if isinstance(e.message, kind)]


def to_executor(effects: list[Effect], kind: type) -> list[tuple[Any, Any]]:
    """(peer, message) of the messages of one type sent to executors."""
    return [(e.peer, e.message) for e in of(effects, ToExecutor) if isinstance(e.message, kind)]


# ---------------------------------------------------------------------- RunTask


def test_command_task_launches_the_host_and_waits_for_it_then_delivers() -> None:
    """A command task starts the framework's command host; RunTask goes out once it registers."""
    h = Harness()
    effects = h.run(command_task("t1"), framework(checkpoint=True))
    [launch] = of(effects, LaunchExecutor)
    assert launch.executor_id == "mesoslite.command-host" and launch.checkpoint
    assert launch.command.arguments == ("/py", "-m", "mesoslite.executor.command")
    assert [type(e) for e in effects if type(e).__name__.startswith("Write")] == [
        WriteFramework, WriteExecutor, WriteRun, WriteTask]
    assert of(effects, WriteRun)[0].pid == 0  # the task's container has no process of its own
    assert to_executor(effects, RunTask) == []  # queued until the host registers
    host = h.launched(effects)
    out = h.register(b"host", host, "mesoslite.command-host")
    assert len(to_executor(out, ExecutorRegistered)) == 1
    [(peer, run)] = to_executor(out, RunTask)
    assert peer == b"host" and run.task.task_id == "t1"
    env = run.task.command.environment
    assert env["MESOS_CONTAINER_ID"] == "c2" and env["MESOS_EXECUTOR_ID"] == "t1"
    assert run.task.kill_policy == KillPolicy(3.0)


def test_second_command_task_goes_straight_to_the_registered_host() -> None:
    """With the host registered a new command task is delivered at once, no new launch."""
    h = Harness()
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    effects = h.run(command_task("t2"))
    assert of(effects, LaunchExecutor) == []
    assert [m.task.task_id for _p, m in to_executor(effects, RunTask)] == ["t2"]


def test_custom_executor_is_launched_once_and_gets_its_tasks() -> None:
    """A custom executor's process starts with its command; later tasks reuse it."""
    h = Harness()
    effects = h.run(executor_task("t1"))
    [launch] = of(effects, LaunchExecutor)
    assert launch.executor_id == "exec" and launch.command.value == "./run"
    cid = h.launched(effects)
    out = h.register(b"ex", cid, "exec")
    assert [m.task.task_id for _p, m in to_executor(out, RunTask)] == ["t1"]
    again = h.run(executor_task("t2"))
    assert of(again, LaunchExecutor) == []
    assert [m.task.task_id for _p, m in to_executor(again, RunTask)] == ["t2"]


def test_docker_task_runs_its_container_and_reports_its_life() -> None:
    """A Docker task: STARTING + RunDockerTask; started → RUNNING; exit 0 → FINISHED."""
    h = Harness()
    h.core.set_docker("")
    effects = h.run(docker_task("d1"), framework(checkpoint=True))
    [starting] = sent(effects)
    assert starting.status.state is TaskState.TASK_STARTING
    assert starting.status.source is Source.SOURCE_EXECUTOR
    [run] = of(effects, RunDockerTask)
    assert run.task.task_id == "d1" and run.environment["MESOS_SANDBOX"] == run.directory
    assert of(effects, WriteTask) and of(effects, WriteUpdates)
    h.ack(starting)
    running = sent(h.core.docker_started(run.container_id, 77))
    assert [u.status.state for u in running] == [TaskState.TASK_RUNNING]
    h.ack(running[0])
    end = sent(h.core.docker_exited(run.container_id, 0, "exited with status 0"))
    assert [u.status.state for u in end] == [TaskState.TASK_FINISHED]


def _ips(update: StatusUpdate) -> list[tuple[str, str]]:
    found = update.status.container_status
    assert found is not None, update
    return [(n.name, a.ip_address) for n in found.network_infos for a in n.ip_addresses]


def test_updates_carry_the_task_network_as_container_status() -> None:
    """Host-network tasks report the agent's IP; a bridged container its own, once known."""
    h = Harness(ip="127.0.0.9")
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    [update] = sent(h.report(b"host", "t1", TaskState.TASK_RUNNING, b"u" * 16))
    assert _ips(update) == [("", "127.0.0.9")]
    h.core.set_docker("")
    bridged = attrs.evolve(docker_task("d1"), container=ContainerInfo(
        type="DOCKER", docker=DockerInfo(image="busybox", network="BRIDGE")))
    effects = h.run(bridged, framework())
    [starting] = sent(effects)
    assert starting.status.container_status is None  # not started: no address known yet
    [run] = of(effects, RunDockerTask)
    h.ack(starting)
    [started] = sent(h.core.docker_started(run.container_id, 77, (("bridge", "172.17.0.5"),)))
    assert _ips(started) == [("bridge", "172.17.0.5")]


def test_docker_task_failing_reports_the_exit_code() -> None:
    """A container exiting 3 fails its task with the exit code in the message."""
    h = Harness()
    h.core.set_docker("")
    effects = h.run(docker_task("d1"))
    [run] = of(effects, RunDockerTask)
    h.ack(sent(effects)[0])  # TASK_STARTING: the next update goes out at once
    [failed] = sent(h.core.docker_exited(run.container_id, 3 << 8, "exited", exit_code=3))
    assert failed.status.state is TaskState.TASK_FAILED
    assert failed.status.message == "Container exited (exit code 3)"
    assert failed.status.reason is Reason.REASON_COMMAND_EXECUTOR_FAILED


# ---------------------------------------------------------------------- refusals


def _refused(effects: list[Effect]) -> TaskStatus:
    [update] = sent(effects)
    assert of(effects, LaunchExecutor) == [] and of(effects, RunDockerTask) == []
    return update.status


def test_a_task_with_neither_or_both_command_and_executor_is_an_error() -> None:
    """A task must have exactly one of command and executor: TASK_ERROR, TASK_INVALID."""
    h = Harness()
    both = attrs.evolve(executor_task("t1"), command=CommandInfo(value="x"))
    status = _refused(h.run(both))
    assert status.state is TaskState.TASK_ERROR and status.reason is Reason.REASON_TASK_INVALID


def test_a_terminating_framework_refuses_tasks_lost_or_dropped() -> None:
    """After ShutdownFramework a RunTask is LOST (DROPPED when partition-aware)."""
    h = Harness()
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    h.master(ShutdownFramework(framework_id=FW))
    status = _refused(h.run(command_task("t2")))
    assert status.state is TaskState.TASK_LOST
    assert status.reason is Reason.REASON_FRAMEWORK_REMOVED
    aware = _refused(h.run(command_task("t3"), framework("PARTITION_AWARE")))
    assert aware.state is TaskState.TASK_DROPPED


def test_a_terminating_executor_refuses_tasks() -> None:
    """A task for an executor being shut down is LOST with REASON_EXECUTOR_TERMINATED."""
    h = Harness()
    cid = h.launched(h.run(executor_task("t1")))
    h.register(b"ex", cid, "exec")
    h.master(ShutdownExecutor(framework_id=FW, executor_id="exec"))
    status = _refused(h.run(executor_task("t2")))
    assert status.state is TaskState.TASK_LOST
    assert status.reason is Reason.REASON_EXECUTOR_TERMINATED
    assert status.message == "executor exec is terminating"


def test_a_different_executor_info_for_a_running_executor_is_refused() -> None:
    """An ExecutorInfo that differs from the running executor's is refused (TASK_INVALID)."""
    h = Harness()
    h.run(executor_task("t1"))
    status = _refused(h.run(executor_task("t2", command="./other")))
    assert status.state is TaskState.TASK_LOST and status.reason is Reason.REASON_TASK_INVALID
    assert "differs from the running executor's" in status.message


def test_docker_tasks_are_refused_without_the_docker_containerizer() -> None:
    """Without docker in --containerizers a Docker task fails, naming the flag."""
    h = Harness()
    status = _refused(h.run(docker_task("d1")))
    assert status.state is TaskState.TASK_FAILED
    assert status.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert "--containerizers" in status.message


def test_tasks_are_refused_while_stopping_and_ignored_before_registration() -> None:
    """A stopping agent refuses tasks (LOST); one without an id ignores them."""
    h = Harness()
    h.core.stop_accepting()
    assert _refused(h.run(command_task("t1"))).message == "agent is shutting down"
    fresh = Harness(register=False)
    assert fresh.run(command_task("t1")) == []


# ---------------------------------------------------------------------- kills


def test_kill_of_a_queued_task_is_answered_by_the_agent() -> None:
    """A task still queued for its executor is KILLED at once (KILLED_DURING_LAUNCH)."""
    h = Harness()
    h.run(command_task("t1"))
    [killed] = sent(h.master(KillTask(framework_id=FW, task_id="t1")))
    assert killed.status.state is TaskState.TASK_KILLED
    assert killed.status.reason is Reason.REASON_TASK_KILLED_DURING_LAUNCH


def test_kill_of_a_delivered_task_goes_to_its_executor_with_the_policy() -> None:
    """A delivered command task's kill goes to the command host with the grace period."""
    h = Harness()
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    effects = h.master(KillTask(framework_id=FW, task_id="t1", kill_policy=KillPolicy(7.0)))
    [(peer, kill)] = to_executor(effects, KillTask)
    assert peer == b"host" and kill.kill_policy == KillPolicy(7.0)
    assert sent(effects) == []


def test_kill_of_a_docker_task_sends_killing_and_stops_the_container() -> None:
    """Docker: TASK_KILLING for frameworks with the capability, then the container's stop."""
    h = Harness()
    h.core.set_docker("")
    launched = h.run(docker_task("d1"), framework("TASK_KILLING_STATE"))
    [run] = of(launched, RunDockerTask)
    h.ack(sent(launched)[0])
    effects = h.master(KillTask(framework_id=FW, task_id="d1", kill_policy=KillPolicy(4.0)))
    assert [u.status.state for u in sent(effects)] == [TaskState.TASK_KILLING]
    assert of(effects, KillDockerTask) == [KillDockerTask(run.container_id, 4.0)]


def test_kill_of_an_unknown_task_is_lost() -> None:
    """A kill of a task this agent never saw answers TASK_LOST (as Mesos)."""
    h = Harness()
    h.run(command_task("t1"))
    [lost] = sent(h.master(KillTask(framework_id=FW, task_id="nope")))
    assert lost.status.state is TaskState.TASK_LOST


# ---------------------------------------------------------------------- acks and endings


def test_ack_of_the_terminal_update_ends_the_virtual_executor_and_the_idle_framework() -> None:
    """FINISHED acked: task completed, its executor exited (reported once), framework removed."""
    h = Harness()
    h.core.set_docker("")
    effects = h.run(docker_task("d1"), framework(checkpoint=True))
    [run] = of(effects, RunDockerTask)
    h.ack(sent(effects)[0])
    [finished] = sent(h.core.docker_exited(run.container_id, 0, "exited with status 0"))
    out = h.ack(finished)
    [exited] = sent(out, ExitedExecutor)
    assert exited.executor_id == "d1" and exited.status == 0
    assert of(out, ForgetFramework) == [ForgetFramework(AGENT_ID, FW)]
    assert h.core.frameworks == {} and [f.id for f in h.core.completed_frameworks] == [FW]


def test_executor_exit_fails_live_tasks_and_is_reported_once() -> None:
    """A custom executor's exit fails its task (KILLED if a kill was asked), ExitedExecutor once."""
    h = Harness()
    cid = h.launched(h.run(executor_task("t1")))
    h.register(b"ex", cid, "exec")
    h.run(executor_task("t2"))
    h.master(KillTask(framework_id=FW, task_id="t2"))
    out = h.core.container_exited(cid, 7 << 8, "exited with status 7")
    states = {u.status.task_id: (u.status.state, u.status.reason) for u in sent(out)}
    assert states == {"t1": (TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED),
                      "t2": (TaskState.TASK_KILLED, Reason.REASON_EXECUTOR_TERMINATED)}
    assert [m.status for m in sent(out, ExitedExecutor)] == [7 << 8]
    assert h.core.container_exited(cid, 0, "again") == []


def test_registration_timeout_kills_the_executor_and_fails_its_task() -> None:
    """An executor silent past the registration timeout is killed; its task fails so."""
    h = Harness()
    cid = h.launched(h.run(executor_task("t1")))
    assert h.core.registration_timed_out(cid) == [KillContainer(cid)]
    [failed] = sent(h.core.container_exited(cid, 9, "terminated by signal 9"))
    assert failed.status.reason is Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
    assert "did not register within 60.0s" in failed.status.message


def test_shutdown_executor_asks_then_enforces_after_the_grace() -> None:
    """ShutdownExecutor to a registered executor, then a kill after the grace period."""
    h = Harness(executor_shutdown_grace_period=2.5)
    cid = h.launched(h.run(executor_task("t1")))
    h.register(b"ex", cid, "exec")
    effects = h.master(ShutdownExecutor(framework_id=FW, executor_id="exec"))
    assert [p for p, _m in to_executor(effects, ShutdownExecutor)] == [b"ex"]
    assert of(effects, EnforceShutdown) == [EnforceShutdown(cid, 2.5)]


# ---------------------------------------------------------------------- status updates


def test_unacknowledged_updates_are_retried_with_backoff_and_sent_in_order() -> None:
    """The head is resent after 10 s, then 20 s; the next update waits for the head's ack."""
    h = Harness()
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    first = h.report(b"host", "t1", TaskState.TASK_RUNNING, b"u1" * 8)
    [running] = sent(first)
    start = h.clock.monotonic()
    assert of(first, ArmRetry) == [ArmRetry(start + 10.0)]
    assert sent(h.report(b"host", "t1", TaskState.TASK_FINISHED, b"u2" * 8)) == []
    h.clock.advance(10.0)
    again = h.core.retry_due()
    assert sent(again) == [running] and of(again, ArmRetry) == [ArmRetry(start + 30.0)]
    h.clock.advance(5.0)
    assert h.core.retry_due() == [ArmRetry(start + 30.0)]
    [finished] = sent(h.ack(running))
    assert finished.status.state is TaskState.TASK_FINISHED


def test_duplicate_and_after_terminal_updates_are_refused() -> None:
    """A repeated uuid is dropped; an update after a terminal one is refused and counted."""
    h = Harness()
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    h.report(b"host", "t1", TaskState.TASK_FAILED, b"u1" * 8)
    duplicate = h.report(b"host", "t1", TaskState.TASK_FAILED, b"u1" * 8)
    assert sent(duplicate) == [] and len(to_executor(duplicate,
                                                     StatusUpdateAcknowledgement)) == 1
    assert h.core.metrics.invalid_status_updates == 0
    late = h.report(b"host", "t1", TaskState.TASK_RUNNING, b"u2" * 8)
    assert sent(late) == [] and h.core.metrics.invalid_status_updates == 1
    h.report(b"host", "t1", TaskState.TASK_STAGING, b"u3" * 8)
    assert h.core.metrics.invalid_status_updates == 2


def test_updates_wait_while_unregistered_and_go_out_on_registration() -> None:
    """Without a registered link updates are kept; (re-)registration resends the heads."""
    h = Harness()
    host = h.launched(h.run(command_task("t1")))
    h.register(b"host", host, "mesoslite.command-host")
    h.core.registration_lost()
    assert sent(h.report(b"host", "t1", TaskState.TASK_RUNNING, b"u1" * 8)) == []
    out = h.master(AgentRegistered(agent_id=AGENT_ID, ping_interval_seconds=5.0))
    assert of(out, Registered) == [Registered(5.0)]
    assert [u.status.state for u in sent(out)] == [TaskState.TASK_RUNNING]
    assert of(out, WriteAgentInfo) == []  # only the first registration writes it


# ---------------------------------------------------------------------- registration


def test_first_registration_checkpoints_the_agent_info() -> None:
    """The first AgentRegistered writes the agent's info (with the id) and marks the link."""
    h = Harness(register=False)
    out = h.master(AgentRegistered(agent_id=AGENT_ID, ping_interval_seconds=15.0))
    [write] = of(out, WriteAgentInfo)
    assert write.info.id == AGENT_ID and write.info.port == 5051
    assert of(out, Registered) == [Registered(15.0)]


def test_reregistration_reports_tasks_executors_and_frameworks() -> None:
    """ReregisterAgent carries the id, every task (any state), live executors and frameworks."""
    h = Harness()
    cid = h.launched(h.run(executor_task("t1")))
    h.register(b"ex", cid, "exec")
    h.report(b"ex", "t1", TaskState.TASK_RUNNING, b"u1" * 8)
    msg = h.core.registration_message()
    assert isinstance(msg, ReregisterAgent)
    assert msg.agent_info.id == AGENT_ID and msg.boot_id == "boot"
    assert [(t.task_id, t.state) for t in msg.tasks] == [("t1", TaskState.TASK_RUNNING)]
    assert [(e.executor_id, e.container_id) for e in msg.executors] == [("exec", cid)]
    assert [f.id for f in msg.frameworks] == [FW]


def test_shutdown_agent_forgets_the_checkpoint_and_stops() -> None:
    """ShutdownAgent: the checkpoint's latest link goes, then the agent stops."""
    h = Harness()
    assert h.master(ShutdownAgent(message="bye")) == [ForgetAgent(), StopAgent()]


# ---------------------------------------------------------------------- rebuild


def _checkpoint() -> CheckpointedAgent:
    """A previous run: a command host running task 'c' (RUNNING unacked), executor 'exec'."""
    info = framework(checkpoint=True)
    running = StatusUpdate(FW, TaskStatus(task_id="c", state=TaskState.TASK_RUNNING,
                                          uuid=b"r" * 16, agent_id=AGENT_ID))
    host = CheckpointedExecutor("mesoslite.command-host", ExecutorInfo(
        executor_id="mesoslite.command-host", command=CommandInfo(value="/py")),
        kind="command-host", runs={"h1": CheckpointedRun("h1", pid=11, create_time=1.0)})
    task = CheckpointedTask(command_task("c"), [("UPDATE", running)])
    command = CheckpointedExecutor("c", ExecutorInfo(executor_id="c",
                                                     command=CommandInfo(value="/py")),
                                   kind="command", host_container_id="h1",
                                   runs={"v1": CheckpointedRun("v1", tasks={"c": task})})
    custom = CheckpointedExecutor("exec", executor_task("e").executor, kind="custom", runs={
        "x1": CheckpointedRun("x1", pid=12, create_time=2.0,
                              tasks={"e": CheckpointedTask(executor_task("e"))})})
    return CheckpointedAgent(
        info=AgentInfo(hostname="h", resources=Resources(), id=AGENT_ID), boot_id="boot",
        frameworks={FW: CheckpointedFramework(info, {"mesoslite.command-host": host, "c": command,
                                                     "exec": custom})})


def test_rebuild_adopts_survivors_and_replays_unacknowledged_updates() -> None:
    """Surviving processes are adopted; the unacked RUNNING is resent after registration."""
    h = Harness(register=False)
    out = h.core.rebuild(_checkpoint(), alive={"h1", "x1"}, docker_alive=set())
    assert sorted(e.container_id for e in of(out, AdoptContainer)) == ["h1", "x1"]
    assert h.core.agent_id == AGENT_ID and h.core.pending_reregistration() == 2
    ex = h.core.frameworks[FW].executors["c"]
    assert ex.host is not None and ex.launched_tasks["c"].state is TaskState.TASK_RUNNING
    host_back = h.core.executor_message(b"host", ReregisterExecutor(
        framework_id=FW, executor_id="mesoslite.command-host", container_id="h1"))
    assert len(to_executor(host_back, ExecutorRegistered)) == 1
    assert h.core.pending_reregistration() == 1
    registered = h.master(AgentRegistered(agent_id=AGENT_ID))
    assert [u.status.uuid for u in sent(registered)] == [b"r" * 16]
    assert h.core.end_reregistration_window() == [KillContainer("x1")]
    [late] = sent(h.core.container_exited("x1", 9, "terminated by signal 9"))
    assert late.status.task_id == "e"
    assert late.status.reason is Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT


def test_rebuild_fails_the_tasks_of_processes_that_did_not_survive() -> None:
    """A checkpointed executor whose process is gone fails its task once recovery finishes."""
    h = Harness(register=False)
    h.core.rebuild(_checkpoint(), alive={"h1"}, docker_alive=set())
    out = h.core.fail_lost("")
    assert sent(out) == []  # not registered yet: kept until the re-registration resends it
    assert h.core.frameworks[FW].executors.get("exec") is None
    stream = h.core.updates.pending(FW, "e")
    assert [u.status.state for u in stream] == [TaskState.TASK_FAILED]
    assert stream[0].status.reason is Reason.REASON_EXECUTOR_TERMINATED
    assert h.core.containers["h1"][1].state is ExecutorState.REGISTERING


# ---------------------------------------------------------------------- purity


def test_the_core_imports_no_io() -> None:
    """The core's modules and the values they use import no event loop, socket or process code."""
    root = Path(__file__).resolve().parents[2] / "mesoslite" / "agent"
    modules = [*sorted((root / "core").glob("*.py")),
               *(root / name for name in ("effects.py", "records.py", "checkpointed.py",
                                          "update_streams.py", "sandbox.py"))]
    banned = {"asyncio", "zmq", "tornado", "docker", "subprocess", "socket", "psutil",
              "mesoslite.transport", "mesoslite.proc", "mesoslite.agent.agent",
              "mesoslite.agent.main", "mesoslite.agent.executors", "mesoslite.agent.checkpoint"}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not any(name == b or name.startswith(b + ".") for b in banned), (
                    f"{path.name} imports {name}")


def test_executor_heartbeat_interval_is_a_positive_finite_flag() -> None:
    """--executor_heartbeat_interval: Mesos's 30 s by default; 0, negative, inf, nan refused."""
    assert AgentConfig(work_dir="/w").executor_heartbeat_interval == 30.0
    assert AgentConfig(work_dir="/w", executor_heartbeat_interval=0.5) \
        .executor_heartbeat_interval == 0.5
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="executor_heartbeat_interval"):
            AgentConfig(work_dir="/w", executor_heartbeat_interval=bad)
