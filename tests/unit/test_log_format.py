"""``--log_format json``: the formatter's fields, ids from templates, context and extras."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from mesoslite import logs
from mesoslite.cli import build_parser


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("mesoslite.master", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_line_has_time_level_process_logger_message() -> None:
    """One object per record with the fields shippers index on."""
    line = json.loads(logs.JsonFormatter("master").format(_record("hello %s", "world")))
    assert line["message"] == "hello world" and line["level"] == "INFO"
    assert line["process"] == "master" and line["logger"] == "mesoslite.master"
    assert line["time"].endswith("Z") and "T" in line["time"] and isinstance(line["pid"], int)


def test_ids_come_from_the_template_words_extra_and_context() -> None:
    """'task %s of framework %s' names its arguments; extra and the context add more."""
    logs.set_log_context(agent_id=lambda: "A-S0")
    try:
        line = json.loads(logs.JsonFormatter("agent").format(
            _record("Launching task %s of framework %s with executor %s", "t1", "F", "e1",
                    task_id="", executor_id="override")))
    finally:
        logs.set_log_context(agent_id=None)
    assert line["task_id"] == "t1" and line["framework_id"] == "F"
    assert line["executor_id"] == "override" and line["agent_id"] == "A-S0"
    assert logs.ids_from_template("%d%% of task %s", (5, "t")) == {"task_id": "t"}
    assert logs.ids_from_template("task %s", "not-a-tuple") == {}


def test_exceptions_are_one_field_and_the_line_stays_one_line() -> None:
    """A traceback is a field of the object, never extra lines."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    text = logs.JsonFormatter("agent").format(record)
    assert "\n" not in text and "ValueError: boom" in json.loads(text)["exception"]


def test_bad_values_are_refused() -> None:
    """Unknown context names and formats are errors naming the value; the flag has choices."""
    with pytest.raises(ValueError, match="'job_id'"):
        logs.set_log_context(job_id="x")
    with pytest.raises(ValueError, match="log_format"):
        logs.configure("INFO", "xml", "agent")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--log_format", "xml", "agent"])
    assert build_parser().parse_args(["--log_format", "json", "agent"]).log_format == "json"
