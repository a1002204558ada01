"""Durable records of the framework's tasks.

Owns: the JSON form of a :class:`~frameworks.marathon.core.model.MarathonTask`
as stored under ``/instances/<task id>`` (written before a launch is sent,
so that a new leader knows every task the old one may have started, and
removed once the task is terminal), and the batching of those writes into
one store commit per loop turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import attrs

from frameworks.marathon.core.model import HealthResult, InstanceCondition, MarathonTask
from frameworks.marathon.state.repository import dump_json, encode_segment, load_json
from frameworks.marathon.state.store import Store, StoreError, get_many

log = logging.getLogger("mesoslite.marathon.instances")

PREFIX = "/instances"
#: Keys per store commit (a ZooKeeper transaction must stay under its request limit).
COMMIT_CHUNK = 200


def task_key(task_id: str) -> str:
    """The store key of one task."""
    return f"{PREFIX}/{encode_segment(task_id, 'task_id')}"


def task_to_record(task: MarathonTask) -> dict[str, Any]:
    """The JSON-able record of ``task``."""
    record = attrs.asdict(task, recurse=True)
    record["condition"] = task.condition.value
    record["ports"] = list(task.ports)
    record["service_ports"] = list(task.service_ports)
    record["ip_addresses"] = list(task.ip_addresses)
    return record


def task_from_record(record: dict[str, Any], key: str) -> MarathonTask:
    """Rebuild a task from :func:`task_to_record`'s output; ValueError names the key."""
    try:
        fields = dict(record)
        fields["condition"] = InstanceCondition(fields["condition"])
        health = fields.get("health")
        fields["health"] = HealthResult(**health) if isinstance(health, dict) else None
        for name in ("ports", "service_ports", "ip_addresses"):
            fields[name] = tuple(fields.get(name) or ())
        known = {a.name for a in attrs.fields(MarathonTask)}
        return MarathonTask(**{k: v for k, v in fields.items() if k in known})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"key {key!r}: not a task record ({exc})") from None


class InstanceRepository:
    """Tasks in the store, written in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._puts: dict[str, bytes] = {}
        self._deletes: set[str] = set()
        self._flush_lock = asyncio.Lock()

    def stage_put(self, task: MarathonTask) -> None:
        """Remember ``task`` for the next :meth:`flush`."""
        key = task_key(task.task_id)
        self._deletes.discard(key)
        self._puts[key] = dump_json(task_to_record(task), key)

    def stage_delete(self, task_id: str) -> None:
        """Remember to delete ``task_id`` at the next :meth:`flush`."""
        key = task_key(task_id)
        self._puts.pop(key, None)
        self._deletes.add(key)

    @property
    def pending(self) -> bool:
        """True when writes wait for :meth:`flush`."""
        return bool(self._puts or self._deletes)

    async def flush(self) -> None:
        """Write every staged change in one commit (serialised with other flushes)."""
        async with self._flush_lock:
            if not self.pending:
                return
            puts, deletes = self._puts, sorted(self._deletes)
            self._puts, self._deletes = {}, set()
            try:
                items = list(puts.items())
                for start in range(0, max(len(items), len(deletes)), COMMIT_CHUNK):
                    await self.store.commit(dict(items[start:start + COMMIT_CHUNK]),
                                            deletes[start:start + COMMIT_CHUNK])
            except BaseException:
                # Put them back (unless newer changes replaced them) and let the caller see it.
                for key, data in puts.items():
                    if key not in self._deletes:
                        self._puts.setdefault(key, data)
                for key in deletes:
                    if key not in self._puts:
                        self._deletes.add(key)
                raise

    async def load_all(self) -> list[MarathonTask]:
        """Every stored task (a corrupt record is logged with its key and skipped)."""
        out: list[MarathonTask] = []
        keys = [f"{PREFIX}/{name}" for name in await self.store.children(PREFIX)]
        for key, data in (await get_many(self.store, keys)).items():
            if data is None:
                continue
            try:
                out.append(task_from_record(load_json(data, key), key))
            except (ValueError, StoreError) as exc:
                log.error("skipping a stored task: %s", exc)
        return out
