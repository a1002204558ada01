"""One set of config checks: ConfigError's fields, each check, and the three configs using them."""

from __future__ import annotations

import argparse
import math
from typing import Any

import attrs
import pytest

from frameworks.marathon.config import MarathonConfig
from mesoslite import config_checks as checks
from mesoslite.agent.config import AgentConfig
from mesoslite.cli import FlagError, add_config_flags, build_config
from mesoslite.config_checks import NO_VALUE, ConfigError
from mesoslite.master import MasterConfig

CONFIGS = (MasterConfig, AgentConfig, MarathonConfig)
SECONDS = (checks.positive_seconds, checks.non_negative_seconds)


def test_config_error_carries_field_value_and_expected() -> None:
    """The error names the field (and its flag), the value and what was expected."""
    error = ConfigError("http_port", "a port in 0-65535 (0 = any)", 70000, detail="too big")
    assert (error.field, error.value, error.expected, error.detail) == (
        "http_port", 70000, "a port in 0-65535 (0 = any)", "too big")
    assert error.flag == "--http_port"
    assert error.problem == "expected a port in 0-65535 (0 = any), got 70000 (too big)"
    assert str(error) == "http_port: " + error.problem
    assert isinstance(error, ValueError)


def test_config_error_without_a_value_is_its_explanation() -> None:
    """Two arguments: the second is the whole explanation (rules over several fields)."""
    error = ConfigError("zk", "hosts[0]: invalid port")
    assert error.value is NO_VALUE
    assert str(error) == "zk: hosts[0]: invalid port"


@pytest.mark.parametrize(("check", "good", "bad"), [
    (checks.positive_seconds, [0.001, 1, 1e9], [0, -1, math.inf, math.nan, True, "1", None]),
    (checks.non_negative_seconds, [0, 0.5], [-0.1, math.inf, -math.inf, math.nan, False]),
    (checks.positive_number, [2.5], [0, math.inf]),
    (checks.non_negative_number, [0.0], [-1, math.nan]),
    (checks.integer(1), [1, 10**9], [0, 1.0, True, "2"]),
    (checks.integer(0, 10), [0, 10], [-1, 11]),
    (checks.port, [0, 5050, 65535], [-1, 65536, 1.0, "80"]),
    (checks.text, ["", "a b"], [None, 3, "a\x00b"]),
    (checks.nonempty("a directory path"), ["/tmp"], ["", None]),
    (checks.boolean, [True, False], [1, "true", None]),
    (checks.one_of("a", "b"), ["a", "b"], ["c", "", None]),
    (checks.comma_list("process", "docker"), ["process", "docker, process"],
     ["", "lxc", "process,lxc", None]),
    (checks.comma_list("x", allow_empty=True), ["", "x"], ["y"]),
    (checks.absolute_paths, ["", "/a,/b"], ["/a,b", 3]),
    (checks.host, ["127.0.0.1", "node-1.example"], ["", "a b", None]),
    (checks.ip_address, ["127.0.0.1", "::1"], ["localhost", "", None]),
    (checks.host_port, ["h:5055", "[::1]:1"], ["h", "h:0", "h:65536", ":5", "h:x"]),
    (checks.master_address, ["h:5055", "tcp://h:5055", "zk://h:2181/mesoslite"],
     ["h", "tcp://h", "zk://h:2181", "zk://h:2181/", ""]),
    (checks.zk_url, ["", "zk://u:p@h1:2181,h2/m"], ["http://h/m", "zk://h", "zk:///m", 7]),
    (checks.resources_text, ["", "cpus:2;mem:1024;ports:[1-2]"], ["cpus:x", None]),
    (checks.resource_alternatives, ["cpus:0.01|mem:32", ""], ["cpus:0.01|mem:y"]),
    (checks.optional(checks.positive_seconds), [None, 3.0], [0, math.inf]),
])
def test_each_check_accepts_and_refuses(check: checks.Check, good: list[Any],
                                        bad: list[Any]) -> None:
    """A check lets good values through and refuses bad ones with a ConfigError naming all."""
    for value in good:
        check.check("f", value)
    for value in bad:
        with pytest.raises(ConfigError) as caught:
            check.check("f", value)
        assert (caught.value.field, caught.value.expected) == ("f", check.expected)
        assert caught.value.value is value or caught.value.value != caught.value.value  # nan
        assert str(caught.value).startswith(f"f: expected {check.expected}, got ")


def test_a_parse_failure_becomes_the_detail() -> None:
    """A check whose parser fails says why in the error's detail."""
    with pytest.raises(ConfigError) as caught:
        checks.comma_list("process", "docker", what="containerizer").check("c", "docker,lxc")
    assert caught.value.detail == "unknown containerizer 'lxc'"
    with pytest.raises(ConfigError) as caught:
        checks.resources_text.check("resources", "cpus:x")
    assert "cpus" in caught.value.detail


def _duration_fields(config_cls: type) -> list[str]:
    return [f.name for f in attrs.fields(config_cls)
            if f.validator in SECONDS or (isinstance(f.validator, checks.Check)
                                          and f.validator.expected.startswith(
                                              checks.positive_seconds.expected))]


@pytest.mark.parametrize("config_cls", CONFIGS)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -1.0])
def test_every_duration_of_every_config_refuses_non_finite(config_cls: type, bad: float) -> None:
    """inf, -inf, nan and negative seconds are refused by every duration of all three configs."""
    fields = _duration_fields(config_cls)
    assert len(fields) >= 3
    for name in fields:
        with pytest.raises(ConfigError) as caught:
            config_cls(**{name: bad})
        assert caught.value.field == name
        assert caught.value.flag == f"--{name}"
        assert repr(bad) in str(caught.value)


def test_decline_offer_duration_is_refused_when_infinite() -> None:
    """The framework's --decline_offer_duration no longer accepts inf or nan (it drifted)."""
    for bad in (math.inf, math.nan, 0.0):
        with pytest.raises(ConfigError) as caught:
            MarathonConfig(decline_offer_duration=bad)
        assert caught.value.field == "decline_offer_duration"
    assert MarathonConfig().decline_offer_duration == 120.0


@pytest.mark.parametrize(("config_cls", "field", "bad"), [
    (MasterConfig, "max_completed_frameworks", 1.5),
    (AgentConfig, "max_completed_tasks_per_executor", 2.5),
    (AgentConfig, "files_max_read_length", 0),
    (AgentConfig, "ip", ""),
    (AgentConfig, "docker_allowed_parameters", "no-such-option"),
    (AgentConfig, "docker_volume_allowed_paths", "relative/dir"),
    (AgentConfig, "master", "tcp://nohostport"),
    (AgentConfig, "curve_secret_file", "/keys/agent.key_secret"),
    (MarathonConfig, "zk_max_versions", 1.5),
    (MarathonConfig, "max_apps", -1),
    (MarathonConfig, "master", "no-port"),
    (MarathonConfig, "zk", "zk://h:2181"),
    (MarathonConfig, "http_address", "localhost"),
])
def test_fields_that_drifted_are_checked_alike(config_cls: type, field: str, bad: Any) -> None:
    """Counts are integers, addresses have their shape, lists their items, in all configs."""
    with pytest.raises(ConfigError) as caught:
        config_cls(**{field: bad})
    assert field in str(caught.value)
    assert caught.value.value == bad or caught.value.field != field


def test_defaults_are_kept() -> None:
    """The shared checks accept every default of the three configs."""
    for config_cls in CONFIGS:
        config = config_cls()
        for field in attrs.fields(config_cls):
            if isinstance(field.validator, checks.Check):
                field.validator.check(field.name, getattr(config, field.name))


@pytest.mark.parametrize(("config_cls", "flag"), [
    (MasterConfig, "--allocation_interval"),
    (AgentConfig, "--executor_registration_timeout"),
    (MarathonConfig, "--decline_offer_duration"),
])
def test_build_config_names_the_flag_value_and_expectation(config_cls: type, flag: str) -> None:
    """build_config turns a refused flag into a FlagError carrying flag, value and expected."""
    parser = argparse.ArgumentParser()
    add_config_flags(parser, config_cls)
    with pytest.raises(FlagError) as caught:
        build_config(config_cls, parser.parse_args([f"{flag}=inf"]))
    assert caught.value.flag == flag
    assert caught.value.value == math.inf
    assert caught.value.expected == checks.positive_seconds.expected
    assert caught.value.problem == f"expected {checks.positive_seconds.expected}, got inf"


def test_build_config_reports_unparsable_text_and_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Text that is no number, or a bad value from MESOSLITE_<FIELD>, names the flag."""
    parser = argparse.ArgumentParser()
    add_config_flags(parser, AgentConfig)
    with pytest.raises(FlagError) as caught:
        build_config(AgentConfig, parser.parse_args(["--http-port", "eighty"]))
    assert (caught.value.flag, caught.value.value, caught.value.expected) == (
        "--http_port", "eighty", "an integer")
    monkeypatch.setenv("MESOSLITE_RECOVER", "maybe")
    with pytest.raises(FlagError) as caught:
        build_config(AgentConfig, parser.parse_args([]))
    assert caught.value.flag == "--recover"
    assert caught.value.problem == "expected one of reconnect, cleanup, got 'maybe'"


def test_flag_error_for_a_cli_only_flag() -> None:
    """FlagError also serves flags that are no config field, with a whole explanation."""
    error = FlagError("--agents", "expected at least 1 agent, got 0")
    assert (error.flag, error.field, error.problem) == (
        "--agents", "agents", "expected at least 1 agent, got 0")
    assert isinstance(error, ConfigError)


def test_errors_never_show_a_url_password() -> None:
    """A refused ZooKeeper URL is shown with its password masked."""
    with pytest.raises(ConfigError) as caught:
        MasterConfig(zk="zk://user:hunter2@h1:2181")
    assert "hunter2" not in str(caught.value)
    assert "user:***@" in str(caught.value)
