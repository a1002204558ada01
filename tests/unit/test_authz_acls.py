"""Mesos-style ACLs: parsing, validation errors naming the JSON path, and decisions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesoslite.authz import AclError, Acls, Entity, Rule, endpoint_path, parse_acls
from mesoslite.authz.acls import acls_for, check_acls_flag
from mesoslite.authz.files import resolve_acls
from mesoslite.config_checks import ConfigError


def _acls(document: dict[str, object]) -> Acls:
    return parse_acls(json.dumps(document))


def _values(*names: str) -> dict[str, list[str]]:
    return {"values": list(names)}


ANY = {"type": "ANY"}
NONE = {"type": "NONE"}


def test_empty_text_is_the_permissive_default() -> None:
    """No ACLs: everything is allowed and nothing is restricted."""
    acls = parse_acls("")
    assert acls.empty
    assert acls.authorized("run_tasks", None, "root")
    assert not acls.restricts("run_tasks")


def test_first_matching_rule_decides() -> None:
    """Rules are tried in order; the first that matches both entities decides."""
    acls = _acls({"register_frameworks": [
        {"principals": _values("a"), "roles": _values("web")},
        {"principals": _values("a"), "roles": NONE},
    ]})
    assert acls.authorized("register_frameworks", "a", "web")
    assert not acls.authorized("register_frameworks", "a", "ops")
    assert acls.authorized("register_frameworks", "b", "ops")  # no rule matches: permissive


def test_none_subject_matches_everyone_and_denies() -> None:
    """``principals: NONE`` with a value object: nobody may act on that value."""
    acls = _acls({"run_tasks": [{"principals": NONE, "users": _values("root")}]})
    assert not acls.authorized("run_tasks", "a", "root")
    assert not acls.authorized("run_tasks", None, "root")
    assert acls.authorized("run_tasks", "a", "nobody")


def test_unauthenticated_principal_matches_only_any_or_none() -> None:
    """A request without a principal matches no ``values`` subject; ANY lets it in."""
    named = _acls({"permissive": False,
                   "teardown_frameworks": [{"principals": _values("ops"),
                                            "framework_principals": ANY}]})
    assert named.authorized("teardown_frameworks", "ops", "fw")
    assert not named.authorized("teardown_frameworks", None, "fw")
    anyone = _acls({"permissive": False,
                    "teardown_frameworks": [{"principals": ANY,
                                             "framework_principals": ANY}]})
    assert anyone.authorized("teardown_frameworks", None, "fw")


def test_not_permissive_denies_what_no_rule_matches() -> None:
    """``permissive: false``: a request no rule matches is refused."""
    acls = _acls({"permissive": False,
                  "run_tasks": [{"principals": ANY, "users": _values("guest")}]})
    assert acls.authorized("run_tasks", "x", "guest")
    assert not acls.authorized("run_tasks", "x", "root")
    assert not acls.authorized("view_frameworks", "x", "guest")


def test_nested_role_wildcard() -> None:
    """``eng/%`` stands for every role nested under eng, not eng itself."""
    acls = _acls({"permissive": False, "register_frameworks": [
        {"principals": _values("a"), "roles": _values("eng/%")}]})
    assert acls.authorized("register_frameworks", "a", "eng/web")
    assert acls.authorized("register_frameworks", "a", "eng/web/x")
    assert not acls.authorized("register_frameworks", "a", "eng")
    assert not acls.authorized("register_frameworks", "a", "engineering/x")


def test_endpoints_are_normalised_and_guarded() -> None:
    """get_endpoints guards the default paths and those named, under any prefix."""
    acls = _acls({"get_endpoints": [
        {"principals": _values("ops"), "paths": _values("/flags", "/master/state")},
        {"principals": ANY, "paths": _values("/flags", "/state", "/metrics/snapshot")},
    ]})
    # the second rule allows everyone: these are allowed but guarded
    assert acls.guards_endpoint("/master/flags/")
    assert acls.guards_endpoint("/state")
    assert not acls.guards_endpoint("/frameworks")
    deny = _acls({"get_endpoints": [
        {"principals": _values("ops"), "paths": _values("/flags", "/metrics/snapshot")},
        {"principals": NONE, "paths": _values("/flags", "/metrics/snapshot")},
    ]})
    assert deny.endpoint_authorized("/flags", "ops")
    for path in ("/flags", "/master/flags", "/flags/", "/metrics", "/master/metrics/snapshot"):
        assert not deny.endpoint_authorized(path, "bob"), path
        assert not deny.endpoint_authorized(path, None), path
    assert deny.endpoint_authorized("/state", "bob")
    assert endpoint_path("/slave(1)/monitor/statistics?x=1") == "/monitor/statistics"


@pytest.mark.parametrize(("document", "path"), [
    ([], ""),
    ({"permissive": "yes"}, "permissive"),
    ({"run_task": []}, "run_task"),
    ({"reserve_resources": []}, "reserve_resources"),
    ({"run_tasks": {}}, "run_tasks"),
    ({"run_tasks": [{"principals": ANY}]}, "run_tasks[0].users"),
    ({"run_tasks": [{"principals": ANY, "users": ANY, "roles": ANY}]}, "run_tasks[0].roles"),
    ({"run_tasks": [{"principals": {"type": "SOME"}, "users": ANY}]},
     "run_tasks[0].principals.type"),
    ({"run_tasks": [{"principals": {"values": []}, "users": ANY}]},
     "run_tasks[0].principals.values"),
    ({"run_tasks": [{"principals": ANY, "users": {"values": ["a", 3]}}]},
     "run_tasks[0].users.values[1]"),
    ({"run_tasks": [{"principals": ANY, "users": {"values": ["a"], "type": "ANY"}}]},
     "run_tasks[0].users"),
    ({"get_endpoints": [{"principals": ANY, "paths": {"values": ["flags"]}}]},
     "get_endpoints[0].paths.values[0]"),
])
def test_bad_documents_name_the_json_path(document: object, path: str) -> None:
    """Every malformed document is refused with the JSON path at fault."""
    with pytest.raises(AclError) as caught:
        parse_acls(json.dumps(document))
    assert caught.value.path == path


def test_not_json_is_refused() -> None:
    """Text that is not JSON is refused, saying so."""
    with pytest.raises(AclError, match="not JSON"):
        parse_acls("{permissive: true")


def test_config_check_and_file_resolution(tmp_path: object) -> None:
    """Inline JSON is checked by the config; a file is read and checked at start."""
    import pathlib

    base = pathlib.Path(str(tmp_path))
    good = base / "acls.json"
    good.write_text(json.dumps({"run_tasks": [{"principals": ANY, "users": ANY}]}))
    assert resolve_acls(str(good)).startswith("{")
    assert resolve_acls(f"file://{good}") == good.read_text()
    bad = base / "bad.json"
    bad.write_text(json.dumps({"run_tasks": [{"principals": ANY, "users": {"type": "ALL"}}]}))
    with pytest.raises(ConfigError, match=r"run_tasks\[0\]\.users\.type") as caught:
        resolve_acls(str(bad))
    assert caught.value.field == "acls"
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_acls(str(base / "missing.json"))
    with pytest.raises(ConfigError, match="permissive"):
        check_acls_flag('{"permissive": 1}')
    with pytest.raises(ConfigError, match="read by the process"):
        acls_for(str(good))


# ------------------------------------------------------------------ properties

_names = st.sampled_from(["a", "b", "c"])
_entities = st.one_of(
    st.just(Entity("ANY")), st.just(Entity("NONE")),
    st.frozensets(_names, min_size=1).map(lambda values: Entity("SOME", values)),
)
_rules = st.lists(st.builds(Rule, _entities, _entities), max_size=6)


@given(_rules, st.booleans(), st.one_of(st.none(), _names), _names)
def test_first_match_semantics(rules: list[Rule], permissive: bool,
                               principal: str | None, value: str) -> None:
    """The decision is the first matching rule's (NONE denies), else ``permissive``."""
    acls = Acls(permissive, {"run_tasks": tuple(rules)})
    expected = permissive
    for rule in rules:
        subject_hit = rule.subjects.kind != "SOME" or (
            principal is not None and principal in rule.subjects.values)
        object_hit = rule.objects.kind != "SOME" or value in rule.objects.values
        if subject_hit and object_hit:
            expected = "NONE" not in (rule.subjects.kind, rule.objects.kind)
            break
    assert acls.authorized("run_tasks", principal, value) is expected


@given(_rules, st.one_of(st.none(), _names), _names)
def test_rules_after_a_catch_all_never_matter(rules: list[Rule], principal: str | None,
                                              value: str) -> None:
    """Anything after an ANY/ANY rule is dead: the decision ignores it."""
    catch_all = Rule(Entity("ANY"), Entity("ANY"))
    with_tail = Acls(False, {"run_tasks": (catch_all, *rules)})
    assert with_tail.authorized("run_tasks", principal, value)
    denied = Acls(True, {"run_tasks": (Rule(Entity("NONE"), Entity("ANY")), *rules)})
    assert not denied.authorized("run_tasks", principal, value)


def test_the_shipped_example_is_valid() -> None:
    """docs/acls.example.json parses and says what its rules mean."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    acls = parse_acls(resolve_acls(str(root / "docs" / "acls.example.json")))
    assert not acls.authorized("run_tasks", "marathon", "root")
    assert acls.authorized("run_tasks", "marathon", "nobody")
    assert not acls.authorized("register_frameworks", "anyone", "ops/batch")
    assert not acls.endpoint_authorized("/flags", None)
