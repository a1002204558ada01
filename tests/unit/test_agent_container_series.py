"""The agent's per-container Prometheus series and their label cache (ContainerSeries)."""

from __future__ import annotations

from mesoslite.agent.records import AgentExecutor, AgentFramework, AgentTask
from mesoslite.agent.views import ContainerSeries, containers_prometheus_text
from mesoslite.protocol import CommandInfo, TaskState
from mesoslite.testing.factories import make_executor_info, make_framework_info, make_task_info
from tests.support import promtext


def _task(executor: AgentExecutor, task_id: str, app: str = "") -> None:
    env = {"MARATHON_APP_ID": app} if app else {}
    task = AgentTask(make_task_info(task_id=task_id, mem=64,
                                    command=CommandInfo(value="sleep 9", environment=env)),
                     executor.framework_id, executor.executor_id)
    task.state = TaskState.TASK_RUNNING
    executor.launched_tasks[task_id] = task


def _cluster() -> tuple[AgentFramework, AgentExecutor]:
    fw = AgentFramework(make_framework_info("f", id="fw-1"))
    ex = AgentExecutor(fw.id, make_executor_info("exec", executor_id="ex-1"), "c-1", "/s",
                       "custom")
    fw.executors[ex.executor_id] = ex
    _task(ex, "t-1", "/web")
    return fw, ex


def _entry(executor_id: str = "ex-1", rss: int = 1000) -> dict[str, object]:
    return {"framework_id": "fw-1", "executor_id": executor_id, "container_id": "c-1",
            "statistics": {"mem_rss_bytes": rss, "cpus_user_time_secs": 1.5,
                           "net_rx_bytes": True}}


def test_cached_labels_follow_the_executors_tasks() -> None:
    """A second task on the executor shows in task_id at the next scrape, not a stale one."""
    fw, ex = _cluster()
    series = ContainerSeries()
    first = promtext.parse(series.render([_entry()], [fw]))
    [labels] = promtext.series(first, "mesoslite_container_memory_rss_bytes")
    assert dict(labels)["task_id"] == "t-1" and dict(labels)["app_id"] == "/web"
    _task(ex, "t-2", "/api")
    second = promtext.parse(series.render([_entry(rss=2000)], [fw]))
    [(labels, value)] = promtext.series(second, "mesoslite_container_memory_rss_bytes").items()
    assert dict(labels)["task_id"] == "t-1,t-2" and dict(labels)["app_id"] == "/api,/web"
    assert value == 2000.0


def test_the_cache_renders_what_a_fresh_renderer_does_and_forgets_gone_containers() -> None:
    """Same text as uncached rendering; a container gone from a scrape leaves the cache."""
    fw, _ = _cluster()
    series = ContainerSeries()
    series.render([_entry()], [fw])
    assert series.render([_entry()], [fw]) == containers_prometheus_text([_entry()], [fw])
    series.render([], [fw])
    assert series.label_texts([], [fw]) == [] and not series._labels


def test_only_numbers_become_samples() -> None:
    """A boolean or missing statistic makes no sample (and no family unless always shown)."""
    fw, _ = _cluster()
    text = ContainerSeries().render([_entry()], [fw])
    assert "mesoslite_container_network_rx_bytes_total" not in text
    assert "# TYPE mesoslite_container_processes gauge" in text
    promtext.parse(text)
