"""A real ``mesoslite agent`` whose Docker daemon does not answer: one clear line, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.support.procs import Proc, free_port, mesoslite


def test_unreachable_docker_daemon_is_one_error_line_naming_the_flag(tmp_path: Path) -> None:
    """--docker_host pointing nowhere: one ERROR line with the flag, its value and why; runs on."""
    socket_path = tmp_path / "nonexistent.sock"
    agent = Proc(mesoslite(
        "agent", "--containerizers", "docker,process", "--docker_host", f"unix://{socket_path}",
        "--master", f"127.0.0.1:{free_port()}", "--work_dir", str(tmp_path / "agent"),
        "--http_port", "0", "--resources", "cpus:1;mem:256;disk:100",
    ), tmp_path / "agent.log")
    try:
        output = agent.wait_output("mesoslite agent: http://", timeout=30)
        assert agent.alive(), output
    finally:
        agent.stop()
    output = agent.output()
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output
    assert f"--docker_host unix://{socket_path}:" in errors[0], errors[0]
    assert "unreachable" in errors[0] and "No such file or directory" in errors[0], errors[0]
    assert "Traceback" not in output, output
