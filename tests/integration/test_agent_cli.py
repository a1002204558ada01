"""A real ``mesoslite agent`` process: flag errors, and how it ends."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

from mesoslite.protocol import RegisterAgent, ShutdownAgent
from tests.support.agent_fakemaster import FakeMaster, run
from tests.support.procs import ROOT, free_port, mesoslite


def test_http_port_in_use_is_one_error_line_naming_the_flag(tmp_path: Path) -> None:
    """--http_port already bound: exit status 1, one ERROR line naming --http_port, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            mesoslite("agent", "--http_port", str(port), "--work_dir", str(tmp_path / "agent"),
                      "--master", f"127.0.0.1:{free_port()}"),
            check=False, capture_output=True, text=True, timeout=60, cwd=ROOT)
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert done.returncode == 1, output
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], output
    assert "--http_port" in errors[0] and "Address already in use" in errors[0], output
    assert "Traceback" not in output, output


def test_the_agent_process_exits_when_the_master_shuts_it_down(tmp_path: Path) -> None:
    """ShutdownAgent from the master ends a real ``mesoslite agent`` process with status 0."""

    async def body() -> None:
        master = FakeMaster()
        proc = await asyncio.create_subprocess_exec(
            *mesoslite("agent", "--http_port", "0", "--work_dir", str(tmp_path / "agent"),
                       "--master", master.address, "--resources", "cpus:1;mem:128"),
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            await master.wait_for(lambda: master.of_type(RegisterAgent), 30, "RegisterAgent")
            master.send(ShutdownAgent(message="decommissioned"))
            status = await asyncio.wait_for(proc.wait(), 30)
            assert status == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            master.close()

    run(body(), timeout=90)
