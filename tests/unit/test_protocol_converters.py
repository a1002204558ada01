"""The compiled per-class converters keep every rule of the generic ones."""

from __future__ import annotations

import pytest

from mesoslite.protocol import (
    DecodeError,
    Filters,
    Reason,
    TaskState,
    TaskStatus,
    structure,
    unstructure,
)


def test_numbers_bools_and_enums_are_checked_exactly() -> None:
    """An int is a valid float (and becomes one); NaN, bools-as-ints and unknown enums are not."""
    assert structure(Filters, {"refuse_seconds": 3}) == Filters(refuse_seconds=3.0)
    assert type(structure(Filters, {"refuse_seconds": 3}).refuse_seconds) is float
    with pytest.raises(DecodeError) as info:
        structure(Filters, {"refuse_seconds": float("inf")})
    assert info.value.field == "Filters.refuse_seconds"
    status = {"task_id": "t", "state": "TASK_RUNNING", "healthy": 1}
    with pytest.raises(DecodeError) as info:
        structure(TaskStatus, status)
    assert info.value.field == "TaskStatus.healthy"
    with pytest.raises(DecodeError) as info:
        structure(TaskStatus, {"task_id": "t", "state": ["TASK_RUNNING"]})
    assert info.value.field == "TaskStatus.state"


def test_missing_extra_and_invalid_fields_name_the_path() -> None:
    """Errors carry the dotted path of the field, as the generic converters gave it."""
    with pytest.raises(DecodeError) as info:
        structure(TaskStatus, {"state": "TASK_RUNNING"})
    assert (info.value.field, info.value.reason) == ("TaskStatus.task_id",
                                                     "required field is missing")
    with pytest.raises(DecodeError) as info:
        structure(TaskStatus, {"task_id": "t", "state": "TASK_RUNNING", "zz": 1, "aa": 2})
    assert info.value.field == "TaskStatus.aa"
    with pytest.raises(DecodeError) as info:
        structure(TaskStatus, {"task_id": "../x", "state": "TASK_RUNNING"})
    assert info.value.field == "TaskStatus.task_id"
    with pytest.raises(DecodeError) as info:
        structure(TaskStatus, {"task_id": "t", "state": "TASK_RUNNING", "labels": {"k": 1}})
    assert info.value.field == "TaskStatus.labels['k']"


def test_round_trip_keeps_optional_enums_and_defaults() -> None:
    """Optional enum fields and defaults survive unstructure/structure."""
    status = TaskStatus(task_id="t", state=TaskState.TASK_FAILED, reason=Reason.REASON_TASK_INVALID,
                        labels={"a": "b"}, healthy=False)
    wire = unstructure(status)
    assert wire["state"] == "TASK_FAILED" and wire["reason"] == "REASON_TASK_INVALID"
    assert structure(TaskStatus, wire) == status
    assert structure(TaskStatus, {"task_id": "t", "state": "TASK_LOST"}) == TaskStatus(
        task_id="t", state=TaskState.TASK_LOST)
