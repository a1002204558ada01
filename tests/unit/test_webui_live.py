"""The web UIs' live parts: page selection, the masters list, chart samples taken with
nobody watching, one computation per page for concurrent readers, and the service UI's
coalesced push over the real event bus."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest

from frameworks.marathon.events import EventBus
from frameworks.marathon.webui.stream import ChangePublisher
from mesoslite.protocol import MasterInfo
from mesoslite.testing.harness import Harness
from mesoslite.webui import views
from mesoslite.webui.handlers import MasterUi
from mesoslite.webui.publisher import Publisher


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("offset", [0, 7, 60])
def test_an_early_page_is_the_same_as_a_full_sort(descending: bool, offset: int) -> None:
    """The selection used for early pages of long lists picks exactly the rows, in the
    order, that sorting everything does (ties keep their order, missing values last)."""
    rng = random.Random(offset)
    rows = [{"v": rng.choice([None, 1, 2, 2.5, 3, "b", "a"]), "n": i} for i in range(2000)]
    query = views.Query(offset=offset, limit=20, sort="v", descending=descending)
    picked = views.page(rows, query)["items"]
    full = sorted(rows, key=lambda row: views._sort_value(row["v"]), reverse=descending)
    assert [row["n"] for row in picked] == [row["n"] for row in full[offset:offset + 20]]


def _master(n: int) -> MasterInfo:
    return MasterInfo(id=f"m{n}", ip="127.0.0.1", port=5050 + n, hostname=f"h{n}",
                      version="1", zmq_endpoint="", http_endpoint="")


def test_masters_are_listed_leader_first_with_this_one_marked() -> None:
    """Every member is listed once, the leader first; without members, leader and self."""
    one, two, three = _master(1), _master(2), _master(3)
    rows = views.masters_json([one, two, three, two], me=three, leader=two)
    assert [(r["id"], r["leading"], r["self"]) for r in rows] == [
        ("m2", True, False), ("m1", False, False), ("m3", False, True)]
    alone = views.masters_json([], me=one, leader=None)
    assert [(r["id"], r["leading"], r["self"]) for r in alone] == [("m1", True, True)]


class Shell:
    """The master shell's read side over a Harness state."""

    def __init__(self, harness: Harness, leading: bool = True) -> None:
        self.state = harness.state
        self.info = harness.info
        self.config = harness.config
        self.start_time = self.elected_time = 0.0
        self.is_leading = leading
        self.leadership = self

    recovering = False

    def leader(self) -> MasterInfo | None:
        return self.info if self.is_leading else None

    def metrics_snapshot(self) -> dict[str, float]:
        return {}


def test_the_chart_gets_points_while_nobody_watches() -> None:
    """While leading, each tick adds a point from the counters (no summary computed);
    the history is bounded; a standby adds none."""
    h = Harness()
    h.add_agent(b"agent-1")
    now = [1000.0]
    publisher = Publisher(Shell(h), lambda: now[0], interval=1.0, history_seconds=5.0)
    for _ in range(8):
        now[0] += 1.0
        assert publisher.sample_counters()
    assert publisher.computed == 0 and len(publisher.history) == 5
    assert publisher.history[-1][0] == now[0] and publisher.history[-1][3] == 4.0  # cpus total
    assert not publisher.sample_counters()  # a point was just taken
    standby = Publisher(Shell(h, leading=False), lambda: now[0])
    now[0] += 1.0
    assert not standby.sample_counters() and not standby.history


def test_concurrent_readers_of_one_page_share_one_computation() -> None:
    """Requests for the same page and counters while it is being computed wait for that
    computation; an error reaches every one of them and is not cached."""
    h = Harness()
    ui = MasterUi(Shell(h))  # type: ignore[arg-type]
    calls = [0]

    async def compute() -> Any:
        calls[0] += 1
        await asyncio.sleep(0.01)
        return {"n": calls[0]}

    async def failing() -> Any:
        calls[0] += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    async def main() -> None:
        texts = await asyncio.gather(*(ui.page(("k",), compute) for _ in range(5)))
        assert calls[0] == 1 and set(texts) == {'{"n":1}'}
        assert await ui.page(("k",), compute) == '{"n":1}' and calls[0] == 1
        results = await asyncio.gather(*(ui.page(("bad",), failing) for _ in range(3)),
                                       return_exceptions=True)
        assert calls[0] == 2 and all(isinstance(r, RuntimeError) for r in results)
        await ui.page(("bad",), compute)
        assert calls[0] == 3

    asyncio.run(main())


async def next_push(publisher: ChangePublisher, watcher: Any) -> dict[str, Any]:
    """The data of the next frame the watcher is offered."""
    published = publisher.published
    deadline = time.monotonic() + 10
    while publisher.published == published and time.monotonic() < deadline:
        watcher.wake.clear()
        await asyncio.wait_for(watcher.wake.wait(), 10)
    frame = watcher.take()
    assert frame is not None
    data: dict[str, Any] = json.loads(frame.decode().split("data: ", 1)[1])
    return data


class Service:
    """The facade's event side: the real bus."""

    is_leader = True

    def __init__(self) -> None:
        self.bus = EventBus(lambda: "2026-01-01T00:00:00.000Z", max_queue=50)

    def subscribe(self, event_types: frozenset[str] | None, remote: str) -> Any:
        return self.bus.subscribe(event_types, remote)


def test_the_service_push_folds_many_events_into_one_frame() -> None:
    """300 task updates within one interval reach a page as one ``changes`` frame naming
    the app; a burst that overflows the subscription's queue still reaches the page (as
    ``event_stream_overflow``); nothing is subscribed while no page watches."""
    service = Service()
    # The interval is long next to the 300 updates (a loaded machine may stretch the
    # loop's 30 short sleeps to tenths of a second): they must all fall in one interval.
    publisher = ChangePublisher(service, interval=2.0)  # type: ignore[arg-type]

    async def main() -> None:
        assert service.bus.subscriber_count == 0
        watcher = publisher.attach()
        first = watcher.take()
        assert first is not None and b"event: changes" in first
        await asyncio.sleep(0)  # the publisher subscribes
        assert service.bus.subscriber_count == 1
        for i in range(300):
            service.bus.publish("status_update_event", appId="/a/b", taskId=f"t{i}")
            if i % 10 == 0:
                await asyncio.sleep(0.001)  # the loop's other work between updates
        data = await next_push(publisher, watcher)
        assert publisher.published == 1 and publisher.folded >= 300
        assert data["seq"] == 1 and data["apps"] == ["/a/b"]
        assert data["types"] == ["status_update_event"]
        for i in range(300):  # all at once: more than the bus keeps for a subscriber
            service.bus.publish("status_update_event", appId="/c", taskId=f"t{i}")
        data = await next_push(publisher, watcher)
        assert data["seq"] == 2 and "event_stream_overflow" in data["types"]
        assert service.bus.subscriber_count == 1  # subscribed again
        publisher.detach(watcher)
        await publisher.stop()
        assert service.bus.subscriber_count == 0

    asyncio.run(main())


class Record:
    """A record with a version, as the master's agents and tasks have."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = 0


def test_row_lists_remake_only_the_rows_of_changed_records() -> None:
    """Same records: only those whose version moved get a new row; other records (one
    gone, one new): every row is made for the new list."""
    ui = MasterUi(Shell(Harness()))  # type: ignore[arg-type]
    made: list[str] = []

    def row(record: Record) -> dict[str, Any]:
        made.append(record.name)
        return {"name": record.name, "v": record.version}

    records = [Record(f"r{i}") for i in range(5)]
    assert [r["name"] for r in ui.rows("slot", records, row)] == [f"r{i}" for i in range(5)]
    made.clear()
    records[3].version += 1
    rows = ui.rows("slot", list(records), row)
    assert made == ["r3"] and rows[3]["v"] == 1 and rows[0]["v"] == 0
    made.clear()
    changed = [*records[:2], Record("new"), *records[3:]]
    assert [r["name"] for r in ui.rows("slot", changed, row)][2] == "new"
    assert len(made) == 5


@pytest.mark.parametrize("values", [[3, None, 1.5, 2], ["b", "A", "c", "a"], ["x", 1, None]])
def test_pages_of_mixed_or_missing_values_sort_as_before(values: list[Any]) -> None:
    """Numbers, text in any case, missing values and mixes give the order of a full sort
    by the display rules (numbers, then text ignoring case, then missing)."""
    rows = [{"v": value, "n": i} for i, value in enumerate(values * 50)]
    for descending in (False, True):
        query = views.Query(offset=3, limit=5, sort="v", descending=descending)
        full = sorted(rows, key=lambda row: views._sort_value(row["v"]), reverse=descending)
        assert views.page(rows, query)["items"] == full[3:8]
