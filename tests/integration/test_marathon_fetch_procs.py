"""Marathon ``fetch`` honoured end to end: real master, agent and ``mesoslite marathon``.

An HTTP server thread in the test (127.0.0.1, counting requests per path) serves a
``.tar.gz`` holding the app's start script and a plain script fetched with
``executable``; the app runs from what was fetched and serves its health check.
A second instance of a ``cache: true`` app makes no second request; a 404 fails the
task with a message naming the URI (``lastTaskFailure``); a ``file://`` URI is
copied in; an ``env`` secret is read from the agent's ``--secret_store_dir`` into the
task's environment and appears in no file of any process (a missing one fails the task
naming it); and the fields nothing acts on (``residency``, persistent and external
volumes, file-based secrets, ``storeUrls``, a bad fetch scheme, a custom executor) are
refused with 422 naming them while the process keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fetch_files import FileServer, tarball
from tests.support.marathon_procs import MarathonCluster, shell_app
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

RUN_SH = b"#!/bin/sh\nexec python3 -m http.server $PORT0 --bind 127.0.0.1\n"
TOOL = b"#!/bin/sh\necho fetched-tool-ran > tool.out\n"


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    """The artifact server for this module."""
    server = FileServer()
    server.files["/pkg/app.tar.gz"] = tarball({"app/run.sh": (RUN_SH, 0o755)})
    server.files["/bin/tool"] = TOOL
    try:
        yield server
    finally:
        server.close()


#: The secret in the agent's store (it must show up nowhere but in the task's environment).
SECRET_VALUE = "s3cr3t-value-4f1d9"  # noqa: S105 - a test value, searched for in every file


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """A master, one agent (so both instances share its fetcher cache; with a secret
    store holding ``prod/db``) and marathon."""
    root = tmp_path_factory.mktemp("fetch")
    store = root / "secret-store"
    (store / "prod").mkdir(parents=True)
    secret = store / "prod" / "db"
    secret.write_text(SECRET_VALUE + "\n")
    secret.chmod(0o600)
    with MarathonCluster(root, agents=1, agent_flags={"secret_store_dir": store}) as marathon:
        yield marathon


def fetch_app(app_id: str, fetch: list[dict[str, Any]], cmd: str, instances: int = 1
              ) -> dict[str, Any]:
    """A shell app with ``fetch`` whose command starts from the sandbox."""
    return shell_app(app_id, instances, cmd=cmd, fetch=fetch)


def test_fetched_archive_and_executable_run_the_app(cluster: MarathonCluster,
                                                    files: FileServer) -> None:
    """The app's command runs a fetched executable and the script unpacked from a tar.gz."""
    app = fetch_app("/fetch/web", [
        {"uri": files.url("/pkg/app.tar.gz"), "extract": True},
        {"uri": files.url("/bin/tool"), "executable": True},
    ], "./tool && exec ./app/run.sh")
    cluster.client.ok("POST", "/v2/apps", app, expect=201)
    [task] = cluster.client.wait_settled("/fetch/web", 1, healthy=True, timeout=60)
    sandbox = cluster.sandbox(task)
    assert (sandbox / "tool.out").read_text() == "fetched-tool-ran\n"
    assert (sandbox / "app" / "run.sh").read_bytes() == RUN_SH
    assert "Fetched" in (sandbox / "stderr").read_text()
    shown = cluster.client.app("/fetch/web")["fetch"]
    assert [f["uri"] for f in shown] == [files.url("/pkg/app.tar.gz"), files.url("/bin/tool")]


def test_a_cached_uri_is_downloaded_once_for_two_tasks(cluster: MarathonCluster,
                                                       files: FileServer) -> None:
    """cache: true and two instances on one agent: the server sees one request."""
    files.files["/pkg/cached.tar.gz"] = tarball({"app/run.sh": (RUN_SH, 0o755)})
    app = fetch_app("/fetch/cached", [{"uri": files.url("/pkg/cached.tar.gz"), "cache": True}],
                    "exec ./app/run.sh", instances=2)
    cluster.client.ok("POST", "/v2/apps", app, expect=201)
    tasks = cluster.client.wait_settled("/fetch/cached", 2, healthy=True, timeout=60)
    assert files.requests["/pkg/cached.tar.gz"] == 1
    for task in tasks:
        assert (cluster.sandbox(task) / "app" / "run.sh").read_bytes() == RUN_SH
    metrics = cluster.agents[0].get("/metrics/snapshot")
    assert metrics["containerizer/fetcher/cache_size_total_bytes"] == 2 << 30  # Mesos's 2GB
    assert metrics["containerizer/fetcher/cache_size_used_bytes"] == len(
        files.files["/pkg/cached.tar.gz"])
    assert metrics["containerizer/fetcher/task_fetches_succeeded"] >= 2


def test_a_404_fails_the_task_naming_the_uri(cluster: MarathonCluster,
                                              files: FileServer) -> None:
    """A URI answering 404: TASK_FAILED whose message names the URI and the status."""
    missing = files.url("/pkg/missing.tar.gz")
    app = fetch_app("/fetch/missing", [{"uri": missing}], "exec ./app/run.sh")
    app.update(healthChecks=[], backoffSeconds=30)
    cluster.client.ok("POST", "/v2/apps", app, expect=201)

    def failure() -> dict[str, Any] | None:
        return cluster.client.app("/fetch/missing",
                                  embed="apps.lastTaskFailure").get("lastTaskFailure")

    found = wait_for(failure, timeout=40, what="lastTaskFailure of /fetch/missing")
    assert found["state"] == "TASK_FAILED", found
    assert found["message"] == f"Failed to fetch URI '{missing}': HTTP 404 Not Found", found
    assert files.requests["/pkg/missing.tar.gz"] >= 1
    metrics = cluster.agents[0].get("/metrics/snapshot")
    assert metrics["containerizer/fetcher/task_fetches_failed"] >= 1
    cluster.client.ok("DELETE", "/v2/apps/fetch/missing?force=true")


def test_a_file_uri_is_copied_into_the_sandbox(cluster: MarathonCluster,
                                                tmp_path: Path) -> None:
    """file:///… lands in the sandbox under destPath before the command starts."""
    conf = tmp_path / "conf.txt"
    conf.write_text("from-the-agent-host\n")
    tmp_path.chmod(0o755)
    app = fetch_app("/fetch/file", [{"uri": f"file://{conf}", "destPath": "etc/app.conf"}],
                    "cp etc/app.conf seen && exec python3 -m http.server $PORT0 "
                    "--bind 127.0.0.1")
    cluster.client.ok("POST", "/v2/apps", app, expect=201)
    [task] = cluster.client.wait_settled("/fetch/file", 1, healthy=True, timeout=60)
    assert (cluster.sandbox(task) / "seen").read_text() == "from-the-agent-host\n"


REFUSED = [
    ({"residency": {"taskLostBehavior": "WAIT_FOREVER"}}, "/residency"),
    ({"storeUrls": ["http://example.com/a"]}, "/storeUrls"),
    ({"container": {"type": "MESOS", "volumes": [
        {"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}]}},
     "/container/volumes/0/persistent"),
    ({"container": {"type": "DOCKER", "docker": {"image": "busybox"}, "volumes": [
        {"containerPath": "/d", "external": {"name": "v", "provider": "dvdi"}}]}},
     "/container/volumes/0/external"),
    ({"fetch": [{"uri": "ftp://example.com/a.tgz"}]}, "/fetch/0/uri"),
    ({"fetch": [{"uri": "http://example.com/a", "destPath": "../../etc/x"}]},
     "/fetch/0/destPath"),
    ({"uris": ["hdfs://nn/a.tgz"]}, "/uris/0"),
    ({"executor": "/opt/custom-executor"}, "/executor"),
    ({"role": "not-the-framework-role"}, "/role"),
    ({"secrets": {"s": {"source": "prod/db"}}, "container": {
        "type": "DOCKER", "docker": {"image": "busybox"},
        "volumes": [{"containerPath": "/s", "secret": "s"}]}}, "/container/volumes/0/secret"),
]


@pytest.mark.parametrize(("fields", "path"), REFUSED, ids=[p for _f, p in REFUSED])
def test_fields_nothing_acts_on_are_refused_with_422(cluster: MarathonCluster,
                                                     fields: dict[str, Any], path: str) -> None:
    """residency, storeUrls, persistent/external volumes, bad fetch URIs, custom executors:
    422 naming the field; no app is created."""
    app = {"id": "/fetch/refused", "cmd": "sleep 1", **fields}
    resp = cluster.client.request("POST", "/v2/apps", app)
    assert resp.status == 422, resp
    assert path in [d["path"] for d in resp.json["details"]], resp.json
    assert cluster.client.app_or_none("/fetch/refused") is None
    assert cluster.client.get("/ping").status == 200


def test_env_secrets_come_from_the_agent_store_and_show_nowhere_else(
        cluster: MarathonCluster) -> None:
    """An env secret reaches the task's environment; the API shows the reference only, and
    no log, checkpoint, registry or state file of any process holds the value."""
    app = shell_app("/fetch/secret", 1, cmd='printf %s "$DB_PASSWORD" > seen && exec '
                    "python3 -m http.server $PORT0 --bind 127.0.0.1",
                    secrets={"db": {"source": "/prod/db"}},
                    env={"DB_PASSWORD": {"secret": "db"}, "PLAIN": "p"})
    cluster.client.ok("POST", "/v2/apps", app, expect=201)
    [task] = cluster.client.wait_settled("/fetch/secret", 1, healthy=True, timeout=60)
    sandbox = cluster.sandbox(task)
    assert (sandbox / "seen").read_text() == SECRET_VALUE
    shown = cluster.client.app("/fetch/secret")
    assert shown["env"]["DB_PASSWORD"] == {"secret": "db"}
    assert shown["secrets"] == {"db": {"source": "/prod/db"}}
    leaks = []
    written = (sandbox / "seen").resolve()  # what the task itself wrote
    for path in cluster.root.rglob("*"):
        if not path.is_file() or "secret-store" in path.parts or path.resolve() == written:
            continue
        if SECRET_VALUE.encode() in path.read_bytes():
            leaks.append(str(path.relative_to(cluster.root)))
    assert leaks == [], leaks


def test_a_missing_secret_fails_the_task_naming_it(cluster: MarathonCluster) -> None:
    """A secret the store lacks: TASK_FAILED naming the reference and the variable."""
    app = shell_app("/fetch/nosecret", 1, cmd="sleep 60", healthChecks=[],
                    portDefinitions=[], backoffSeconds=30,
                    secrets={"db": {"source": "/prod/missing"}},
                    env={"DB_PASSWORD": {"secret": "db"}})
    cluster.client.ok("POST", "/v2/apps", app, expect=201)

    def failure() -> dict[str, Any] | None:
        return cluster.client.app("/fetch/nosecret",
                                  embed="apps.lastTaskFailure").get("lastTaskFailure")

    found = wait_for(failure, timeout=40, what="lastTaskFailure of /fetch/nosecret")
    assert found["state"] == "TASK_FAILED", found
    assert found["message"] == ("secret '/prod/missing' (variable DB_PASSWORD): not in the "
                                "secret store"), found
    cluster.client.ok("DELETE", "/v2/apps/fetch/nosecret?force=true")
