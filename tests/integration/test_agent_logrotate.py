"""Rotating task logs on a real agent, followed by a real ``mesoslite ctl logs -f``.

An agent with ``--container_logger=rotating`` (1 KiB per file, 5 rotated files kept)
runs a task that writes 8,000 bytes of numbered lines: ``stdout`` rotates seven times,
``stdout.1`` … ``stdout.5`` are full and the two oldest are gone; a ``ctl logs -f``
attached before the output starts prints every line once and in order across the
rotations, and exits when the task ends; the logger process exits with the task.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from mesoslite.protocol import TaskState
from tests.support.cluster_procs import ProcCluster, http_get
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import Proc, mesoslite, wait_for

pytestmark = pytest.mark.integration

LINES = 800  # "line-0000\n" ... : 8,000 bytes
# Prints "ready", waits for the test's go file, then LINES numbered lines, ten per 50 ms
# (about 2 KB/s: well within what 5 KB of kept files give a follower polling every 0.5 s).
COMMAND = (
    "echo ready; while [ ! -e {go} ]; do sleep 0.05; done; i=0; "
    f"while [ $i -lt {LINES} ]; do printf 'line-%04d\\n' $i; i=$((i+1)); "
    "[ $((i % 10)) -eq 0 ] && sleep 0.05; done; echo err-line >&2"
)


def _loggers(sandbox: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "mesoslite.executor.logrotate" in cmd and str(sandbox) in cmd:
            found.append(proc.info["pid"])
    return found


def test_rotation_while_ctl_logs_follows(tmp_path: Path) -> None:
    """Every line comes out once, in order, across 7 rotations; 5 files kept; logger exits."""
    go = tmp_path / "go"
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:2;mem:1024", container_logger="rotating",
                                  logrotate_max_stdout_size="1KB",
                                  logrotate_max_stderr_size=1024, logrotate_max_files=5)
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "logs") as driver:
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [shell_task("chatty", agent.agent_id,
                                                        "cpus:0.1;mem:32",
                                                        COMMAND.format(go=go))])
            scheduler.wait_state("chatty", TaskState.TASK_RUNNING)
            [latest] = agent.work_dir.glob("agents/*/frameworks/*/executors/chatty/runs/latest")
            sandbox = latest.resolve()
            assert _loggers(sandbox), "the rotating logger runs beside the task"

            ctl = Proc(mesoslite("ctl", "--master", master.base_url, "logs", "chatty", "-f"),
                       tmp_path / "ctl.log")
            ctl.wait_output("ready", timeout=60)  # attached before the output starts
            go.touch()
            scheduler.wait_state("chatty", TaskState.TASK_FINISHED, timeout=120)
            wait_for(lambda: not ctl.alive(), timeout=60, what="ctl logs -f returns")
            assert ctl.popen.returncode == 0, ctl.output()[-2000:]
            printed = ctl.output().splitlines()
            assert printed == ["ready"] + [f"line-{i:04d}" for i in range(LINES)], (
                f"{len(printed)} lines: {printed[:3]} ... {printed[-3:]}")

            sizes = {p.name: p.stat().st_size for p in sandbox.iterdir()
                     if p.name.startswith("stdout")}
            assert sizes == {"stdout": 8006 - 7 * 1024, **{f"stdout.{n}": 1024
                                                           for n in range(1, 6)}}
            assert (sandbox / "stderr").read_text() == "err-line\n"
            status, body = http_get(f"{agent.base_url}/files/read?path={sandbox}/stdout.5"
                                    f"&offset=0&length=10")
            # Rotated files are served too: stdout.5 holds the stream's bytes 2048..3071.
            assert status == 200 and json.loads(body)["data"] == "ne-0204\nli"
            wait_for(lambda: not _loggers(sandbox), timeout=30,
                     what="the logger exits with its task")
