"""Unit and property tests for mesoslite.resources (the Resources value type)."""

from __future__ import annotations

import copy
import json
import math
import operator
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesoslite.resources import (
    MAX_RANGE_VALUE,
    MAX_SCALAR,
    SCALAR_NAMES_ORDER,
    Resources,
    ResourcesError,
)

R = Resources.parse

# -- strategies ------------------------------------------------------------------------

SCALAR_NAMES = ["cpus", "gpus", "mem", "disk", "custom.scalar"]
RANGE_NAMES = ["ports", "ephemeral_ports"]
SET_NAMES = ["tags", "zones-x"]

bounds = st.one_of(st.integers(0, 200), st.integers(0, MAX_RANGE_VALUE))


@st.composite
def range_lists(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Lists of valid (begin, end) pairs, overlapping and adjacent ones included."""
    pairs = []
    for begin in draw(st.lists(bounds, max_size=5)):
        end = min(begin + draw(st.integers(0, 50)), MAX_RANGE_VALUE)
        pairs.append((begin, end))
    return pairs


item_sets = st.frozensets(st.sampled_from(["a", "b", "c", "gpu-1", "zone_a.x", "k=v", "x/y"]))
milli_values = st.integers(0, 10**9)


@st.composite
def resources(draw: st.DrawFn) -> Resources:
    """Arbitrary valid Resources; each name keeps one kind across all draws."""
    d: dict[str, Any] = {}
    for name in draw(st.sets(st.sampled_from(SCALAR_NAMES + RANGE_NAMES + SET_NAMES))):
        if name in SCALAR_NAMES:
            d[name] = draw(milli_values) / 1000
        elif name in RANGE_NAMES:
            d[name] = draw(range_lists())
        else:
            d[name] = set(draw(item_sets))
    return Resources.from_dict(d)


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["SCALAR", "RANGES", "SET", "TEXT", "cpus", "ports", "tags", "*", "a"]),
)
wire_keys = st.one_of(
    st.sampled_from(
        ["name", "type", "scalar", "ranges", "set", "role", "allocation_info", "value", "range",
         "item", "begin", "end"]
    ),
    st.text(max_size=4),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(wire_keys, children, max_size=5)
    ),
    max_leaves=10,
)


@st.composite
def mutated_wire(draw: st.DrawFn) -> list[Any]:
    """A valid wire list with one nested value replaced, deleted or added."""
    items: list[Any] = draw(resources()).to_wire()
    node: Any = items
    while node:
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        if isinstance(node[key], dict | list) and draw(st.booleans()):
            node = node[key]
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace" or not isinstance(node, dict):
            node[key] = draw(json_values)
        elif action == "delete":
            del node[key]
        else:
            node[draw(wire_keys)] = draw(json_values)
        break
    return items


text_garbage = st.one_of(
    st.text(),
    st.text(alphabet="cpusmem:;[]{}-,0123456789.eE ()*ab+_", max_size=40),
)

# -- parsing and printing --------------------------------------------------------------


def test_parse_reads_every_kind() -> None:
    """parse() reads scalars, ranges and sets in Mesos text syntax."""
    r = R("cpus:4;mem:8192;disk:1000;ports:[31000-32000,33000-33010];tags:{a,b}")
    assert (r.cpus, r.mem, r.disk, r.gpus) == (4.0, 8192.0, 1000.0, 0.0)
    assert r.ranges("ports") == ((31000, 32000), (33000, 33010))
    assert r.set_items("tags") == frozenset({"a", "b"})
    assert r.names() == frozenset({"cpus", "mem", "disk", "ports", "tags"})


def test_parse_tolerates_whitespace_and_empty_tokens() -> None:
    """Whitespace around tokens and empty ';' tokens are ignored."""
    r = R("  cpus : 2 ;; mem:  512 ; ports : [ 1 - 2 , 5-6 ] ; tags : { a , b } ;")
    assert r == R("cpus:2;mem:512;ports:[1-2,5-6];tags:{a,b}")


def test_parse_adds_repeated_names() -> None:
    """A name given twice is added: scalars summed, ranges and sets unioned."""
    r = R("cpus:1;cpus:0.5;ports:[1-3];ports:[4-9];tags:{a};tags:{b}")
    assert r == R("cpus:1.5;ports:[1-9];tags:{a,b}")


def test_parse_accepts_default_role_only() -> None:
    """'cpus(*)' is the unreserved resource; other roles are rejected."""
    assert R("cpus(*):2;mem( * ):3") == R("cpus:2;mem:3")
    with pytest.raises(ResourcesError, match="reservations are not supported") as err:
        R("cpus(ads):8")
    assert err.value.field == "resources[0].name"
    assert "'ads'" in str(err.value)


def test_empty_values_are_dropped() -> None:
    """Zero scalars, empty ranges and empty sets leave no resource behind."""
    r = R("cpus:0;ports:[];tags:{};mem:1")
    assert r.names() == frozenset({"mem"})
    assert R("") == Resources() and not R("  ;  ") and R("").is_empty()


def test_str_is_canonical() -> None:
    """str() orders cpus, gpus, mem, disk, then others alphabetically, without trailing zeros."""
    r = R("zz:{b,a};disk:10;aa:0.001;mem:0.50;ports:[5-6,1-2,3-4];gpus:1;cpus:4.000")
    assert str(r) == "cpus:4;gpus:1;mem:0.5;disk:10;aa:0.001;ports:[1-6];zz:{a,b}"
    assert list(SCALAR_NAMES_ORDER) == ["cpus", "gpus", "mem", "disk"]
    assert repr(r) == f"Resources.parse({str(r)!r})"
    assert str(Resources()) == ""


def test_scalars_round_half_to_even_at_three_decimals() -> None:
    """Scalars are fixed point with three decimals, rounded half to even."""
    assert R("cpus:0.0015").scalar_milli("cpus") == 2
    assert R("cpus:0.0025").scalar_milli("cpus") == 2
    assert R("cpus:0.0005").is_empty()
    assert Resources.from_dict({"cpus": 0.0025}).scalar_milli("cpus") == 2
    assert R("cpus:1e3;mem:.5").scalars() == {"cpus": 1000.0, "mem": 0.5}


def test_scalar_sums_are_exact() -> None:
    """0.1 + 0.2 == 0.3 exactly and 0.1 added 1000 times is exactly 100."""
    tenth = Resources.from_dict({"cpus": 0.1})
    assert tenth + Resources.from_dict({"cpus": 0.2}) == Resources.from_dict({"cpus": 0.3})
    total = Resources()
    for _ in range(1000):
        total = total + tenth
    assert total.cpus == 100.0 and total.scalar_milli("cpus") == 100_000
    for _ in range(1000):
        total = total - tenth
    assert total.is_empty()


def test_ranges_are_normalized() -> None:
    """Ranges come back sorted with overlapping and adjacent ranges merged."""
    r = Resources.from_dict({"ports": [(10, 20), (1, 3), (4, 5), (15, 30), (40, 40)]})
    assert r.ranges("ports") == ((1, 5), (10, 30), (40, 40))
    assert r.count_range_values("ports") == 5 + 21 + 1
    assert r.ranges("absent") == () and r.count_range_values("absent") == 0
    edge = Resources.from_dict({"p": [(0, 0), (MAX_RANGE_VALUE, MAX_RANGE_VALUE)]})
    assert edge.count_range_values("p") == 2


def test_from_dict_accepts_every_value_form() -> None:
    """from_dict maps numbers, pairs, sets and text values to the right kinds."""
    r = Resources.from_dict(
        {
            "cpus": 2,
            "mem": 256.5,
            "ports": [(31000, 31005)],
            "tags": {"a"},
            "zones": frozenset({"z"}),
            "extra_ports": "[1-2]",
            "labels": "{x,y}",
            "disk": " 7 ",
        }
    )
    assert r == R(
        "cpus:2;mem:256.5;disk:7;ports:[31000-31005];tags:{a};zones:{z};"
        "extra_ports:[1-2];labels:{x,y}"
    )
    assert r.kind("cpus") == "SCALAR" and r.kind("ports") == "RANGES"
    assert r.kind("labels") == "SET" and r.kind("nope") is None


def test_to_json_dict_is_state_style() -> None:
    """to_json_dict always has cpus, mem, disk, gpus and prints ranges/sets as text."""
    assert Resources().to_json_dict() == {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
    r = R("cpus:4;mem:8192;ports:[31000-32000];tags:{b,a};foo:1.5")
    assert r.to_json_dict() == {
        "cpus": 4.0,
        "mem": 8192.0,
        "disk": 0.0,
        "gpus": 0.0,
        "ports": "[31000-32000]",
        "tags": "{a,b}",
        "foo": 1.5,
    }


# -- wire form -------------------------------------------------------------------------


def test_to_wire_matches_mesos_json() -> None:
    """to_wire produces the Mesos JSON resource list in canonical order."""
    assert R("tags:{b,a};ports:[31000-32000];cpus:4").to_wire() == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
        {"name": "tags", "type": "SET", "set": {"item": ["a", "b"]}},
    ]


def test_from_wire_tolerates_role_star_and_allocation_info() -> None:
    """from_wire accepts role '*' and ignores allocation_info, as in Mesos offers."""
    items = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}, "role": "*",
         "allocation_info": {"role": "dev"}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
        {"name": "ports", "type": "RANGES", "ranges": {}},
        {"name": "tags", "type": "SET", "set": {"item": ["a"]}},
    ]  # fmt: skip
    assert Resources.from_wire(items) == R("cpus:4.5;tags:{a}")
    assert Resources.from_wire(()) == Resources()


# -- arithmetic and containment --------------------------------------------------------


def test_add_sums_and_unions() -> None:
    """+ sums scalars and unions ranges and sets."""
    a = R("cpus:1;ports:[1-5];tags:{a}")
    b = R("cpus:2;mem:3;ports:[3-8,20-21];tags:{b}")
    assert a + b == R("cpus:3;mem:3;ports:[1-8,20-21];tags:{a,b}")
    assert a + Resources() == a and Resources() + a == a


def test_add_of_two_kinds_for_one_name_raises() -> None:
    """Adding a name held as a scalar to the same name held as ranges raises."""
    with pytest.raises(ResourcesError, match="RANGES") as err:
        R("foo:1") + R("foo:[1-2]")
    assert err.value.field == "foo"


def test_sub_removes_what_is_there_and_never_raises() -> None:
    """- drops scalars reaching <= 0 and set-differences ranges and sets."""
    a = R("cpus:4;mem:100;ports:[1-10,20-30];tags:{a,b}")
    assert a - R("cpus:1;mem:100") == R("cpus:3;ports:[1-10,20-30];tags:{a,b}")
    assert a - R("cpus:9;ports:[5-25];tags:{b,c};disk:4") == R("mem:100;ports:[1-4,26-30];tags:{a}")
    assert a - R("ports:[0-40];tags:{a,b}") == R("cpus:4;mem:100")
    assert R("foo:1") - R("foo:[1-2]") == R("foo:1")
    assert Resources() - a == Resources() and a - Resources() == a


def test_contains_and_ordering() -> None:
    """contains() requires every scalar to be >= and every range/set item present."""
    agent = R("cpus:4;mem:1024;ports:[31000-32000];tags:{a,b}")
    assert agent.contains(R("cpus:4;mem:1;ports:[31000-31000,31500-31600];tags:{b}"))
    assert not agent.contains(R("cpus:4.001"))
    assert not agent.contains(R("gpus:1"))
    assert not agent.contains(R("ports:[30999-31000]"))
    assert not agent.contains(R("ports:[31500-32001]"))
    assert not agent.contains(R("tags:{c}"))
    assert not R("foo:1").contains(R("foo:[1-1]"))
    assert R("cpus:1") <= agent and agent >= R("cpus:1") and not agent <= R("cpus:1")
    assert Resources() <= Resources() and agent.contains(Resources())


def test_take_ranges_picks_the_lowest_values() -> None:
    """take_ranges returns the lowest count values, or None when there are too few."""
    r = R("ports:[10-11,20-25];cpus:1")
    assert r.take_ranges("ports", 3) == R("ports:[10-11,20-20]")
    assert r.take_ranges("ports", 8) == R("ports:[10-11,20-25]")
    assert r.take_ranges("ports", 9) is None
    assert r.take_ranges("cpus", 1) is None and r.take_ranges("absent", 1) is None
    assert r.take_ranges("ports", 0) == Resources()
    with pytest.raises(ResourcesError) as err:
        r.take_ranges("ports", -1)
    assert err.value.field == "count" and "-1" in str(err.value)


def test_filters_and_accessors() -> None:
    """only/without filter by name; accessors return 0 or empty for absent names."""
    r = R("cpus:1;mem:2;ports:[1-2];tags:{a}")
    assert r.only("cpus", "ports", "nope") == R("cpus:1;ports:[1-2]")
    assert r.without("cpus", "ports") == R("mem:2;tags:{a}")
    assert r.scalars() == {"cpus": 1.0, "mem": 2.0}
    assert r.scalar("ports") == 0.0 and r.scalar_milli("nope") == 0
    assert r.set_items("ports") == frozenset() and r.ranges("tags") == ()


def test_value_semantics() -> None:
    """Resources are immutable, hashable by value and survive pickle and copy."""
    a = R("cpus:1;ports:[1-2];tags:{a}")
    b = Resources.from_dict({"tags": {"a"}, "ports": [(1, 2)], "cpus": 1})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != R("cpus:1") and a != "cpus:1;ports:[1-2];tags:{a}"
    with pytest.raises(AttributeError):
        a._d = {}  # type: ignore[misc]
    with pytest.raises(AttributeError):
        a.cpus = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a._d
    for op in (operator.add, operator.sub, operator.le, operator.ge):
        with pytest.raises(TypeError):
            op(a, {"cpus": 1})
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a) == a  # noqa: S301 - our own
    assert bool(a) and not Resources()


# -- errors ----------------------------------------------------------------------------

Call = Callable[[Any], Resources]
parse, from_dict, from_wire = Resources.parse, Resources.from_dict, Resources.from_wire


def _wire(**item: Any) -> list[dict[str, Any]]:
    """One wire item: a valid scalar 'cpus' overridden by ``item`` (None drops a key)."""
    base: dict[str, Any] = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}
    base.update(item)
    return [{k: v for k, v in base.items() if v is not None}]


def _nested(depth: int) -> list[Any]:
    """A list nested ``depth`` deep, too deep for repr()."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _ports(*ranges: Any) -> list[dict[str, Any]]:
    """A wire ports item with the given raw range entries."""
    return _wire(name="ports", type="RANGES", scalar=None, ranges={"range": list(ranges)})


ERROR_CASES: list[tuple[Call, Any, str, str]] = [
    (parse, 42, "resources", "42"),
    (parse, "cpus:-1", "cpus", "'-1'"),
    (parse, "cpus:nan", "cpus", "'nan'"),
    (parse, "cpus:inf", "cpus", "'inf'"),
    (parse, "cpus:abc", "cpus", "'abc'"),
    (parse, "cpus:", "cpus", "''"),
    (parse, "cpus:1e13", "cpus", "'1e13'"),
    (parse, "cpus:1e99999999999999999999", "cpus", "1e99999999999999999999"),
    (parse, ":4", "resources[0].name", "''"),
    (parse, "cp us:4", "resources[0].name", "'cp us'"),
    (parse, "cpu$:4", "resources[0].name", "'cpu$'"),
    (parse, "cpus(ads):8", "resources[0].name", "'ads'"),
    (parse, "(*):8", "resources[0].name", "''"),
    (parse, "cpus(a(b)):8", "resources[0].name", "'cpus(a(b))'"),
    (parse, "cpus:4;mem", "resources[1]", "'mem'"),
    (parse, "ports:[5-3]", "ports", "'5-3'"),
    (parse, f"ports:[0-{MAX_RANGE_VALUE + 1}]", "ports", str(MAX_RANGE_VALUE + 1)),
    (parse, "ports:[1-2", "ports", "'[1-2'"),
    (parse, "ports:[", "ports", "'['"),
    (parse, "ports:1-2]", "ports", "'1-2]'"),
    (parse, "ports:[1-2,]", "ports", "''"),
    (parse, "ports:[a-b]", "ports", "'a-b'"),
    (parse, "ports:[-1-2]", "ports", "'-1-2'"),
    (parse, "ports:[[1-2]]", "ports", "'[1-2]'"),
    (parse, "tags:{a,b", "tags", "'{a,b'"),
    (parse, "tags:{a,,b}", "tags", "''"),
    (parse, "tags:{a;b}", "tags", "'{a'"),
    (parse, "cpus:[1-2]", "cpus", "'RANGES'"),
    (parse, "mem:{a}", "mem", "'SET'"),
    (parse, "foo:1;foo:[1-2]", "foo", "'RANGES'"),
    (from_dict, [("cpus", 1)], "resources", "[('cpus', 1)]"),
    (from_dict, {"cpus": -1}, "cpus", "-1"),
    (from_dict, {"cpus": -0.5}, "cpus", "-0.5"),
    (from_dict, {"cpus": math.nan}, "cpus", "nan"),
    (from_dict, {"cpus": math.inf}, "cpus", "inf"),
    (from_dict, {"cpus": MAX_SCALAR + 1}, "cpus", str(MAX_SCALAR + 1)),
    (from_dict, {"cpus": True}, "cpus", "True"),
    (from_dict, {"cpus": None}, "cpus", "None"),
    (from_dict, {"cpus": {"a": 1}}, "cpus", "{'a': 1}"),
    (from_dict, {"": 1}, "resources", "''"),
    (from_dict, {7: 1}, "resources", "7"),
    (from_dict, {"cpus(r)": 1}, "resources", "'r'"),
    (from_dict, {"ports": [(5, 3)]}, "ports", "'5-3'"),
    (from_dict, {"ports": [(1,)]}, "ports", "(1,)"),
    (from_dict, {"ports": [(-1, 3)]}, "ports", "-1"),
    (from_dict, {"ports": [(1, 2.5)]}, "ports", "2.5"),
    (from_dict, {"ports": b"12"}, "ports", "b'12'"),
    (from_dict, {"ports": "[1-"}, "ports", "'[1-'"),
    (from_dict, {"tags": {1}}, "tags", "1"),
    (from_dict, {"tags": {"a b"}}, "tags", "'a b'"),
    (from_dict, {"gpus": [(1, 2)]}, "gpus", "'RANGES'"),
    (from_wire, {"name": "cpus"}, "resources", "{'name': 'cpus'}"),
    (from_wire, "cpus:1", "resources", "'cpus:1'"),
    (from_wire, [1], "resources[0]", "1"),
    (from_wire, _wire(name=None), "resources[0].name", "None"),
    (from_wire, _wire(name="c p"), "resources[0].name", "'c p'"),
    (from_wire, _wire(name="cpus(*)"), "resources[0].name", "'cpus(*)'"),
    (from_wire, _wire(type="TEXT"), "resources[0].type", "'TEXT'"),
    (from_wire, _wire(type=None), "resources[0].type", "None"),
    (from_wire, _wire(type=["SCALAR"]), "resources[0].type", "['SCALAR']"),
    (from_wire, _wire(role="dev"), "resources[0].role", "'dev'"),
    (from_wire, _wire(allocation_info="dev"), "resources[0].allocation_info", "'dev'"),
    (from_wire, _wire(reservations=[]), "resources[0].reservations", "'reservations'"),
    (from_wire, _wire(scalar=None), "resources[0].scalar", "None"),
    (from_wire, _wire(scalar=4), "resources[0].scalar", "4"),
    (from_wire, _wire(scalar={}), "resources[0].scalar.value", "None"),
    (from_wire, _wire(scalar={"value": "4"}), "resources[0].scalar.value", "'4'"),
    (from_wire, _wire(scalar={"value": -1.0}), "resources[0].scalar.value", "-1.0"),
    (from_wire, _wire(scalar={"value": True}), "resources[0].scalar.value", "True"),
    (from_wire, _wire(scalar={"value": 1, "x": 2}), "resources[0].scalar", "'x'"),
    (from_wire, _wire(scalar={"value": 10**5000}), "resources[0].scalar.value", "<int>"),
    (from_wire, [_nested(100_000)], "resources[0]", "<list>"),
    (from_wire, _wire(set={"item": []}), "resources[0].set", "{'item': []}"),
    (from_wire, _wire(name="gpus", type="SET", scalar=None, set={}), "resources[0].type", "SET"),
    (from_wire, _ports({"begin": 5, "end": 3}), "resources[0].ranges.range[0]", "'5-3'"),
    (from_wire, _ports({"end": 3}), "resources[0].ranges.range[0].begin", "None"),
    (from_wire, _ports({"begin": 1, "end": 2**64}), "resources[0].ranges.range[0].end", str(2**64)),
    (from_wire, _ports({"begin": 1, "end": 2, "x": 0}), "resources[0].ranges.range[0]", "'x'"),
    (from_wire, _ports([1, 2]), "resources[0].ranges.range[0]", "[1, 2]"),
    (
        from_wire,
        _wire(name="ports", type="RANGES", scalar=None, ranges={"range": "1-2"}),
        "resources[0].ranges.range",
        "'1-2'",
    ),
    (
        from_wire,
        _wire(name="tags", type="SET", scalar=None, set={"item": ["a", 3]}),
        "resources[0].set.item[1]",
        "3",
    ),
    (
        from_wire,
        _wire(name="foo") + _wire(name="foo", type="SET", scalar=None, set={"item": ["a"]}),
        "resources[1].type",
        "'SET'",
    ),
]


@pytest.mark.parametrize(("call", "arg", "field", "shown"), ERROR_CASES)
def test_invalid_input_names_field_and_value(call: Call, arg: Any, field: str, shown: str) -> None:
    """Each invalid input raises ResourcesError naming the field and the offending value."""
    with pytest.raises(ResourcesError) as err:
        call(arg)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    assert shown in str(err.value)
    assert isinstance(err.value, ValueError)


# -- properties ------------------------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None)


@PROPERTY
@given(resources())
def test_text_round_trip(r: Resources) -> None:
    """parse(str(r)) == r for any Resources."""
    assert Resources.parse(str(r)) == r
    assert hash(Resources.parse(str(r))) == hash(r)


@PROPERTY
@given(resources())
def test_wire_round_trip(r: Resources) -> None:
    """from_wire(to_wire(r)) == r, also through JSON text."""
    assert Resources.from_wire(r.to_wire()) == r
    assert Resources.from_wire(json.loads(json.dumps(r.to_wire()))) == r
    assert r.to_wire() == r.to_wire()


@PROPERTY
@given(resources(), resources())
def test_add_then_sub_restores(a: Resources, b0: Resources) -> None:
    """(a + b) - b == a when b's ranges and sets are disjoint from a's (scalars always)."""
    b = b0 - a.without(*a.scalars())
    assert (a + b) - b == a
    assert a + b == b + a


@PROPERTY
@given(resources(), resources())
def test_containment_laws(a: Resources, b: Resources) -> None:
    """a <= a + b, a - b <= a, and a - b + b == a whenever a contains b."""
    assert a <= a + b and a + b >= b
    assert a - b <= a
    assert Resources.parse(str(a)) <= a and a.contains(a)
    if a.contains(b):
        assert (a - b) + b == a
    assert (a - a).is_empty()


small_ranges = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=5,
)


def _values(pairs: list[tuple[int, int]]) -> set[int]:
    """The integers covered by ``pairs`` (a brute-force model of ranges)."""
    return {v for begin, end in pairs for v in range(begin, end + 1)}


@PROPERTY
@given(small_ranges, small_ranges)
def test_ranges_match_a_set_of_integers_model(x: list[Any], y: list[Any]) -> None:
    """Range union, difference and containment agree with plain integer sets."""
    a, b = Resources.from_dict({"p": x}), Resources.from_dict({"p": y})
    assert _values(list((a + b).ranges("p"))) == _values(x) | _values(y)
    assert _values(list((a - b).ranges("p"))) == _values(x) - _values(y)
    assert a.contains(b) == (_values(y) <= _values(x))
    assert a.count_range_values("p") == len(_values(x))


@PROPERTY
@given(resources(), st.sampled_from(RANGE_NAMES), st.integers(0, 300))
def test_take_ranges_takes_exactly_count(r: Resources, name: str, count: int) -> None:
    """take_ranges yields exactly count values contained in r, or None when r has fewer."""
    taken = r.take_ranges(name, count)
    if count > r.count_range_values(name):
        assert taken is None
    else:
        assert taken is not None and taken <= r
        assert taken.count_range_values(name) == count


@settings(max_examples=200, deadline=None)
@given(text_garbage)
def test_parse_garbage_raises_only_resources_error(text: str) -> None:
    """parse() on arbitrary text either succeeds or raises ResourcesError."""
    try:
        r = Resources.parse(text)
    except ResourcesError as err:
        assert err.field
    else:
        assert Resources.parse(str(r)) == r


@settings(max_examples=120, deadline=None)
@given(st.one_of(json_values, mutated_wire()))
def test_from_wire_garbage_raises_only_resources_error(value: Any) -> None:
    """from_wire() on arbitrary JSON-like objects either succeeds or raises ResourcesError."""
    try:
        r = Resources.from_wire(value)
    except ResourcesError as err:
        assert err.field.startswith("resources")
    else:
        assert Resources.from_wire(r.to_wire()) == r


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.one_of(st.sampled_from(SCALAR_NAMES), st.text()), json_values, max_size=3)
)
def test_from_dict_garbage_raises_only_resources_error(value: dict[Any, Any]) -> None:
    """from_dict() on arbitrary mappings either succeeds or raises ResourcesError."""
    try:
        Resources.from_dict(value)
    except ResourcesError as err:
        assert err.field
