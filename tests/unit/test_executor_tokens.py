"""The agent's secrets: the key file, the identity token and per-container executor tokens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mesoslite.agent.executor_tokens import AgentSecrets, load_or_create_key


def test_key_file_is_private_and_stable(tmp_path: Path) -> None:
    """The key is made once, mode 0600, and read back the same next time."""
    path = tmp_path / "meta" / "agent.key"
    key = load_or_create_key(str(path))
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) & 0o077 == 0
    assert load_or_create_key(str(path)) == key


def test_tokens_are_per_container_and_checked_in_constant_time(tmp_path: Path) -> None:
    """Each container has its own token; another container's, a guess or none is refused."""
    secrets = AgentSecrets.in_work_dir(str(tmp_path))
    a, b = secrets.executor_token("c-a"), secrets.executor_token("c-b")
    assert a != b and len(a) == 64
    assert secrets.check_executor("c-a", a)
    assert not secrets.check_executor("c-a", b)
    assert not secrets.check_executor("c-a", "")
    assert not secrets.check_executor("", a)
    # A restarted agent (same work dir) derives the same tokens: surviving executors re-register.
    again = AgentSecrets.in_work_dir(str(tmp_path))
    assert again.check_executor("c-a", a) and again.agent_token == secrets.agent_token
    # Another agent's key gives other tokens.
    other = AgentSecrets.in_work_dir(str(tmp_path / "other"))
    assert not other.check_executor("c-a", a) and other.agent_token != secrets.agent_token
    assert a not in repr(secrets)
