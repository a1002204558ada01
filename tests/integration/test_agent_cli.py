"""A real ``mesoslite agent`` whose HTTP port is taken: one clear line naming the flag, exit 1."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

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
