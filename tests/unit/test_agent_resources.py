"""Unit tests for agent resource detection rules, merging and configuration."""

from __future__ import annotations

import pytest

from mesoslite.agent.config import AgentConfig, parse_attributes
from mesoslite.agent.resources_detect import default_resources, merge_resources
from mesoslite.resources import Resources

GB = 1024**3


def test_default_resources_subtract_mesos_reserves() -> None:
    """Memory minus 1 GB, disk minus 5 GB, ports 31000-32000, cpus from the count."""
    r = default_resources(8, 16 * GB, 100 * GB)
    assert r == Resources.parse("cpus:8;mem:15360;disk:97280;ports:[31000-32000]")


def test_small_machines_keep_half() -> None:
    """Below twice the reserve, half of memory and disk is offered."""
    r = default_resources(1, GB, 6 * GB)
    assert r.mem == 512.0
    assert r.disk == 3072.0


def test_tiny_values_are_floored() -> None:
    """A machine reporting almost nothing still offers a sensible minimum."""
    r = default_resources(0, 0, 0)
    assert r.cpus == 1.0 and r.mem == 32.0 and r.disk == 32.0


def test_override_replaces_detected_names_only() -> None:
    """Names given by the operator replace detected ones; new names are added."""
    detected = default_resources(8, 16 * GB, 100 * GB)
    merged = merge_resources(detected, Resources.parse("cpus:2;ports:[5000-5001];gpus:1"))
    assert merged.cpus == 2.0
    assert merged.gpus == 1.0
    assert merged.mem == 15360.0
    assert merged.ranges("ports") == ((5000, 5001),)
    assert merge_resources(detected, Resources()) == detected


def test_attributes_parse_and_reject_garbage() -> None:
    """'rack:a;zone:b' becomes a dict; an item without a value names the field."""
    assert parse_attributes("rack:a; zone:b;") == {"rack": "a", "zone": "b"}
    with pytest.raises(ValueError, match="attributes"):
        parse_attributes("rack")


def test_config_validation_names_the_field() -> None:
    """AgentConfig rejects bad values with the field name in the message."""
    for kwargs, field in [
        ({"http_port": 70000}, "http_port"),
        ({"resources": "cpus:abc"}, "resources"),
        ({"attributes": "rack"}, "attributes"),
        ({"status_update_retry_min": 10, "status_update_retry_max": 5},
         "status_update_retry_max"),
        ({"master": "nohostport"}, "master"),
        ({"recover": "maybe"}, "recover"),
        ({"containerizers": "lxc"}, "containerizers"),
        ({"executor_registration_timeout": 0}, "executor_registration_timeout"),
        ({"curve_secret_file": "/x"}, "curve_secret_file"),
        ({"work_dir": ""}, "work_dir"),
    ]:
        with pytest.raises(ValueError, match=field):
            AgentConfig(**kwargs)


def test_config_defaults_follow_mesos() -> None:
    """Defaults match the Mesos agent flags."""
    config = AgentConfig()
    assert config.executor_registration_timeout == 60.0
    assert config.executor_shutdown_grace_period == 5.0
    assert config.status_update_retry_min == 10.0
    assert config.status_update_retry_max == 600.0
    assert config.registration_backoff_factor == 1.0
    assert config.default_kill_grace_period == 3.0
    assert config.effective_hostname == "127.0.0.1"
    assert AgentConfig(hostname="node1").effective_hostname == "node1"
    assert AgentConfig(attributes="rack:a").attributes_dict == {"rack": "a"}
    assert config.to_flags()["http_port"] == "5051"
