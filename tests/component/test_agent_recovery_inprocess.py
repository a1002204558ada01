"""Agent recovery in-process: a custom SDK executor outlives the agent and re-registers."""

from __future__ import annotations

from pathlib import Path

from mesoslite.protocol import (
    FrameworkToExecutorMessage,
    ReregisterAgent,
    TaskState,
)
from tests.support.agent_fakemaster import (
    AGENT_ID,
    FRAMEWORK_ID,
    FakeMaster,
    executor_task,
    framework_info,
    launch,
    make_agent,
    messages,
    run,
    started,
)


def test_custom_executor_reregisters_with_the_restarted_agent(tmp_path: Path) -> None:
    """A checkpointing framework's executor survives an agent restart and keeps its task."""

    async def body() -> None:
        master = FakeMaster(auto_ack=True)
        agent = await started(tmp_path, master)
        second = None
        try:
            launch(master, executor_task(tmp_path, "kept"), framework_info(checkpoint=True))
            await master.wait_state("kept", TaskState.TASK_RUNNING)
            pid = agent.frameworks[0].executors["echo-exec"].pid
            await agent.stop(kill_tasks=False)

            second = make_agent(tmp_path, master)
            await second.start()
            rereg = await master.wait_for(lambda: master.of_type(ReregisterAgent), timeout=15)
            assert rereg[-1].agent_info.id == AGENT_ID
            assert [t.task_id for t in rereg[-1].tasks] == ["kept"]
            assert rereg[-1].tasks[0].state is TaskState.TASK_RUNNING
            ex = second.frameworks[0].executors["echo-exec"]
            assert ex.pid == pid and ex.state.value == "RUNNING"

            master.send(FrameworkToExecutorMessage(
                framework_id=FRAMEWORK_ID, agent_id=AGENT_ID, executor_id="echo-exec",
                data=b"finish"))
            await master.wait_for(lambda: b"echo:finish" in messages(master))
            await master.wait_state("kept", TaskState.TASK_FINISHED)
        finally:
            if second is not None:
                await second.stop()
            await agent.stop()
            master.close()

    run(body())
