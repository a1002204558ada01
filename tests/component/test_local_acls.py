"""``mesoslite local --acls``: the same ACL file reaches the master and every agent."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from mesoslite.local import LocalCluster
from tests.support.procs import ROOT, mesoslite

ACLS = {"get_endpoints": [{"principals": {"type": "NONE"}, "paths": {"values": ["/flags"]}}]}


def _status(port: int, path: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_local_cluster_passes_the_acl_file_to_master_and_agents(tmp_path: Path) -> None:
    """An ACL file given as an option: master and agents read it and enforce it."""
    acl_file = tmp_path / "acls.json"
    acl_file.write_text(json.dumps(ACLS))
    options = {"acls": str(acl_file)}

    async def main() -> None:
        cluster = LocalCluster(2, http_port=0, zmq_port=0, agent_port_base=0, work_dir=None,
                               agent_resources="cpus:1;mem:128", master_options=options,
                               agent_options=options, marathon_port=None, dns_port=None)
        await cluster.start()
        try:
            assert cluster.master is not None
            assert json.loads(cluster.master.config.acls) == ACLS  # the file's JSON
            ports = [cluster.master.http_port, *(a.http_port for a in cluster.agents)]
            for port in ports:
                assert await asyncio.to_thread(_status, port, "/flags") == 403, port
                assert await asyncio.to_thread(_status, port, "/health") == 200, port
        finally:
            await cluster.stop()

    asyncio.run(asyncio.wait_for(main(), 90))


def test_local_refuses_a_bad_acl_file_naming_the_flag(tmp_path: Path) -> None:
    """``mesoslite local --acls bad.json`` exits with an error naming --acls and the field."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"register_frameworks": [{"principals": {"type": "ANY"}}]}))
    done = subprocess.run(
        mesoslite("local", "--acls", str(bad), "--no-marathon", "--no-dns", "--port", "0",
                  "--zmq_port", "0", "--agent_port_base", "0", "--work_dir",
                  str(tmp_path / "w")),
        capture_output=True, text=True, timeout=90, cwd=ROOT, check=False)
    assert done.returncode != 0
    assert "--acls" in done.stderr and "register_frameworks[0].roles" in done.stderr, done.stderr
