"""The framework's calls to the master: the driver methods that send something.

Owns: :class:`DriverCalls`, the half of :class:`~mesoslite.scheduler.SchedulerDriver`
that turns ``accept_offers``, ``launch_tasks``, ``decline_offer``,
``revive_offers``, ``suppress_offers``, ``kill_task``,
``acknowledge_status_update``, ``reconcile_tasks``, ``send_framework_message``
and ``request_resources`` into protocol messages.

Every method validates its arguments in the calling thread (raising
TypeError/ValueError that name the field), then runs on the driver's loop and
returns the driver :class:`~mesoslite.scheduler.Status` at the time of the
call.  It does nothing unless the driver is ``DRIVER_RUNNING``.  While the
driver is not subscribed the call is refused (dropped with a log line), as
in Mesos; a dropped launch reports its tasks back as ``TASK_LOST``
(``TASK_DROPPED`` for ``PARTITION_AWARE`` frameworks) with reason
``REASON_MASTER_DISCONNECTED``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mesoslite.protocol import (
    Accept,
    Decline,
    Filters,
    FrameworkToExecutorMessage,
    Kill,
    KillPolicy,
    Operation,
    Reason,
    Reconcile,
    ReconcileTask,
    Revive,
    Source,
    Suppress,
    TaskInfo,
    TaskState,
    TaskStatus,
    valid_id,
)
from mesoslite.scheduler.status import Status

if TYPE_CHECKING:
    import asyncio

    from mesoslite.clock import Clock
    from mesoslite.protocol import FrameworkInfo
    from mesoslite.scheduler.session import SeenUpdates, Session
    from mesoslite.transport import DealerClient

log = logging.getLogger("mesoslite.scheduler")


def _strings(field: str, value: str | Iterable[str]) -> tuple[str, ...]:
    """A single id or an iterable of ids, as a tuple of valid ids."""
    items = (value,) if isinstance(value, str) else tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not valid_id(item):
            raise ValueError(f"{field}[{i}]: expected an id string, got {item!r}")
    return items


def _check_id(field: str, value: str, *, optional: bool = False) -> None:
    if optional and value == "":
        return
    if not isinstance(value, str) or not valid_id(value):
        raise ValueError(
            f"{field}: expected 1-255 characters of A-Z a-z 0-9 _ . - : @, got {value!r}"
        )


def _check_filters(filters: Filters | None) -> None:
    if filters is not None and not isinstance(filters, Filters):
        raise TypeError(f"filters: expected Filters or None, got {type(filters).__name__}")


def _roles(value: str | Iterable[str]) -> tuple[str, ...]:
    roles = (value,) if isinstance(value, str) else tuple(value)
    for i, role in enumerate(roles):
        if not isinstance(role, str) or not role:
            raise ValueError(f"roles[{i}]: expected a role name, got {role!r}")
    return roles


class DriverCalls:
    """Framework → master calls; mixed into :class:`~mesoslite.scheduler.SchedulerDriver`."""

    # Provided by SchedulerDriver.
    _session: Session
    _seen: SeenUpdates
    _client: DealerClient | None
    _implicit: bool
    _framework_info: FrameworkInfo
    _clock: Clock
    _loop: asyncio.AbstractEventLoop | None
    _submit: Callable[[str, Callable[[], object]], Status]
    _deliver_update: Callable[[TaskStatus], None]
    _send_ack: Callable[[TaskStatus], None]

    def accept_offers(
        self,
        offer_ids: str | Iterable[str],
        operations: Iterable[Operation],
        filters: Filters | None = None,
    ) -> Status:
        """Use offers (all on one agent) for ``operations``; the rest is declined.

        Unused resources are not re-offered for ``filters.refuse_seconds``
        (default 5 s).  Each offer id can be used once.  Tasks of a LAUNCH
        that the master refuses come back as ``TASK_ERROR``/``TASK_DROPPED``
        status updates.  Accepting with no operations declines the offers.
        """
        ids = _strings("offer_ids", offer_ids)
        ops = tuple(operations)
        for i, op in enumerate(ops):
            if not isinstance(op, Operation):
                raise TypeError(f"operations[{i}]: expected Operation, got {type(op).__name__}")
        _check_filters(filters)

        def call() -> None:
            if self._send("accept_offers", lambda fid: Accept(fid, ids, ops, filters)):
                return
            for op in ops:
                if op.type == "LAUNCH":
                    for task in op.task_infos:
                        self._report_dropped(task)

        return self._submit("accept_offers", call)

    def launch_tasks(
        self,
        offer_ids: str | Iterable[str],
        tasks: Iterable[TaskInfo],
        filters: Filters | None = None,
    ) -> Status:
        """Launch ``tasks`` on offers of one agent (an Accept with one LAUNCH operation).

        Each task's ``agent_id`` must be the offers' agent and its resources
        must fit in what is left of the offers.  An empty ``tasks`` declines
        the offers.  Progress arrives as ``status_update`` callbacks, starting
        with ``TASK_STARTING``.
        """
        task_list = tuple(tasks)
        for i, task in enumerate(task_list):
            if not isinstance(task, TaskInfo):
                raise TypeError(f"tasks[{i}]: expected TaskInfo, got {type(task).__name__}")
        operations = (Operation(type="LAUNCH", task_infos=task_list),) if task_list else ()
        return self.accept_offers(offer_ids, operations, filters)

    def decline_offer(self, offer_id: str, filters: Filters | None = None) -> Status:
        """Decline one offer; its resources are not re-offered for ``filters.refuse_seconds``."""
        ids = _strings("offer_id", offer_id)
        _check_filters(filters)
        return self._submit(
            "decline_offer",
            lambda: self._send("decline_offer", lambda fid: Decline(fid, ids, filters)),
        )

    def revive_offers(self, roles: str | Iterable[str] = ()) -> Status:
        """Clear all filters and resume offers for ``roles`` (every role when empty)."""
        role_tuple = _roles(roles)
        return self._submit(
            "revive_offers",
            lambda: self._send("revive_offers", lambda fid: Revive(fid, role_tuple)),
        )

    def suppress_offers(self, roles: str | Iterable[str] = ()) -> Status:
        """Stop offers for ``roles`` (every role when empty) until :meth:`revive_offers`.

        Status updates keep flowing.  Suppress when there is nothing to launch.
        """
        role_tuple = _roles(roles)
        return self._submit(
            "suppress_offers",
            lambda: self._send("suppress_offers", lambda fid: Suppress(fid, role_tuple)),
        )

    def kill_task(
        self, task_id: str, agent_id: str = "", kill_policy: KillPolicy | None = None
    ) -> Status:
        """Kill a task: SIGTERM, then SIGKILL after the grace period.

        ``kill_policy`` overrides the task's own (default 3 s).  The outcome
        arrives as a status update: ``TASK_KILLING`` (with capability
        ``TASK_KILLING_STATE``), then ``TASK_KILLED``; ``TASK_LOST`` for a
        task the master does not know.
        """
        _check_id("task_id", task_id)
        _check_id("agent_id", agent_id, optional=True)
        if kill_policy is not None and not isinstance(kill_policy, KillPolicy):
            raise TypeError(
                f"kill_policy: expected KillPolicy or None, got {type(kill_policy).__name__}"
            )
        return self._submit(
            "kill_task",
            lambda: self._send(
                "kill_task", lambda fid: Kill(fid, task_id, agent_id, kill_policy)
            ),
        )

    def acknowledge_status_update(self, status: TaskStatus) -> Status:
        """Acknowledge a status update (explicit acknowledgement mode only).

        Only updates with a ``uuid`` need it; others are ignored.  Until an
        update is acknowledged the agent resends it and holds back that
        task's later updates.  Raises RuntimeError when the driver was
        created with ``implicit_acknowledgements=True`` (Mesos aborts there).
        """
        if self._implicit:
            raise RuntimeError(
                "acknowledge_status_update: implicit acknowledgements are enabled; "
                "create the driver with implicit_acknowledgements=False"
            )
        if not isinstance(status, TaskStatus):
            raise TypeError(f"status: expected TaskStatus, got {type(status).__name__}")
        if not status.uuid:
            return self._submit("acknowledge_status_update", lambda: None)
        return self._submit("acknowledge_status_update", lambda: self._send_ack(status))

    def reconcile_tasks(self, tasks: Iterable[TaskStatus | ReconcileTask | str] = ()) -> Status:
        """Ask for the latest state of ``tasks``; all of the framework's tasks when empty.

        ``tasks`` may hold task statuses, :class:`ReconcileTask` values or
        task ids.  Answers arrive as status updates with reason
        ``REASON_RECONCILIATION`` and no uuid; an unknown task comes back
        ``TASK_LOST``.  Reconcile after every (re-)registration, one
        reconciliation at a time.
        """
        wanted: list[ReconcileTask] = []
        for i, item in enumerate(tasks):
            if isinstance(item, ReconcileTask):
                wanted.append(item)
            elif isinstance(item, TaskStatus):
                wanted.append(ReconcileTask(task_id=item.task_id, agent_id=item.agent_id))
            elif isinstance(item, str):
                _check_id(f"tasks[{i}]", item)
                wanted.append(ReconcileTask(task_id=item))
            else:
                raise TypeError(
                    f"tasks[{i}]: expected TaskStatus, ReconcileTask or a task id, "
                    f"got {type(item).__name__}"
                )
        reconcile = tuple(wanted)
        return self._submit(
            "reconcile_tasks",
            lambda: self._send("reconcile_tasks", lambda fid: Reconcile(fid, reconcile)),
        )

    def send_framework_message(self, executor_id: str, agent_id: str, data: bytes) -> Status:
        """Send ``data`` to one of this framework's executors (best effort, may be lost)."""
        _check_id("executor_id", executor_id)
        _check_id("agent_id", agent_id)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        payload = bytes(data)
        return self._submit(
            "send_framework_message",
            lambda: self._send(
                "send_framework_message",
                lambda fid: FrameworkToExecutorMessage(fid, agent_id, executor_id, payload),
            ),
        )

    def request_resources(self, requests: Iterable[Any] = ()) -> Status:
        """Ask for resources; a no-op, as with Mesos's built-in allocator. Returns the status."""
        return self._submit("request_resources", lambda: None)

    # ----------------------------------------------------------------- helpers

    def _send(self, what: str, build: Callable[[str], Any]) -> bool:
        """Send ``build(framework_id)`` if subscribed; False (logged) when refused."""
        client = self._client
        if client is None or not self._session.is_subscribed:
            log.warning("%s refused: not subscribed to a master", what)
            return False
        return client.send(build(self._session.framework_id))

    def _report_dropped(self, task: TaskInfo) -> None:
        partition_aware = self._framework_info.has_capability("PARTITION_AWARE")
        status = TaskStatus(
            task_id=task.task_id,
            state=TaskState.TASK_DROPPED if partition_aware else TaskState.TASK_LOST,
            message="Master disconnected",
            source=Source.SOURCE_MASTER,
            reason=Reason.REASON_MASTER_DISCONNECTED,
            agent_id=task.agent_id,
            timestamp=self._clock.time(),
        )
        assert self._loop is not None
        self._loop.call_soon(self._deliver_update, status)
