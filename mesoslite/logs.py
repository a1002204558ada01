"""How every mesoslite process writes its log: text lines or JSON objects, on stderr.

Owns: ``--log_format`` (``text``, the default: ``time LEVEL logger: message``; ``json``:
one JSON object per line for ELK, Loki or any shipper: ``time`` (UTC, ISO 8601 with
milliseconds), ``level``, ``process`` (master, agent, marathon, executor, ...), ``pid``,
``logger``, ``message``, the ids known (``framework_id``, ``agent_id``, ``executor_id``,
``task_id``) and ``exception`` when there is one), :func:`configure`, and the ids a
process knows about itself (:func:`set_log_context`; a value may be a callable read at
each record, e.g. the agent's id once it registered).  A record's own ids come from its
template (the house style writes ``task %s of framework %s``: :func:`ids_from_template`)
or from ``extra={"task_id": ...}``.  The format is handed down to executors through the
``MESOSLITE_LOG_FORMAT`` environment variable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable

#: The ids a JSON line carries when they are known.
IDS = ("framework_id", "agent_id", "executor_id", "task_id")
FORMATS = ("text", "json")
ENV = "MESOSLITE_LOG_FORMAT"

_context: dict[str, str | Callable[[], str | None]] = {}

#: A ``%`` placeholder of a log template, and the word before it that names an id.
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]")
_WORD_IDS = {"framework": "framework_id", "task": "task_id", "agent": "agent_id",
             "executor": "executor_id"}


def ids_from_template(template: str, args: object) -> dict[str, str]:
    """Ids named in a log call's template: ``"task %s of framework %s"`` → both args.

    The house style writes ids as ``<kind> %s`` (framework, task, agent, executor), so the
    word before each placeholder says which id its argument is.
    """
    if not isinstance(args, tuple) or not args or "%" not in template:
        return {}
    out: dict[str, str] = {}
    index = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.group() == "%%":
            continue
        if index >= len(args):
            break
        before = template[:match.start()].rstrip().rsplit(None, 1)
        name = _WORD_IDS.get(before[-1].lower()) if before else None
        if name and name not in out and isinstance(args[index], str) and args[index]:
            out[name] = args[index]
        index += 1
    return out


def set_log_context(**ids: str | Callable[[], str | None] | None) -> None:
    """Ids this process knows about itself (a callable is read at every record)."""
    for name, value in ids.items():
        if name not in IDS:
            raise ValueError(f"log context: expected one of {', '.join(IDS)}, got {name!r}")
        if value is None or value == "":
            _context.pop(name, None)
        else:
            _context[name] = value


def _context_ids() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in _context.items():
        current = value() if callable(value) else value
        if current:
            out[name] = current
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, process: str) -> None:
        """Records are stamped with ``process``."""
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": self.process,
            "pid": record.process if record.process is not None else os.getpid(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context_ids())
        if isinstance(record.msg, str):
            line.update(ids_from_template(record.msg, record.args))
        for name in IDS:
            value = record.__dict__.get(name)
            if value:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, fmt: str, process: str,
              text_formatter: logging.Formatter | None = None) -> None:
    """Log to stderr at ``level`` in ``fmt`` (text | json); executors inherit the format."""
    if fmt not in FORMATS:
        raise ValueError(f"log_format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        logging.logProcesses = True
        handler.setFormatter(JsonFormatter(process))
        os.environ[ENV] = "json"
    else:
        handler.setFormatter(text_formatter or logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)
