"""The framework's side of the SDK: the :class:`Scheduler` callback interface.

Owns: :class:`Scheduler`, the base class a framework subclasses.  Every
callback is a no-op here, so a framework overrides only what it needs.  The
names and meanings follow the Mesos scheduler driver (``include/mesos/scheduler.hpp``)
in snake_case.

Callbacks are invoked by :class:`~mesoslite.scheduler.SchedulerDriver` on the
driver's event loop thread, one at a time, in the order the master sent the
messages.  A callback must not block for long: the driver can neither send
heartbeats nor deliver anything else while it runs.  Calling driver methods
from inside a callback is allowed (they never block there).  An exception
escaping a callback is logged with its traceback and aborts the driver, as
the Mesos language bindings do: a scheduler in an unknown state stops rather
than carrying on silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesoslite.protocol import MasterInfo, Offer, TaskStatus

if TYPE_CHECKING:
    from mesoslite.scheduler.driver import SchedulerDriver


class Scheduler:
    """Callbacks from the driver to the framework; every one is a no-op by default."""

    def registered(
        self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None
    ) -> None:
        """The framework subscribed for the first time (the driver's first ``Subscribed``).

        ``framework_id`` is the id the master assigned (or the id the framework
        brought in ``FrameworkInfo.id``); keep it to fail over later.  Called at
        most once per driver; later subscriptions call :meth:`reregistered`.
        """

    def reregistered(self, driver: SchedulerDriver, master_info: MasterInfo | None) -> None:
        """The framework subscribed again after :meth:`disconnected` or a new leader.

        The framework id is unchanged.  Offers made before the disconnection are
        gone; a careful framework reconciles its tasks now
        (:meth:`SchedulerDriver.reconcile_tasks`).
        """

    def disconnected(self, driver: SchedulerDriver) -> None:
        """The driver lost the master (silence for 5 heartbeat intervals, a refusal
        with ``NOT_SUBSCRIBED``, or a leader change).

        The driver keeps trying to subscribe again by itself; :meth:`reregistered`
        follows when it succeeds.  Offers held now are no longer valid, and calls
        made before re-subscription are refused (see the driver's documentation).
        """

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """New offers: each is resources on one agent for one role.

        Answer every offer with :meth:`SchedulerDriver.launch_tasks`,
        :meth:`SchedulerDriver.accept_offers` or :meth:`SchedulerDriver.decline_offer`.
        Offered resources count as allocated to this framework until answered
        or rescinded, so an offer left unanswered is held hostage.
        """

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """An offer is no longer valid (its agent left, or it timed out).

        Launches against it will fail with ``TASK_DROPPED``/``TASK_LOST``
        (reason ``REASON_INVALID_OFFERS``).  If the offer was already answered,
        the rescind crossed the answer on the wire and can be ignored.
        """

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state (``status.state``; see ``status.reason`` and ``message``).

        Each update carrying a ``uuid`` is delivered to this callback once per
        driver even if the agent resends it.  With implicit acknowledgements
        (the default) the driver acknowledges it when this callback returns;
        otherwise call :meth:`SchedulerDriver.acknowledge_status_update`.
        Until acknowledged, the agent retries it and holds back the task's
        later updates.  Updates the master makes itself (reconciliation,
        invalid launches, lost agents) carry no uuid and need no acknowledgement.
        """

    def framework_message(
        self, driver: SchedulerDriver, executor_id: str, agent_id: str, data: bytes
    ) -> None:
        """An executor of this framework sent ``data`` (best effort: may be lost)."""

    def agent_lost(self, driver: SchedulerDriver, agent_id: str) -> None:
        """An agent was removed (unreachable or shut down).

        Its tasks are reported separately as ``TASK_LOST`` (or
        ``TASK_UNREACHABLE`` for ``PARTITION_AWARE`` frameworks) status updates.
        """

    def executor_lost(
        self, driver: SchedulerDriver, executor_id: str, agent_id: str, status: int | None
    ) -> None:
        """An executor of this framework exited; ``status`` is its wait status if known.

        Its tasks get their own status updates; this is only informational.
        """

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """An unrecoverable error (e.g. the subscription was refused, or another
        scheduler took over this framework id).

        The driver is already aborted when this is called: no more callbacks
        follow, and :meth:`SchedulerDriver.join` returns ``DRIVER_ABORTED``.
        """
