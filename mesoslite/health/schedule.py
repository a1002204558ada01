"""Health-check bookkeeping the Mesos way (PURE).

Owns: :func:`validate_health_check` (the rules a :class:`HealthCheck` must
meet before anything runs it) and :class:`HealthCheckState`, which decides
when the next probe of one task is due and what each probe result means.
The probes themselves (processes, sockets) and the loop that runs them are
in :mod:`mesoslite.health.probes`.

Semantics (Mesos ``HealthCheck``):

- the first probe runs ``delay_seconds`` after the checker started (the
  task's launch); each later one ``interval_seconds`` after the previous one
  finished, so probes never overlap;
- a failure is ignored while the task is within ``grace_period_seconds`` of
  its start and has never been healthy; once a probe has passed, the grace
  period no longer applies;
- the status changes only on a transition: ``healthy=True`` on the first
  success and on the first success after counted failures; ``healthy=False``
  on the first counted failure (whether or not the task was healthy before);
- after ``consecutive_failures`` counted failures in a row the verdict is
  "kill the task", and the state stops scheduling probes.
  ``consecutive_failures == 0`` means *never kill* (the meaning Marathon
  gives ``maxConsecutiveFailures: 0``; Mesos itself would kill at the first
  counted failure): the task is still reported unhealthy.

Time comes from an injected clock's ``monotonic()`` (probe spacing must not
jump with the wall clock).
"""

from __future__ import annotations

import math
from typing import Protocol

import attrs

from mesoslite.protocol import HealthCheck

#: The probe kinds an executor can run.
CHECK_TYPES = ("COMMAND", "HTTP", "TCP")
#: URL schemes an HTTP check may use.
HTTP_SCHEMES = ("http", "https")


class MonotonicClock(Protocol):
    """What the state needs from a clock."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


def _number_error(field: str, value: float, positive: bool) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return f"{field}: expected a finite number, got {value!r}"
    if positive and value <= 0:
        return f"{field}: expected a number > 0, got {value!r}"
    if value < 0:
        return f"{field}: expected a number >= 0, got {value!r}"
    return ""


def validate_health_check(check: HealthCheck, prefix: str = "health_check") -> str:
    """The first problem of ``check`` as "field: message" (``""`` when it may run).

    Rules: ``type`` is COMMAND, HTTP or TCP and its matching member (and only
    it) is set; ``interval_seconds`` and ``timeout_seconds`` > 0;
    ``delay_seconds`` and ``grace_period_seconds`` >= 0;
    ``consecutive_failures`` >= 0; a COMMAND check has a non-empty command; an
    HTTP check has a port in 1-65535, scheme http or https and a path that
    starts with "/" and holds no whitespace or control characters; a TCP
    check has a port in 1-65535.
    """
    if check.type not in CHECK_TYPES:
        return f"{prefix}.type: expected one of {', '.join(CHECK_TYPES)}, got {check.type!r}"
    for name, positive in (("delay_seconds", False), ("interval_seconds", True),
                           ("timeout_seconds", True), ("grace_period_seconds", False)):
        error = _number_error(f"{prefix}.{name}", getattr(check, name), positive)
        if error:
            return error
    failures = check.consecutive_failures
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        return f"{prefix}.consecutive_failures: expected an integer >= 0, got {failures!r}"
    members = {"COMMAND": check.command, "HTTP": check.http, "TCP": check.tcp}
    own = members[check.type]
    if own is None:
        return f"{prefix}.{check.type.lower()}: required by type {check.type}, got nothing"
    for kind, member in members.items():
        if kind != check.type and member is not None:
            return (f"{prefix}.{kind.lower()}: must be unset for type {check.type}, "
                    f"got {member!r}")
    if check.command is not None:
        command = check.command
        if not command.value:
            return f"{prefix}.command.value: expected a command, got ''"
    if check.http is not None:
        http = check.http
        if not 1 <= http.port <= 65535:
            return f"{prefix}.http.port: expected a port in 1-65535, got {http.port!r}"
        if http.scheme not in HTTP_SCHEMES:
            return (f"{prefix}.http.scheme: expected one of {', '.join(HTTP_SCHEMES)}, "
                    f"got {http.scheme!r}")
        if not http.path.startswith("/") or any(c.isspace() or ord(c) < 32 or ord(c) == 127
                                                for c in http.path):
            return (f"{prefix}.http.path: expected a path starting with '/' without spaces "
                    f"or control characters, got {http.path!r}")
    if check.tcp is not None and not 1 <= check.tcp.port <= 65535:
        return f"{prefix}.tcp.port: expected a port in 1-65535, got {check.tcp.port!r}"
    return ""


@attrs.frozen
class HealthVerdict:
    """What one probe result means.

    ``healthy`` is the new health status to report (None: no change to
    report); ``kill`` asks for the task to be killed; ``counted`` is False for
    a failure ignored within the grace period; ``message`` describes the
    result (the probe's own message, or why a failure was ignored).
    """

    healthy: bool | None = None
    kill: bool = False
    counted: bool = True
    message: str = ""


class HealthCheckState:
    """One task's health: when to probe next and what each result means (see module doc)."""

    def __init__(self, check: HealthCheck, clock: MonotonicClock,
                 started_at: float | None = None) -> None:
        """Start now (or at ``started_at``, a ``clock.monotonic()`` value): first probe after delay.

        ``check`` must pass :func:`validate_health_check` (ValueError otherwise).
        """
        error = validate_health_check(check)
        if error:
            raise ValueError(error)
        self.check = check
        self._clock = clock
        self.started_at = clock.monotonic() if started_at is None else started_at
        self._next_at: float | None = self.started_at + check.delay_seconds
        #: The last reported status (None until the first report).
        self.healthy: bool | None = None
        #: True once any probe has passed (the grace period is over for good).
        self.ever_healthy = False
        #: Counted failures in a row.
        self.consecutive_failures = 0
        #: True once the kill verdict was given (no more probes).
        self.kill_requested = False

    @property
    def next_probe_at(self) -> float | None:
        """When the next probe is due (``clock.monotonic()`` time; None: no more probes)."""
        return self._next_at

    def seconds_until_probe(self) -> float | None:
        """Seconds until the next probe (0 when due; None when no more probes will run)."""
        if self._next_at is None:
            return None
        return max(self._next_at - self._clock.monotonic(), 0.0)

    def probe_due(self) -> bool:
        """True when a probe should start now."""
        return self._next_at is not None and self._clock.monotonic() >= self._next_at

    def in_grace(self) -> bool:
        """True while failures are ignored: within the grace period and never healthy yet."""
        grace = self.check.grace_period_seconds
        return (not self.ever_healthy and grace > 0
                and self._clock.monotonic() - self.started_at <= grace)

    def stop(self) -> None:
        """No more probes (the task is ending)."""
        self._next_at = None

    def record(self, ok: bool, message: str = "") -> HealthVerdict:
        """Digest one probe result (finished now) and schedule the next probe."""
        if self.kill_requested or self._next_at is None:
            return HealthVerdict(counted=False, message="the health checker is stopped")
        now = self._clock.monotonic()
        self._next_at = now + self.check.interval_seconds
        if ok:
            report = self.healthy is not True
            self.ever_healthy = True
            self.consecutive_failures = 0
            self.healthy = True
            return HealthVerdict(healthy=True if report else None,
                                 message=message or "health check passed")
        if self.in_grace():
            return HealthVerdict(
                counted=False,
                message=f"{message or 'health check failed'} (ignored: within the "
                        f"{self.check.grace_period_seconds:g}s grace period)",
            )
        self.consecutive_failures += 1
        report = self.healthy is not False
        self.healthy = False
        limit = self.check.consecutive_failures
        kill = limit > 0 and self.consecutive_failures >= limit
        if kill:
            self.kill_requested = True
            self._next_at = None
        return HealthVerdict(healthy=False if report else None, kill=kill,
                             message=message or "health check failed")
