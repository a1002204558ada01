"""Rendering for /state (with per-record caches) and the metrics documents."""

from __future__ import annotations

import json
import re

from mesoslite.master import metrics, render
from mesoslite.protocol import TaskState
from mesoslite.testing.harness import Harness

_SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]* -?[0-9.e+\-]+(inf)?$")


def _cluster() -> tuple[Harness, str, str]:
    h = Harness()
    agent_id = h.add_agent(b"a1", hostname="host-1")
    framework_id = h.subscribe(b"f1", roles=("web",), capabilities=("PARTITION_AWARE",))
    h.launch(b"f1", framework_id, "t1")
    h.update(b"a1", framework_id, "t1", TaskState.TASK_RUNNING)
    return h, agent_id, framework_id


def test_agent_json_is_mesos_shaped_and_cached_by_version() -> None:
    """An agent renders with Mesos field names; the text is reused until it changes."""
    h, agent_id, _framework_id = _cluster()
    agent = h.state.agents[agent_id]
    first = render.agent_json(agent)
    doc = json.loads(first)
    assert doc["id"] == agent_id
    assert doc["pid"] == "slave(1)@host-1:5051"
    assert doc["resources"]["cpus"] == 4.0
    assert doc["used_resources"]["cpus"] == 1.0
    assert doc["resources"]["ports"] == "[31000-31009]"
    assert doc["active"] is True
    assert render.agent_json(agent) is first
    h.clock.advance(5.0)
    h.allocate()  # offers the rest: the agent changes
    second = render.agent_json(agent)
    assert second is not first
    assert json.loads(second)["offered_resources"]["cpus"] == 3.0


def test_task_json_has_statuses_and_mesos_ids() -> None:
    """A task shows id, slave_id, framework_id, state, resources, statuses, labels."""
    h, agent_id, framework_id = _cluster()
    entry = h.state.frameworks[framework_id].tasks["t1"]
    doc = json.loads(render.task_json(entry))
    assert (doc["id"], doc["slave_id"], doc["framework_id"]) == ("t1", agent_id, framework_id)
    assert doc["state"] == "TASK_RUNNING"
    assert doc["role"] == "web"
    assert doc["resources"]["mem"] == 128.0
    assert [s["state"] for s in doc["statuses"]] == ["TASK_RUNNING"]
    assert doc["labels"] == []


def test_splice_embeds_prerendered_arrays() -> None:
    """splice() produces valid JSON with the arrays after the base fields."""
    text = render.splice({"a": 1}, {"xs": ['{"b":2}', "3"], "empty": []})
    assert json.loads(text) == {"a": 1, "xs": [{"b": 2}, 3], "empty": []}
    assert json.loads(render.splice({}, {"xs": []})) == {"xs": []}


def test_snapshot_counts_tasks_agents_and_resources() -> None:
    """The snapshot has Mesos names and values matching the state."""
    h, _agent_id, _framework_id = _cluster()
    snap = metrics.snapshot(
        h.state, elected=True, uptime=3.0, messages_received=10,
        messages_by_type={"RegisterAgent": 1, "StatusUpdate": 2}, decode_errors=2,
        transport_dropped=0, allocation_runs=4, allocation_run_ms=1.5,
        event_queue_dispatches=0,
    )
    assert snap["master/elected"] == 1.0
    assert snap["master/tasks_running"] == 1
    assert snap["master/tasks_staging"] == 0
    assert snap["master/slaves_active"] == 1
    assert snap["master/frameworks_connected"] == 1
    assert snap["master/messages_register_agent"] == 1
    assert snap["master/messages_status_update"] == 2
    assert snap["master/invalid_messages"] == 2
    assert snap["master/cpus_total"] == 4.0
    assert snap["master/cpus_used"] == 1.0
    assert snap["master/cpus_percent"] == 0.25
    assert snap["allocator/mesos/allocation_runs"] == 4


def test_prometheus_text_is_well_formed() -> None:
    """Every metric has HELP and TYPE lines and a sanitised mesoslite_ name."""
    text = metrics.prometheus_text({"master/tasks_running": 2, "allocator/mesos/allocation_runs": 7,
                                    "master/cpus_percent": 0.5})
    lines = text.splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert samples == [
        "mesoslite_allocator_mesos_allocation_runs 7",
        "mesoslite_master_cpus_percent 0.5",
        "mesoslite_master_tasks_running 2",
    ]
    assert all(_SAMPLE.match(line) for line in samples)
    assert "# TYPE mesoslite_allocator_mesos_allocation_runs counter" in lines
    assert "# TYPE mesoslite_master_tasks_running gauge" in lines
