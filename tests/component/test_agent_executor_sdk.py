"""Custom executors written with the SDK, run by a real agent."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from mesoslite.protocol import (
    ExecutorToFrameworkMessage,
    ExitedExecutor,
    FrameworkToExecutorMessage,
    Reason,
    ShutdownExecutor,
    TaskState,
)
from tests.support.agent_fakemaster import (
    AGENT_ID,
    FRAMEWORK_ID,
    FakeMaster,
    executor_task,
    framework_info,
    launch,
    messages,
    run,
    started,
)
from tests.support.procs import until


def test_custom_executor_exchanges_messages_and_runs_tasks(tmp_path: Path) -> None:
    """An SDK executor registers, runs two tasks, echoes framework messages, then shuts down."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, executor_task(tmp_path, "e1", data=b"payload"))
            running = await master.wait_state("e1", TaskState.TASK_RUNNING)
            assert running.status.data == b"payload"
            assert running.status.executor_id == "echo-exec"
            await master.wait_for(
                lambda: f"registered:echo-exec:{AGENT_ID}".encode() in messages(master))
            sent = master.of_type(ExecutorToFrameworkMessage)[0]
            assert sent.agent_id == AGENT_ID and sent.framework_id == FRAMEWORK_ID

            launch(master, executor_task(tmp_path, "e2"))  # same executor, second task
            await master.wait_state("e2", TaskState.TASK_RUNNING)
            assert len(agent.frameworks[0].executors) == 1

            master.send(FrameworkToExecutorMessage(
                framework_id=FRAMEWORK_ID, agent_id=AGENT_ID, executor_id="echo-exec",
                data=b"ping"))
            await master.wait_for(lambda: b"echo:ping" in messages(master))
            master.send(FrameworkToExecutorMessage(
                framework_id=FRAMEWORK_ID, agent_id=AGENT_ID, executor_id="echo-exec",
                data=b"finish"))
            await master.wait_state("e1", TaskState.TASK_FINISHED)
            await master.wait_state("e2", TaskState.TASK_FINISHED)

            launch(master, executor_task(tmp_path, "e3"))
            await master.wait_state("e3", TaskState.TASK_RUNNING)
            master.send(ShutdownExecutor(framework_id=FRAMEWORK_ID, executor_id="echo-exec"))
            await master.wait_state("e3", TaskState.TASK_KILLED)
            exited = await master.wait_for(lambda: master.of_type(ExitedExecutor))
            assert exited[0].executor_id == "echo-exec" and exited[0].status == 0
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_executor_that_dies_fails_its_tasks(tmp_path: Path) -> None:
    """An executor exiting with status 7 leaves its task TASK_FAILED (EXECUTOR_TERMINATED)."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, executor_task(tmp_path, "doomed", data=b"crash"))
            failed = await master.wait_state("doomed", TaskState.TASK_FAILED)
            assert failed.status.reason is Reason.REASON_EXECUTOR_TERMINATED
            assert "exited with status 7" in failed.status.message
            exited = await master.wait_for(lambda: master.of_type(ExitedExecutor))
            assert exited[0].status == 7 << 8
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_executor_registration_timeout(tmp_path: Path) -> None:
    """An executor that never registers is killed; its task fails with REGISTRATION_TIMEOUT."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master, executor_registration_timeout=0.5)
        try:
            began = time.monotonic()
            launch(master, executor_task(tmp_path, "silent", executor_id="mute",
                                         command="exec sleep 30"))
            await master.wait_for(lambda: agent.frameworks
                                  and agent.frameworks[0].executors["mute"].pid)
            pid = agent.frameworks[0].executors["mute"].pid
            failed = await master.wait_state("silent", TaskState.TASK_FAILED)
            assert time.monotonic() - began >= 0.45
            assert failed.status.reason is Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
            assert "did not register" in failed.status.message
            await until(lambda: not psutil.pid_exists(pid)
                        or psutil.Process(pid).status() == "zombie", 5,
                        "the executor process gone")
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_checkpointing_framework_writes_updates(tmp_path: Path) -> None:
    """With FrameworkInfo.checkpoint the task and its updates land under meta/ (and replay)."""
    from mesoslite.agent.checkpoint import Checkpointer
    from mesoslite.agent.update_streams import StatusUpdateManager
    from mesoslite.testing import FakeClock

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            info = framework_info(checkpoint=True)
            launch(master, executor_task(tmp_path, "cp1"), info)
            running = await master.wait_state("cp1", TaskState.TASK_RUNNING, ack=False)
            state = Checkpointer(agent.work_dir).load()
            assert state is not None and state.info.id == AGENT_ID
            ex = state.frameworks[FRAMEWORK_ID].executors["echo-exec"]
            run_ = next(iter(ex.runs.values()))
            assert run_.pid > 0
            task = run_.tasks["cp1"]
            assert task.info is not None and task.info.task_id == "cp1"
            kinds = [kind for kind, _ in task.records]
            assert kinds == ["UPDATE"]
            manager = StatusUpdateManager(FakeClock())
            manager.replay(FRAMEWORK_ID, "cp1", task.records)
            assert manager.resend_all() == [running]
        finally:
            await agent.stop()
            master.close()

    run(body())
