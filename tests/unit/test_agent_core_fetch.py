"""The agent's core holds a task while its URIs are fetched (FakeClock, no I/O).

A task with ``command.uris`` asks the shell for ``FetchUris`` first and reaches its
executor (or its Docker container) only when the fetch succeeded; a failed fetch is
TASK_FAILED naming the URI; a kill meanwhile is TASK_KILLED at once and the late
result is ignored; URIs nothing would fetch are refused with TASK_ERROR naming them.
"""

from __future__ import annotations

import attrs

from mesoslite.agent.effects import CancelFetch, FetchUris, RunDockerTask
from mesoslite.protocol import (
    CommandInfo,
    CommandURI,
    ContainerInfo,
    ExecutorInfo,
    KillTask,
    Reason,
    RunTask,
    ShutdownFramework,
    TaskInfo,
    TaskState,
    Volume,
)
from tests.unit.test_agent_core import (
    FW,
    Harness,
    command_task,
    docker_task,
    executor_task,
    framework,
    of,
    sent,
    to_executor,
)

URI = CommandURI(value="http://127.0.0.1:9/app.tgz", executable=False, extract=True)


def fetching_task(task_id: str, *uris: CommandURI, user: str = "") -> TaskInfo:
    """A command task with URIs to fetch."""
    task = command_task(task_id)
    assert task.command is not None
    return attrs.evolve(task, command=attrs.evolve(task.command, uris=uris or (URI,),
                                                   user=user))


def test_a_task_with_uris_is_fetched_before_it_reaches_its_executor() -> None:
    """RunTask asks for FetchUris (sandbox, URIs, user); delivery waits for fetch_finished."""
    h = Harness()
    effects = h.run(fetching_task("t1", user="nobody"))
    [fetch] = of(effects, FetchUris)
    assert (fetch.framework_id, fetch.executor_id, fetch.task_id) == (FW, "t1", "t1")
    assert fetch.uris == (URI,) and fetch.user == "nobody"
    assert fetch.sandbox.endswith(f"/executors/t1/runs/{fetch.container_id}")
    host = h.launched(effects)
    registered = h.register(b"host", host, "mesoslite.command-host")
    assert to_executor(registered, RunTask) == []  # still fetching: stays queued
    [(peer, run)] = to_executor(h.core.fetch_finished(FW, "t1", "t1", ""), RunTask)
    assert peer == b"host" and run.task.task_id == "t1"
    assert run.task.command.uris == (URI,)


def test_the_framework_user_is_the_fetch_user_when_the_command_has_none() -> None:
    """No CommandInfo.user: the fetcher works for FrameworkInfo.user (as Mesos)."""
    h = Harness()
    [fetch] = of(h.run(fetching_task("t1")), FetchUris)
    assert fetch.user == framework().user


def test_a_fetch_that_finishes_before_the_host_registers_queues_the_task() -> None:
    """Fetched before the command host registered: delivered once it registers."""
    h = Harness()
    effects = h.run(fetching_task("t1"))
    assert to_executor(h.core.fetch_finished(FW, "t1", "t1", ""), RunTask) == []
    host = h.launched(effects)
    [(_peer, run)] = to_executor(h.register(b"host", host, "mesoslite.command-host"), RunTask)
    assert run.task.task_id == "t1"


def test_a_failed_fetch_fails_the_task_naming_the_uri() -> None:
    """fetch_finished with an error: TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, the error."""
    h = Harness()
    effects = h.run(fetching_task("t1"))
    host = h.launched(effects)
    error = "Failed to fetch URI 'http://127.0.0.1:9/app.tgz': HTTP 404 Not Found"
    out = h.core.fetch_finished(FW, "t1", "t1", error)
    [failed] = sent(out)
    assert failed.status.state is TaskState.TASK_FAILED
    assert failed.status.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert failed.status.message == error and failed.status.executor_id == "t1"
    assert to_executor(h.register(b"host", host, "mesoslite.command-host"), RunTask) == []
    h.ack(failed)
    assert "t1" not in h.core.frameworks[FW].task_index


def test_a_kill_while_fetching_is_answered_at_once_and_the_result_ignored() -> None:
    """KillTask during the fetch: TASK_KILLED now, the download cancelled; the fetch's late
    success delivers nothing."""
    h = Harness()
    effects = h.run(fetching_task("t1"))
    host = h.launched(effects)
    h.register(b"host", host, "mesoslite.command-host")
    effects = h.master(KillTask(framework_id=FW, task_id="t1"))
    assert of(effects, CancelFetch) == [CancelFetch(FW, "t1")]  # the download stops
    [killed] = sent(effects)
    assert killed.status.state is TaskState.TASK_KILLED
    assert killed.status.reason is Reason.REASON_TASK_KILLED_DURING_LAUNCH
    assert h.core.fetch_finished(FW, "t1", "t1", "") == []


def test_a_docker_task_starts_its_container_only_after_the_fetch() -> None:
    """Docker: no TASK_STARTING or container until the URIs are in the sandbox."""
    h = Harness()
    h.core.set_docker("")
    task = attrs.evolve(fetching_task("d1"), container=docker_task("d1").container)
    effects = h.run(task)
    assert of(effects, RunDockerTask) == [] and sent(effects) == []
    [fetch] = of(effects, FetchUris)
    out = h.core.fetch_finished(FW, "d1", "d1", "")
    [run] = of(out, RunDockerTask)
    assert run.directory == fetch.sandbox
    assert [u.status.state for u in sent(out)] == [TaskState.TASK_STARTING]


def test_a_docker_task_fetching_when_its_framework_shuts_down_is_killed() -> None:
    """Framework shutdown while a Docker task fetches: TASK_KILLED, no container asked for."""
    h = Harness()
    h.core.set_docker("")
    task = attrs.evolve(fetching_task("d1"), container=docker_task("d1").container)
    h.run(task)
    out = h.master(ShutdownFramework(framework_id=FW))
    assert [u.status.state for u in sent(out)] == [TaskState.TASK_KILLED]
    assert of(out, CancelFetch) == [CancelFetch(FW, "d1")]
    assert h.core.fetch_finished(FW, "d1", "d1", "") == []


def test_uris_nothing_would_fetch_are_refused_naming_the_field() -> None:
    """A custom executor's URIs, a health check's, a bad URI, MESOS volumes: TASK_ERROR."""
    h = Harness()
    custom = executor_task("t1")
    assert custom.executor is not None
    custom = attrs.evolve(custom, executor=ExecutorInfo(
        executor_id="exec", command=CommandInfo(value="./run", uris=(URI,))))
    bad = fetching_task("t2", CommandURI(value="ftp://h/x"))
    volumes = attrs.evolve(command_task("t3"), container=ContainerInfo(
        type="MESOS", volumes=(Volume(container_path="/data", host_path="/srv"),)))
    for task, field in ((custom, "executor.command.uris"), (bad, "command.uris[0].value"),
                        (volumes, "container.volumes")):
        [refused] = sent(h.run(task))
        assert refused.status.state is TaskState.TASK_ERROR, task.task_id
        assert refused.status.reason is Reason.REASON_TASK_INVALID
        assert refused.status.message.startswith(f"{field}: "), refused.status.message
    assert of(h.run(attrs.evolve(custom, task_id="t4")), FetchUris) == []


def test_secrets_are_resolved_before_delivery_and_never_checkpointed() -> None:
    """A task with secret variables asks for them (FetchUris, no URIs); the values reach
    the command host's environment only, not the checkpoint."""
    h = Harness()
    task = command_task("t1")
    assert task.command is not None
    task = attrs.evolve(task, command=attrs.evolve(
        task.command, secret_environment={"DB_PASSWORD": "/prod/db"}))
    effects = h.run(task, framework(checkpoint=True))
    [fetch] = of(effects, FetchUris)
    assert fetch.uris == () and fetch.secrets == {"DB_PASSWORD": "/prod/db"}
    [write] = [e for e in effects if type(e).__name__ == "WriteTask"]
    assert "hunter2" not in repr(write)
    host = h.launched(effects)
    h.register(b"host", host, "mesoslite.command-host")
    out = h.core.fetch_finished(FW, "t1", "t1", "", {"DB_PASSWORD": "hunter2"})
    [(_peer, run)] = to_executor(out, RunTask)
    assert run.task.command.environment["DB_PASSWORD"] == "hunter2"  # noqa: S105 - test value
    assert run.task.command.environment["MESOS_CONTAINER_ID"] == fetch.container_id
    carrying = [e for e in out if "hunter2" in repr(e)]
    assert len(carrying) == 1 and isinstance(carrying[0].message, RunTask)  # only the host's
    assert "hunter2" not in repr(h.core.frameworks[FW].task_index["t1"].find_task("t1").info)


def test_a_missing_secret_fails_the_task_naming_it() -> None:
    """The shell could not resolve a secret: TASK_FAILED with its message (no value)."""
    h = Harness()
    task = command_task("t1")
    assert task.command is not None
    task = attrs.evolve(task, command=attrs.evolve(
        task.command, secret_environment={"DB_PASSWORD": "/prod/db"}))
    h.run(task)
    error = "secret '/prod/db' (variable DB_PASSWORD): not in the secret store"
    [failed] = sent(h.core.fetch_finished(FW, "t1", "t1", error, {}))
    assert failed.status.state is TaskState.TASK_FAILED and failed.status.message == error
