"""Unit tests for the DRF sorter (mesoslite.allocator.sorter)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesoslite.allocator.sorter import DRFSorter


def progressive_fill(
    sorter: DRFSorter, total: dict[str, float], tasks: dict[str, dict[str, float]]
) -> dict[str, int]:
    """Give one task at a time to the lowest-share client whose task still fits."""
    free = dict(total)
    launched = dict.fromkeys(tasks, 0)
    while True:
        for client in sorter.sort():
            task = tasks[client]
            if all(free.get(name, 0.0) >= amount - 1e-9 for name, amount in task.items()):
                for name, amount in task.items():
                    free[name] -= amount
                sorter.allocated(client, task)
                launched[client] += 1
                break
        else:
            return launched


def test_drf_paper_example_converges_to_equal_dominant_shares() -> None:
    """The DRF paper example: A gets 3 tasks, B gets 2, both at dominant share 2/3."""
    total = {"cpus": 9.0, "mem": 18.0}  # 9 CPUs, 18 GB
    sorter = DRFSorter()
    sorter.set_total(total)
    sorter.add("A")
    sorter.add("B")
    tasks = {"A": {"cpus": 1.0, "mem": 4.0}, "B": {"cpus": 3.0, "mem": 1.0}}

    launched = progressive_fill(sorter, total, tasks)

    assert launched == {"A": 3, "B": 2}
    # A holds <3 CPU, 12 GB>: CPU share 3/9, memory share 12/18 = 2/3 (dominant: memory).
    assert sorter.share("A") == pytest.approx(2 / 3)
    # B holds <6 CPU, 2 GB>: CPU share 6/9 = 2/3 (dominant: CPU), memory share 2/18.
    assert sorter.share("B") == pytest.approx(2 / 3)
    assert sorter.allocation("A") == {"cpus": 3.0, "mem": 12.0}
    assert sorter.allocation("B") == {"cpus": 6.0, "mem": 2.0}


def test_weight_two_gets_about_twice_the_share() -> None:
    """A client with weight 2 ends with twice the dominant share of a weight-1 client."""
    total = {"cpus": 30.0, "mem": 30.0}
    sorter = DRFSorter()
    sorter.set_total(total)
    sorter.add("heavy", weight=2.0)
    sorter.add("light")
    task = {"cpus": 1.0, "mem": 1.0}

    launched = progressive_fill(sorter, total, {"heavy": task, "light": task})

    assert launched == {"heavy": 20, "light": 10}
    assert sorter.share("heavy") == pytest.approx(2 / 3)  # 20 of 30
    assert sorter.share("light") == pytest.approx(1 / 3)  # 10 of 30
    assert sorter.weighted_share("heavy") == pytest.approx(sorter.weighted_share("light"))


def test_sort_orders_by_weighted_share_ascending() -> None:
    """sort() lists active clients from the lowest weighted dominant share upward."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 10.0, "mem": 100.0})
    for client in ("a", "b", "c"):
        sorter.add(client)
    sorter.allocated("a", {"cpus": 5.0})  # 0.5
    sorter.allocated("b", {"mem": 10.0})  # 0.1
    sorter.allocated("c", {"cpus": 1.0, "mem": 30.0})  # 0.3
    assert sorter.sort() == ["b", "c", "a"]
    sorter.set_weight("a", 10.0)  # 0.05 weighted
    assert sorter.sort() == ["a", "b", "c"]
    assert sorter.weighted_share("a") == pytest.approx(0.05)
    assert sorter.share("a") == pytest.approx(0.5)


def test_ties_broken_by_allocation_count_then_name() -> None:
    """Equal shares sort by fewer allocations first, then by name."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 10.0})
    for client in ("b", "a", "c"):
        sorter.add(client)
    assert sorter.sort() == ["a", "b", "c"]
    sorter.allocated("a", {"cpus": 1.0})
    sorter.allocated("a", {"cpus": 1.0})
    sorter.allocated("b", {"cpus": 2.0})
    # a and b both hold 2 CPUs; b got them in one allocation, a in two.
    assert sorter.sort() == ["c", "b", "a"]


def test_deactivated_client_is_hidden_but_keeps_allocation() -> None:
    """deactivate() removes a client from sort() without forgetting what it holds."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 4.0})
    sorter.add("a")
    sorter.add("b")
    sorter.allocated("a", {"cpus": 2.0})
    sorter.deactivate("a")
    assert sorter.sort() == ["b"]
    assert not sorter.is_active("a")
    assert sorter.share("a") == pytest.approx(0.5)
    sorter.activate("a")
    assert sorter.is_active("a")
    assert sorter.sort() == ["b", "a"]


def test_unallocated_saturates_and_drops_empty_kinds() -> None:
    """Subtracting more than is held leaves nothing of that kind, never a negative."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 4.0, "mem": 100.0})
    sorter.add("a")
    sorter.allocated("a", {"cpus": 1.0, "mem": 50.0})
    sorter.unallocated("a", {"cpus": 3.0, "mem": 10.0})
    assert sorter.allocation("a") == {"mem": 40.0}
    assert sorter.share("a") == pytest.approx(0.4)


def test_fixed_point_quantities_do_not_drift() -> None:
    """0.1 + 0.2 - 0.3 leaves exactly nothing, as Resources' fixed point does."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 1.0})
    sorter.add("a")
    sorter.allocated("a", {"cpus": 0.1})
    sorter.allocated("a", {"cpus": 0.2})
    sorter.unallocated("a", {"cpus": 0.3})
    assert sorter.allocation("a") == {}
    assert sorter.share("a") == 0.0


def test_kinds_missing_from_total_are_ignored() -> None:
    """A kind with no cluster total does not contribute to the dominant share."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 4.0})
    sorter.add("a")
    sorter.allocated("a", {"cpus": 1.0, "gpus": 1.0})
    assert sorter.share("a") == pytest.approx(0.25)


def test_set_total_reorders_clients() -> None:
    """Changing the cluster total changes which kind dominates and re-sorts."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 10.0, "mem": 10.0})
    sorter.add("cpu-heavy")
    sorter.add("mem-heavy")
    sorter.allocated("cpu-heavy", {"cpus": 4.0})
    sorter.allocated("mem-heavy", {"mem": 3.0})
    assert sorter.sort() == ["mem-heavy", "cpu-heavy"]
    sorter.set_total({"cpus": 100.0, "mem": 10.0})
    assert sorter.sort() == ["cpu-heavy", "mem-heavy"]
    assert sorter.total() == {"cpus": 100.0, "mem": 10.0}


def test_remove_forgets_client() -> None:
    """A removed client leaves sort() and membership."""
    sorter = DRFSorter()
    sorter.add("a")
    sorter.add("b")
    sorter.remove("a")
    assert "a" not in sorter
    assert "b" in sorter
    assert sorter.sort() == ["b"]
    assert len(sorter) == 1
    sorter.add("a")  # may come back, starting from nothing
    assert sorter.allocation("a") == {}


def test_bad_input_is_rejected_with_the_field_named() -> None:
    """Duplicates, unknown clients, bad weights and bad quantities raise clearly."""
    sorter = DRFSorter()
    sorter.add("a")
    with pytest.raises(ValueError, match="'a'"):
        sorter.add("a")
    with pytest.raises(KeyError, match="'nope'"):
        sorter.allocated("nope", {"cpus": 1.0})
    for weight in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="weight"):
            sorter.set_weight("a", weight)
    with pytest.raises(ValueError, match="cpus"):
        sorter.allocated("a", {"cpus": -1.0})
    with pytest.raises(ValueError, match="mem"):
        sorter.set_total({"mem": math.nan})


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["alloc", "unalloc", "weight", "toggle", "total"]),
        st.sampled_from(["c0", "c1", "c2", "c3", "c4"]),
        st.integers(min_value=0, max_value=40),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_incremental_order_matches_full_sort(ops: list[tuple[str, str, int, int]]) -> None:
    """After any sequence of changes, sort() equals sorting from scratch."""
    sorter = DRFSorter()
    sorter.set_total({"cpus": 20.0, "mem": 20.0})
    clients = ["c0", "c1", "c2", "c3", "c4"]
    for client in clients:
        sorter.add(client)
    counts = dict.fromkeys(clients, 0)
    for op, client, x, y in ops:
        if op == "alloc":
            sorter.allocated(client, {"cpus": x / 4, "mem": y / 4})
            if x or y:
                counts[client] += 1
        elif op == "unalloc":
            sorter.unallocated(client, {"cpus": x / 4, "mem": y / 4})
        elif op == "weight":
            sorter.set_weight(client, 0.5 + x / 8)
        elif op == "toggle":
            if sorter.is_active(client):
                sorter.deactivate(client)
            else:
                sorter.activate(client)
        else:
            sorter.set_total({"cpus": 1.0 + x, "mem": 1.0 + y})
        if x % 3 == 0:
            sorter.sort()  # interleave reads so both lazy paths are exercised
    expected = sorted(
        (c for c in clients if sorter.is_active(c)),
        key=lambda c: (sorter.weighted_share(c), counts[c], c),
    )
    assert sorter.sort() == expected
