"""Tasks prepared before they start (URIs fetched, secrets resolved), in the agent's core (PURE).

Owns: :class:`FetchFlow`.  A command or Docker task with ``command.uris`` or
``command.secret_environment`` is held (queued on its executor, marked ``fetching``,
``progress`` shown on ``/state``) while the shell fills its sandbox and reads its
secrets from the agent's store (``FetchUris``); :meth:`FetchFlow.fetch_finished` keeps
the resolved values on the task record (memory only, never checkpointed: they join the
environment only in the RunTask to the command host or the container's launch) and
then delivers it (command task: to its command host; Docker task: TASK_STARTING and
the container) or fails it: TASK_FAILED with ``REASON_CONTAINER_LAUNCH_FAILED`` (what
Mesos reports when its fetcher fails) and a message naming the URI and the cause.
A kill while fetching answers TASK_KILLED at once (the queued-task path of
``kill_task``) and aborts the download (``CancelFetch``); a late result is ignored.
A custom executor's own ``executor.command.uris`` are not fetched: such tasks are
refused with TASK_ERROR naming the field (the master refuses them first).
"""

from __future__ import annotations

import logging

from mesoslite.agent.core.docker import DockerFlow
from mesoslite.agent.effects import CancelFetch, Effect, FetchUris
from mesoslite.agent.records import AgentExecutor, AgentFramework, AgentTask
from mesoslite.protocol import CommandURI, KillPolicy, Reason, TaskInfo, TaskState
from mesoslite.protocol.honoured import unhonoured_field

log = logging.getLogger("mesoslite.agent")


def task_uris(task: TaskInfo) -> tuple[CommandURI, ...]:
    """The URIs to fetch before ``task`` starts (its command's; none for custom executors)."""
    return task.command.uris if task.command is not None else ()


def uris_refusal(task: TaskInfo) -> str:
    """Why the agent cannot honour a field ``task`` carries: its URIs, a MESOS container's
    volumes ... ("" when it can honour them all)."""
    problem = unhonoured_field(task)
    return "" if problem is None else f"{problem[0]}: {problem[1]}"


class FetchFlow(DockerFlow):
    """Holding a task until its URIs are in its sandbox (see the module docstring)."""

    def start_task(self, fw: AgentFramework, ex: AgentExecutor, task: AgentTask) -> list[Effect]:
        """Fetch the task's URIs first when it has any; else run or deliver it now."""
        uris = task_uris(task.info)
        command = task.info.command
        if uris or (command is not None and command.secret_environment):
            return self._start_fetch(fw, ex, task, uris)
        if ex.kind == "docker":
            return self.run_docker_task(fw, ex, task)
        return self.deliver(ex, task)

    def _start_fetch(self, fw: AgentFramework, ex: AgentExecutor, task: AgentTask,
                     uris: tuple[CommandURI, ...]) -> list[Effect]:
        task.fetching = True
        task.progress = f"fetching {len(uris)} URI(s)" if uris else "resolving secrets"
        ex.queued_tasks[task.task_id] = task
        command = task.info.command
        user = (command.user if command is not None else "") or fw.info.user
        secrets = dict(command.secret_environment) if command is not None else {}
        log.info("Preparing task %s of framework %s: %d URI(s) into %s, %d secret(s)",
                 task.task_id, fw.id, len(uris), ex.directory, len(secrets))
        return [FetchUris(fw.id, ex.executor_id, ex.container_id, task.task_id, ex.directory,
                          uris, user, secrets)]

    def fetch_finished(self, framework_id: str, executor_id: str, task_id: str,
                       error: str, secrets: dict[str, str] | None = None) -> list[Effect]:
        """The shell prepared a task (``error`` "" when every URI arrived and every secret
        was read; ``secrets``: the resolved variables)."""
        fw = self.frameworks.get(framework_id)
        ex = fw.executors.get(executor_id) if fw is not None else None
        task = ex.queued_tasks.get(task_id) if ex is not None else None
        if fw is None or ex is None or task is None or not task.fetching:
            log.info("Fetch for task %s of framework %s finished after the task ended",
                     task_id, framework_id)
            return []
        task.fetching = False
        task.progress = ""
        if error or task.kill_requested:
            return self._fetch_failed(fw, ex, task, error)
        task.secret_env = dict(secrets or {})
        del ex.queued_tasks[task_id]
        if ex.kind == "docker":
            return self.run_docker_task(fw, ex, task)
        return self.deliver(ex, task)

    def _fetch_failed(self, fw: AgentFramework, ex: AgentExecutor, task: AgentTask,
                      error: str) -> list[Effect]:
        if task.kill_requested:
            state, reason = TaskState.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH
            error = "killed while its URIs were fetched"
        else:
            state, reason = TaskState.TASK_FAILED, Reason.REASON_CONTAINER_LAUNCH_FAILED
        log.warning("Task %s of framework %s: %s", task.task_id, fw.id, error)
        out = self.accept_update(self.agent_update(
            fw.id, task.task_id, state, error, reason, ex.executor_id), ex)
        return out + self.task_dequeued(ex)

    def cancel_fetch(self, framework_id: str, task: AgentTask) -> list[Effect]:
        """A task killed while fetching: stop its download (its result is ignored anyway)."""
        if not task.fetching:
            return []
        task.fetching = False
        return [CancelFetch(framework_id, task.task_id)]

    def kill_docker_task(self, fw: AgentFramework, ex: AgentExecutor, task: AgentTask,
                         policy: KillPolicy) -> list[Effect]:
        """A Docker task still fetching has no container: it is killed at once."""
        if task.fetching:
            task.kill_requested = True
            out = self.cancel_fetch(fw.id, task)
            return out + self._fetch_failed(fw, ex, task, "")
        return super().kill_docker_task(fw, ex, task, policy)
