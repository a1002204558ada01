"""The master refuses a launch whose health check the executor could not run."""

from __future__ import annotations

import pytest

from mesoslite.master.validation import check_tasks
from mesoslite.protocol import CommandInfo, HealthCheck, HTTPCheck, Operation, TaskInfo, TCPCheck
from mesoslite.resources import Resources

OFFERED = [("*", Resources.parse("cpus:1;mem:128"))]


def _verdict(check: HealthCheck):
    task = TaskInfo(name="t", task_id="t1", agent_id="a1", resources=Resources.parse("cpus:0.1"),
                    command=CommandInfo(value="sleep 1"), health_check=check)
    verdicts, _left, errors = check_tasks([Operation(type="LAUNCH", task_infos=(task,))],
                                          "f1", "a1", OFFERED, (), ())
    assert not errors
    return verdicts[0]


@pytest.mark.parametrize(("check", "field_text"), [
    (HealthCheck(type="COMMAND"), "health_check.command"),
    (HealthCheck(type="HTTP", http=None), "health_check.http"),
    (HealthCheck(type="UDP"), "health_check.type"),
    (HealthCheck(type="TCP", tcp=TCPCheck(port=0)), "health_check.tcp.port"),
    (HealthCheck(type="COMMAND", command=CommandInfo(value="true"), interval_seconds=0),
     "health_check.interval_seconds"),
    (HealthCheck(type="HTTP", http=HTTPCheck(port=80, path="no-slash")), "health_check.http.path"),
])
def test_bad_health_checks_are_refused_naming_the_field(check: HealthCheck,
                                                         field_text: str) -> None:
    """A launch with an unusable health check gets an error naming the field."""
    verdict = _verdict(check)
    assert verdict.field == "health_check"
    assert field_text in verdict.error and "task t1" in verdict.error


def test_a_good_health_check_passes() -> None:
    """A complete COMMAND check is accepted and consumes the task's resources."""
    verdict = _verdict(HealthCheck(type="COMMAND", command=CommandInfo(value="true")))
    assert not verdict.error and verdict.offer_index == 0
