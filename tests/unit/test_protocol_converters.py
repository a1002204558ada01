"""The compiled per-class converters keep every rule of the generic ones."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import pytest

from mesoslite.protocol import (
    DecodeError,
    Filters,
    Reason,
    TaskState,
    TaskStatus,
    schema,
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


@attrs.frozen
class _Inner:
    x: int


@attrs.frozen
class _Outer:
    inner: _Inner
    name: str


def test_a_class_compiled_on_one_thread_encodes_on_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While one thread is still compiling a class, another encodes it with a complete pair."""
    in_window, release = threading.Event(), threading.Event()
    compile_class = schema._compile_class

    def slow(cls: type, pending: Any) -> Any:
        if cls is _Inner and threading.current_thread() is compiler:
            in_window.set()  # _Outer's generated functions exist; its fields are not bound yet
            release.wait(10)
        return compile_class(cls, pending)

    monkeypatch.setattr(schema, "_compile_class", slow)
    compiler = threading.Thread(target=schema.converters, args=(_Outer,), daemon=True)
    compiler.start()
    try:
        assert in_window.wait(10), "the compiling thread never reached the field converters"
        assert schema.unstructure(_Outer(_Inner(1), "n")) == {"inner": {"x": 1}, "name": "n"}
    finally:
        release.set()
        compiler.join(10)
    assert schema.unstructure(_Outer(_Inner(2), "m")) == {"inner": {"x": 2}, "name": "m"}
