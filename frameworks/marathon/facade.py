"""What the REST API asks of the framework: the service facade and its errors.

Owns: :class:`ServiceFacade`, the one interface between the REST API
(``api/``, and the UI) and the framework's state (``service.py`` implements
it), the errors it raises (each maps to one HTTP status) and the event-stream
:class:`Subscription`.  The value types it hands out (:class:`QueueEntry`,
:class:`TaskFailure`, :class:`TaskCounts`) live in ``core.reports``.  Every
method runs on the event loop; ``async`` ones persist before they return.
"""

from __future__ import annotations

from typing import Any, Protocol

from frameworks.marathon.core.model import App, MarathonTask
from frameworks.marathon.core.reports import QueueEntry, TaskCounts, TaskFailure


class ServiceError(Exception):
    """Base of the errors the facade raises; ``status`` is the HTTP status."""

    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class UnknownApp(ServiceError):
    """No app (or app version) with that id: 404 ``App '/x' does not exist``."""

    status = 404


class UnknownTask(ServiceError):
    """No task with that id: 404."""

    status = 404


class UnknownDeployment(ServiceError):
    """No deployment with that id: 404."""

    status = 404


class AppExists(ServiceError):
    """POST of an app whose id is taken: 409."""

    status = 409


class AppLocked(ServiceError):
    """The app is part of a running deployment and ``force`` was not given: 409.

    ``deployment_ids`` become ``"deployments": [{"id": ...}]`` in the body.
    """

    status = 409

    def __init__(self, message: str, deployment_ids: list[str]) -> None:
        super().__init__(message)
        self.deployment_ids = deployment_ids


class TooManyDeployments(ServiceError):
    """More running deployments than allowed (Marathon: 100): 403."""

    status = 403


class NotLeader(ServiceError):
    """This instance is a standby; the API proxies or redirects to ``leader``."""

    status = 503

    def __init__(self, message: str, leader: str | None) -> None:
        super().__init__(message)
        self.leader = leader


class InvalidRequest(ServiceError):
    """A semantically invalid request (e.g. a dependency cycle): 422 with details."""

    status = 422


class Subscription(Protocol):
    """One event-stream subscriber."""

    #: True once closed (by the client, or by the service when it fell too far behind).
    closed: bool

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event (a dict with ``eventType`` and ``timestamp``), None on timeout."""
        ...

    def close(self) -> None:
        """Stop receiving events."""
        ...


class ServiceFacade(Protocol):
    """The framework as the REST API sees it."""

    # -- leadership and info -------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True when this instance leads (standbys proxy to the leader)."""
        ...

    def leader_address(self) -> str | None:
        """``host:port`` of the leading instance's HTTP API, None when unknown."""
        ...

    def info(self) -> dict[str, Any]:
        """``/v2/info``: name, version, elected, leader, frameworkId and the configs."""
        ...

    async def abdicate(self) -> None:
        """``DELETE /v2/leader``: give up leadership (another instance takes over)."""
        ...

    def metrics(self) -> dict[str, Any]:
        """``/metrics`` JSON (counters, gauges, timers)."""
        ...

    def metrics_prometheus(self) -> str:
        """``/metrics/prometheus``: the metrics in Prometheus text (HTTP timings aside)."""
        ...

    # -- reads ---------------------------------------------------------------
    def list_apps(self) -> list[App]:
        """Every app's current definition, sorted by id."""
        ...

    def get_app(self, app_id: str) -> App:
        """The current definition; raises :class:`UnknownApp`."""
        ...

    async def app_versions(self, app_id: str) -> list[str]:
        """Stored versions of the app, newest first; raises :class:`UnknownApp`."""
        ...

    async def app_version(self, app_id: str, version: str) -> App:
        """One stored version; raises :class:`UnknownApp` for an unknown app or version."""
        ...

    def tasks(self, app_id: str | None = None) -> list[MarathonTask]:
        """Active tasks (of one app, or all); raises :class:`UnknownApp` for an unknown app."""
        ...

    def task_counts(self, app_id: str) -> TaskCounts:
        """Counts of the app's tasks by condition and health."""
        ...

    def last_task_failure(self, app_id: str) -> TaskFailure | None:
        """The app's most recent failed task, if any."""
        ...

    def deployments(self, app_id: str | None = None) -> list[Any]:
        """Running deployment plans (``deployments.DeploymentPlan``), optionally one app's."""
        ...

    def queue(self) -> list[QueueEntry]:
        """Apps with instances waiting to launch."""
        ...

    def readiness_results(self, app_id: str) -> list[dict[str, Any]]:
        """Marathon's readinessCheckResults for tasks of the app's running deployment."""
        ...

    # -- writes (each returns the deployment it started) ----------------------
    async def create_app(self, app: App) -> Any:
        """POST /v2/apps; raises :class:`AppExists`."""
        ...

    async def put_app(self, app: App, *, force: bool) -> Any:
        """PUT /v2/apps/{id} after the partial-update merge: creates or changes the app."""
        ...

    async def put_apps(self, apps: list[App], *, force: bool) -> Any:
        """PUT /v2/apps: several apps in one deployment."""
        ...

    async def rollback_app(self, app_id: str, version: str, *, force: bool) -> Any:
        """PUT /v2/apps/{id} with ``{"version": v}``."""
        ...

    async def restart_app(self, app_id: str, *, force: bool) -> Any:
        """POST /v2/apps/{id}/restart: replace every instance, rolling."""
        ...

    async def delete_app(self, app_id: str, *, force: bool) -> Any:
        """DELETE /v2/apps/{id}."""
        ...

    async def kill_tasks(
        self, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
    ) -> tuple[list[MarathonTask], Any | None]:
        """Kill tasks; with ``scale`` also lower instances (returns the deployment)."""
        ...

    async def cancel_deployment(self, deployment_id: str, *, force: bool) -> Any | None:
        """DELETE /v2/deployments/{id}: roll back (returns the new plan) or, forced, stop."""
        ...

    def reset_delay(self, app_id: str) -> None:
        """DELETE /v2/queue/{id}/delay; raises :class:`UnknownApp` when not queued."""
        ...

    # -- events ----------------------------------------------------------------
    def subscribe(self, event_types: frozenset[str] | None, remote: str) -> Subscription:
        """A new event-stream subscriber (``None``: every type)."""
        ...
