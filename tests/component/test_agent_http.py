"""The agent's HTTP endpoints: state, metrics, monitor and the sandbox file API."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from mesoslite.agent.main import AgentProcess
from mesoslite.protocol import TaskState
from tests.support import promtext
from tests.support.agent_fakemaster import (
    AGENT_ID,
    FRAMEWORK_ID,
    FakeMaster,
    http_get,
    http_json,
    launch,
    read_sandbox_file,
    run,
    shell_task,
    started,
)
from tests.support.procs import until


async def running_task(agent: AgentProcess, master: FakeMaster, task_id: str, command: str) -> str:
    """Launch a task, wait until it runs and printed something; return its sandbox."""
    launch(master, shell_task(task_id, command))
    await master.wait_state(task_id, TaskState.TASK_RUNNING)
    await until(lambda: read_sandbox_file(agent, task_id, "stdout") != "")
    ex = agent.frameworks[0].executors[task_id]
    return ex.directory


def q(path: str) -> str:
    """URL-quote a path argument (NUL bytes and all)."""
    return quote(path, safe="")


def test_state_and_metrics_show_a_running_task(tmp_path: Path) -> None:
    """/state, /metrics/snapshot, /metrics, /health, /version and /flags describe the agent."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            sandbox = await running_task(agent, master, "web", "echo up; sleep 30")
            code, state = await http_json(agent, "/state")
            assert code == 200
            assert state["id"] == AGENT_ID
            assert state["hostname"] == "127.0.0.1"
            assert state["attributes"] == {"rack": "r1"}
            assert state["resources"]["cpus"] == 4.0
            assert state["flags"]["work_dir"].endswith("agent")
            assert state["pid"].endswith(f"@127.0.0.1:{agent.http_port}")
            fw = state["frameworks"][0]
            assert fw["id"] == FRAMEWORK_ID
            ex = fw["executors"][0]
            assert ex["id"] == "web" and ex["source"] == "web"
            assert ex["directory"] == sandbox and ex["container"] in sandbox
            assert ex["tasks"][0]["id"] == "web"
            assert ex["tasks"][0]["state"] == "TASK_RUNNING"
            assert ex["resources"]["cpus"] == 0.1

            code, snapshot = await http_json(agent, "/metrics/snapshot")
            assert code == 200
            assert snapshot["slave/registered"] == 1.0
            assert snapshot["slave/tasks_running"] == 1.0
            assert snapshot["slave/executors_running"] == 1.0
            assert snapshot["slave/cpus_total"] == 4.0 and snapshot["slave/cpus_used"] == 0.1
            assert snapshot["slave/mem_used"] == 32.0
            assert snapshot["slave/valid_status_updates"] >= 2.0
            assert snapshot["slave/uptime_secs"] >= 0.0
            text = (await http_get(agent, "/metrics")).body.decode()
            assert "mesoslite_slave_tasks_running 1\n" in text
            assert "# TYPE mesoslite_slave_valid_status_updates counter" in text

            assert (await http_get(agent, "/health")).code == 200
            code, version = await http_json(agent, "/version")
            assert code == 200 and version["version"]
            code, flags = await http_json(agent, "/flags")
            assert flags["flags"]["master"] == master.address
            code, missing = await http_json(agent, "/no/such/endpoint")
            assert code == 404 and missing["field"] == "path"
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_monitor_statistics_show_the_executor(tmp_path: Path) -> None:
    """/monitor/statistics lists the running task's executor with usage and limits."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            await running_task(agent, master, "busy", "echo go; sleep 30")
            code, stats = await http_json(agent, "/monitor/statistics")
            assert code == 200
            entry = next(e for e in stats if e["executor_id"] == "busy")
            assert entry["framework_id"] == FRAMEWORK_ID
            assert entry["source"] == "busy"
            assert entry["executor_name"].startswith("Command Executor (Task: busy)")
            numbers = entry["statistics"]
            assert numbers["cpus_limit"] == 0.1
            assert numbers["mem_limit_bytes"] == 32 * 1024 * 1024
            assert numbers["mem_rss_bytes"] > 0
            assert numbers["cpus_user_time_secs"] >= 0.0
            assert numbers["cpus_system_time_secs"] >= 0.0
            assert numbers["timestamp"] > 0
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_files_browse_read_download(tmp_path: Path) -> None:
    """/files/browse lists a sandbox, /files/read pages stdout, /files/download sends it."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("files", "printf 'hello files\\n'"))
            await master.wait_state("files", TaskState.TASK_FINISHED)
            latest = os.path.join(agent.work_dir, "agents", AGENT_ID, "frameworks",
                                  FRAMEWORK_ID, "executors", "files", "runs", "latest")
            sandbox = os.path.realpath(latest)
            code, entries = await http_json(agent, f"/files/browse?path={q(sandbox)}")
            assert code == 200
            names = {os.path.basename(e["path"]): e for e in entries}
            assert {"stdout", "stderr"} <= set(names)
            out = names["stdout"]
            assert out["size"] == len("hello files\n")
            assert out["mode"].startswith("-rw")
            assert set(out) == {"path", "nlink", "size", "mtime", "mode", "uid", "gid", "inode"}
            # The 'latest' symlink resolves inside the work directory.
            code, via_latest = await http_json(agent, f"/files/browse?path={q(latest)}")
            assert code == 200 and len(via_latest) == len(entries)

            stdout = os.path.join(sandbox, "stdout")
            code, page = await http_json(agent, f"/files/read?path={q(stdout)}&offset=0")
            assert code == 200 and page == {"data": "hello files\n", "offset": 0}
            code, page = await http_json(
                agent, f"/files/read?path={q(stdout)}&offset=6&length=3")
            assert page == {"data": "fil", "offset": 6}
            code, page = await http_json(agent, f"/files/read?path={q(stdout)}&offset=-1")
            assert page == {"data": "", "offset": 12}
            relative = os.path.relpath(stdout, agent.work_dir)
            code, page = await http_json(agent, f"/files/read?path={q(relative)}&offset=0")
            assert code == 200 and page["data"] == "hello files\n"

            response = await http_get(agent, f"/files/download?path={q(stdout)}")
            assert response.code == 200
            assert response.body == b"hello files\n"
            assert "attachment" in response.headers["Content-Disposition"]
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_files_refuse_escapes_and_bad_arguments(tmp_path: Path) -> None:
    """Paths outside the work directory (.., absolute, symlinks, NUL) and bad args are refused."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        secret = tmp_path / "secret.txt"
        secret.write_text("top secret")
        try:
            launch(master, shell_task("esc", "echo x"))
            await master.wait_state("esc", TaskState.TASK_FINISHED)
            latest = os.path.join(agent.work_dir, "agents", AGENT_ID, "frameworks",
                                  FRAMEWORK_ID, "executors", "esc", "runs", "latest")
            sandbox = os.path.realpath(latest)
            os.symlink(str(secret), os.path.join(sandbox, "leak"))
            os.symlink("/etc", os.path.join(sandbox, "etc"))
            refused = [
                "/etc/passwd",
                str(secret),
                f"{sandbox}/../../../../../../../../secret.txt",
                "../secret.txt",
                f"{sandbox}/leak",
                f"{sandbox}/etc/passwd",
                f"{sandbox}/stdout\x00.png",
                agent.work_dir + "-evil/x",
            ]
            for endpoint in ("browse", "read", "download"):
                for bad in refused:
                    response = await http_get(agent, f"/files/{endpoint}?path={q(bad)}")
                    assert response.code == 403, (endpoint, bad, response.code)
                    assert b"path" in response.body
                    assert b"top secret" not in response.body
            missing = await http_get(agent, f"/files/read?path={q(sandbox + '/nope')}")
            assert missing.code == 404
            code, body_ = await http_json(agent, "/files/read")
            assert code == 400 and body_["field"] == "path"
            stdout = q(os.path.join(sandbox, "stdout"))
            code, body_ = await http_json(agent, f"/files/read?path={stdout}&offset=abc")
            assert code == 400 and body_["field"] == "offset"
            code, body_ = await http_json(agent, f"/files/read?path={stdout}&offset=-5")
            assert code == 400 and body_["field"] == "offset"
            code, body_ = await http_json(agent, f"/files/read?path={stdout}&length=x")
            assert code == 400 and body_["field"] == "length"
            code, body_ = await http_json(agent, f"/files/read?path={q(sandbox)}")
            assert code == 400 and body_["field"] == "path"
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_metrics_show_each_container_with_task_labels(tmp_path: Path) -> None:
    """/metrics has the running task's cpu and memory series, labelled and escaped."""
    app_id = '/grp/we"b\\x'  # quote and backslash: escaped in the text, read back intact

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("pt", "echo go; sleep 30", env={"MARATHON_APP_ID": app_id}))
            await master.wait_state("pt", TaskState.TASK_RUNNING)
            await until(lambda: read_sandbox_file(agent, "pt", "stdout") != "")
            text = (await http_get(agent, "/metrics")).body.decode()
            assert '\\"' in text and "\\\\" in text
            samples = promtext.parse(text)
            labels = {"framework_id": FRAMEWORK_ID, "executor_id": "pt", "task_id": "pt",
                      "app_id": app_id}
            rss = promtext.series(samples, "mesoslite_container_memory_rss_bytes", **labels)
            assert len(rss) == 1 and next(iter(rss.values())) > 0
            limit = promtext.series(samples, "mesoslite_container_memory_limit_bytes", **labels)
            assert list(limit.values()) == [32 * 1024 * 1024]
            for name in ("mesoslite_container_cpu_user_seconds_total",
                         "mesoslite_container_cpu_system_seconds_total"):
                values = list(promtext.series(samples, name, **labels).values())
                assert len(values) == 1 and values[0] >= 0.0
            assert promtext.series(samples, "mesoslite_container_cpus_limit", **labels)
            # The agent's own metrics are still there, in the same document.
            assert samples[("mesoslite_slave_tasks_running", ())] == 1.0
        finally:
            await agent.stop()
            master.close()

    run(body())
