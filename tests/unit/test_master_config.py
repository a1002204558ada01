"""MasterConfig: Mesos defaults, validation naming the field, weights parsing."""

from __future__ import annotations

import argparse

import pytest

from mesoslite.master import ConfigError, MasterConfig, parse_weights
from mesoslite.protocol import MAX_MESSAGE_SIZE
from mesoslite.resources import Resources


def test_defaults_are_mesos_defaults() -> None:
    """Ports, intervals and limits default to the documented values."""
    config = MasterConfig()
    assert (config.ip, config.http_port, config.zmq_port) == ("127.0.0.1", 5050, 5055)
    assert config.advertised_hostname == "127.0.0.1"
    assert config.allocation_interval == 1.0
    assert config.offer_timeout is None
    assert (config.agent_ping_timeout, config.max_agent_ping_timeouts) == (15.0, 5)
    assert (config.framework_heartbeat_interval, config.max_framework_missed_heartbeats) == (
        15.0, 5)
    assert config.min_allocatable == (Resources.parse("cpus:0.01"), Resources.parse("mem:32"))
    assert config.weights == {}
    assert (config.max_completed_frameworks, config.max_completed_tasks_per_framework) == (
        50, 1000)
    assert config.max_message_size == MAX_MESSAGE_SIZE


def test_hostname_overrides_ip_for_advertising() -> None:
    """A hostname, when given, is what peers are told."""
    assert MasterConfig(hostname="master.example").advertised_hostname == "master.example"


def test_parse_weights() -> None:
    """'role=2,other=1.5' parses; bad items raise ConfigError naming weights."""
    assert parse_weights("web=2, batch=1.5,") == {"web": 2.0, "batch": 1.5}
    assert parse_weights("") == {}
    for bad in ("web", "web=x", "web=0", "=2", "a b=1", "web=inf"):
        with pytest.raises(ConfigError) as info:
            parse_weights(bad)
        assert info.value.field == "weights"
    assert MasterConfig(weights="eng/prod=3").weights == {"eng/prod": 3.0}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("http_port", -1),
        ("zmq_port", 70000),
        ("allocation_interval", 0),
        ("offer_timeout", -5.0),
        ("agent_ping_timeout", float("nan")),
        ("max_agent_ping_timeouts", 0),
        ("max_framework_missed_heartbeats", 1.5),
        ("min_allocatable_resources", "cpus:x"),
        ("weights", {"web": -1.0}),
        ("max_completed_frameworks", -1),
        ("max_message_size", 0),
        ("ip", ""),
        ("curve_secret_key", "/keys/master.key_secret"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    """Each invalid value raises ValueError whose field (and text) name the field."""
    with pytest.raises(ValueError) as info:
        MasterConfig(**{field: value})  # type: ignore[arg-type]
    assert str(info.value).startswith(getattr(info.value, "field", "?") + ":")
    assert field in str(info.value)


def test_cli_builds_the_config_from_flags() -> None:
    """The CLI's generated flags build a MasterConfig, weights text included."""
    from mesoslite.cli import add_config_flags, build_config

    parser = argparse.ArgumentParser()
    add_config_flags(parser, MasterConfig)
    args = parser.parse_args(["--weights", "web=2", "--offer_timeout", "30", "--http-port", "0"])
    config = build_config(MasterConfig, args)
    assert config.weights == {"web": 2.0}
    assert config.offer_timeout == 30.0
    assert config.http_port == 0
