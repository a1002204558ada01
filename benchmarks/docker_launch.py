#!/usr/bin/env python3
"""docker_launch: time until N containers run, through mesoslite, the raw Docker SDK and Swarm.

Owns: the benchmark of the Docker launch path.  In one run, on the same
engine and with the same small local image running ``sleep``, it measures

* ``mesoslite_s``: a master and one agent started as real processes (the
  agent with ``--containerizers docker,process``), and a framework in this
  process that launches ``--containers`` DOCKER tasks from its first offer:
  the time from the ``launch_tasks`` call until the last TASK_RUNNING
  (``first_offer_to_running_s`` counts from the first offer instead);
* ``sdk_s``: the Docker SDK creating and starting the same number of
  containers one after another (the engine's limit for one client);
  ``sdk_parallel_s`` (informative, no goal) does the same from 8 threads, as
  many as the Docker containerizer's thread pool;
* ``swarm_s``: ``docker service create --replicas N`` (detached, image not
  resolved against a registry) until the engine reports N tasks running,
  when swarm mode can be enabled (``docker swarm init --advertise-addr
  127.0.0.1``, left again afterwards unless it was already active); when it
  cannot, ``swarm_error`` says why;
* ``ratio_sdk`` (mesoslite / SDK, goal <= 1.15) and ``ratio_swarm``
  (mesoslite / Swarm, goal <= 0.75).

Every way uses the same network mode (``--network``, default host; the Docker
containerizer's default).  It prints ONE JSON object on stdout (progress goes
to stderr)::

    python benchmarks/docker_launch.py [--containers 50] [--repeat 1]
        [--network host|bridge] [--image IMAGE] [--no-swarm] [--log-level INFO]
        [--timeout 180] [--work-dir DIR] [--keep]

With ``--repeat N`` every way is measured N times (the order rotates from
run to run, mesoslite against a fresh cluster each time); the times are the
medians (the ratios are those of the medians), every run is listed under
``runs`` with its order and its own ratios.  Every container it started is
removed (untimed) before the next measurement and on the way out, after an
error or Ctrl-C too, and the cluster's processes are stopped.  The engine
and the test image come from ``scripts/ensure-docker.sh`` (``--image`` to
use another local image).
Exit status: 0 when every container ran through mesoslite and the SDK (both
ways) in every run, 1 otherwise (a Swarm failure is reported, not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source checkout
    sys.path.insert(0, str(ROOT))

import docker
import docker.errors
from bench_framework import BenchScheduler, drive
from bench_support import (
    Cluster,
    check_at_least,
    failure,
    print_report,
    remove_or_keep,
    run_facts,
    say,
    set_progress_tag,
    sigterm_as_interrupt,
)

from mesoslite.protocol import (
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    Filters,
    FrameworkInfo,
    Offer,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver

GOAL_SDK = 1.15
GOAL_SWARM = 0.75
BENCH_LABEL = "mesoslite.benchmark"
SCOPE_LABEL = "mesoslite.agent_scope"
PER_TASK = Resources.from_dict({"cpus": 0.1, "mem": 32.0})
API_VERSION = "1.41"
#: Threads of the informative parallel SDK figure: the Docker containerizer's pool size.
SDK_PARALLEL = 8


def api_client() -> docker.APIClient:
    """A low-level Docker client on the default socket."""
    return docker.APIClient(version=API_VERSION, timeout=120)


def remove_labelled(api: docker.APIClient, label: str, timeout: float = 120.0) -> int:
    """Force-remove every container with ``label`` (``key=value``); how many there were."""
    deadline = time.monotonic() + timeout
    removed = 0
    while left := api.containers(all=True, filters={"label": label}):
        for summary in left:
            with contextlib.suppress(docker.errors.APIError):  # gone, or removal in progress
                api.remove_container(summary["Id"], force=True)
                removed += 1
        if time.monotonic() > deadline:
            raise RuntimeError(f"containers labelled {label} still there after {timeout}s")
        time.sleep(0.1)
    return removed


# ---------------------------------------------------------------- mesoslite


class DockerLauncher(BenchScheduler):
    """Launches ``total`` DOCKER tasks (``sleep``) from its first offers; waits until all run."""

    def __init__(self, total: int, image: str, network: str) -> None:
        """``total`` tasks of ``image`` on ``network`` (HOST or BRIDGE)."""
        super().__init__()
        self.total = total
        self.image = image
        self.network = network
        self.launched = 0
        self.running: set[str] = set()
        self.first_offer_at: float | None = None
        self.launch_at: float | None = None
        self.all_running_at: float | None = None

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Launch as many tasks as each offer holds until ``total`` are launched."""
        if self.first_offer_at is None:
            self.first_offer_at = time.perf_counter()
        for offer in offers:
            tasks: list[TaskInfo] = []
            left = offer.resources
            while self.launched < self.total and left.contains(PER_TASK):
                left = left - PER_TASK
                task_id = f"sleep-{self.launched}"
                self.launched += 1
                tasks.append(TaskInfo(
                    name=task_id, task_id=task_id, agent_id=offer.agent_id, resources=PER_TASK,
                    command=CommandInfo(value="sleep 600"),
                    container=ContainerInfo(
                        type="DOCKER", docker=DockerInfo(image=self.image, network=self.network)),
                ))
            if not tasks:
                driver.decline_offer(offer.id, Filters(refuse_seconds=60.0))
                continue
            if self.launch_at is None:
                self.launch_at = time.perf_counter()
            driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=0.0))
        if self.launched >= self.total:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """Count TASK_RUNNING; anything terminal before the end is a problem."""
        if status.state is TaskState.TASK_RUNNING:
            self.running.add(status.task_id)
            if len(self.running) >= self.total and self.all_running_at is None:
                self.all_running_at = time.perf_counter()
                self.done.set()
        elif status.state.is_terminal and self.all_running_at is None:
            self.problems.append(f"{status.task_id}: {status.state.value} {status.message}")
            if len(self.problems) >= 3:
                self.done.set()


async def _run_launcher(master: str, args: argparse.Namespace) -> DockerLauncher:
    sched = DockerLauncher(args.containers, args.image, args.network.upper())
    info = FrameworkInfo(user="", name="docker-launch-benchmark")
    return await drive(
        sched, info, master, args.timeout,
        lambda: f"timed out after {args.timeout}s with {len(sched.running)} running")


def measure_mesoslite(args: argparse.Namespace, root: Path, api: docker.APIClient
                      ) -> dict[str, Any]:
    """Launch the containers through a fresh cluster; remove them afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    cpus = max(8.0, args.containers * PER_TASK.cpus * 2)
    mem = max(4096.0, args.containers * PER_TASK.mem * 2)
    # One master and one Docker-enabled agent.
    cluster = Cluster(root, 1, f"cpus:{cpus:g};mem:{mem:g};disk:10000", args.log_level,
                      agent_args=["--containerizers", "docker,process"])
    scope = ""
    try:
        cluster.start()
        scope = os.path.realpath(cluster.agent_dir())  # the agent's Docker scope
        sched = asyncio.run(_run_launcher(cluster.master_address, args))
    finally:
        cluster.stop()
        if scope:
            remove_labelled(api, f"{SCOPE_LABEL}={scope}")
    out: dict[str, Any] = {"running": len(sched.running), "problems": sched.problems[:5]}
    if sched.all_running_at is not None and sched.launch_at is not None:
        out["seconds"] = round(sched.all_running_at - sched.launch_at, 3)
        out["first_offer_to_running_s"] = round(
            sched.all_running_at - (sched.first_offer_at or sched.launch_at), 3)
    return out


# ---------------------------------------------------------------- raw SDK


def measure_sdk(args: argparse.Namespace, api: docker.APIClient, parallel: int = 1
                ) -> dict[str, Any]:
    """Create and start the containers with the SDK, ``parallel`` at a time (1: one after
    another); remove them afterwards."""
    tag = uuid.uuid4().hex[:8]
    label = f"{BENCH_LABEL}=sdk-{tag}"
    host_config = api.create_host_config(network_mode=args.network)

    def one(i: int) -> None:
        created = api.create_container(
            args.image, ["sleep", "600"], name=f"mesoslite-bench-sdk-{tag}-{i}",
            labels={BENCH_LABEL: f"sdk-{tag}"}, host_config=host_config, detach=True,
        )
        api.start(created["Id"])

    started = time.perf_counter()
    try:
        if parallel == 1:
            for i in range(args.containers):
                one(i)
        else:
            with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
                list(pool.map(one, range(args.containers)))
        seconds = time.perf_counter() - started
        running = len(api.containers(filters={"label": label, "status": "running"}))
    finally:
        remove_labelled(api, label)
    return {"seconds": round(seconds, 3), "running": running, "parallel": parallel}


# ---------------------------------------------------------------- swarm


def _docker_cli(*argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    return subprocess.run([cli, *argv], capture_output=True, text=True, timeout=timeout,
                          check=False)


def swarm_state(api: docker.APIClient) -> str:
    """The engine's swarm node state (``inactive``, ``active``, ...)."""
    return str((api.info().get("Swarm") or {}).get("LocalNodeState", "unknown"))


def measure_swarm(args: argparse.Namespace, api: docker.APIClient) -> dict[str, Any]:
    """``docker service create --replicas N`` until N tasks run; the service removed afterwards."""
    before = swarm_state(api)
    joined_here = False
    if before != "active":
        init = _docker_cli("swarm", "init", "--advertise-addr", "127.0.0.1")
        if init.returncode != 0:
            return {"error": f"docker swarm init failed (node state {before}): "
                             f"{(init.stderr or init.stdout).strip()}"}
        joined_here = True
    name = f"mesoslite-bench-{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {"swarm_was_active": before == "active"}
    try:
        network = ["--network", "host"] if args.network == "host" else []
        started = time.perf_counter()
        create = _docker_cli(
            "service", "create", "--detach", "--no-resolve-image", "--name", name,
            "--replicas", str(args.containers), "--restart-condition", "none",
            "--container-label", f"{BENCH_LABEL}=swarm", *network, args.image, "sleep", "600",
        )
        if create.returncode != 0:
            out["error"] = f"docker service create failed: {(create.stderr or '').strip()}"
            return out
        out["create_returned_s"] = round(time.perf_counter() - started, 3)
        deadline = time.monotonic() + args.timeout
        running = 0
        while running < args.containers:
            tasks = api.tasks(filters={"service": name})
            running = sum(1 for t in tasks if (t.get("Status") or {}).get("State") == "running")
            failed = [t for t in tasks if (t.get("Status") or {}).get("State") in
                      ("failed", "rejected")]
            if failed:
                out["error"] = f"swarm task failed: {failed[0]['Status'].get('Err', '?')}"
                return out
            if time.monotonic() > deadline:
                out["error"] = f"only {running} of {args.containers} running after {args.timeout}s"
                return out
            if running < args.containers:
                time.sleep(0.05)
        out["seconds"] = round(time.perf_counter() - started, 3)
        out["running"] = running
        return out
    finally:
        _docker_cli("service", "rm", name)
        with contextlib.suppress(Exception):
            remove_labelled(api, f"com.docker.swarm.service.name={name}")
        if joined_here:
            leave = _docker_cli("swarm", "leave", "--force")
            if leave.returncode != 0:
                out["leave_error"] = leave.stderr.strip()


# --------------------------------------------------------------------- main


def ensure_engine() -> str:
    """Run scripts/ensure-docker.sh; return the test image name (raises on failure)."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")],
                            capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/ensure-docker.sh failed: {result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line (exit status 2 on a usage error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=50,
                        help="containers per measurement (default 50)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure everything this many times; medians reported (default 1)")
    parser.add_argument("--network", default="host", choices=("host", "bridge"),
                        help="network mode of every container (default host)")
    parser.add_argument("--image", default="",
                        help="a local image with sleep (default: the test image of "
                             "scripts/ensure-docker.sh)")
    parser.add_argument("--no-swarm", dest="swarm", action="store_false",
                        help="skip the Docker Swarm measurement")
    parser.add_argument("--log-level", default="INFO",
                        help="log level of the master and the agent (default INFO)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds allowed per measurement (default 180)")
    parser.add_argument("--work-dir", default="",
                        help="directory to create the cluster's temporary directory in")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs, sandboxes) and print its path")
    args = parser.parse_args(argv)
    check_at_least(parser, args, ("containers", "repeat"))
    return args


def _median(runs: list[dict[str, Any]], way: str) -> float | None:
    values = [r[way]["seconds"] for r in runs if "seconds" in r.get(way, {})]
    return round(statistics.median(values), 3) if values else None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the JSON result; return the exit status."""
    args = parse_args(argv)
    set_progress_tag("docker_launch")
    started = time.monotonic()
    restore_sigterm = sigterm_as_interrupt()
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="mesoslite-docker-launch-", dir=args.work_dir or None))
    api: docker.APIClient | None = None
    try:
        args.image = args.image or ensure_engine()
        api = api_client()
        ways = ["mesoslite", "sdk", "sdk_parallel", *(["swarm"] if args.swarm else [])]
        for i in range(args.repeat):
            order = ways[i % len(ways):] + ways[:i % len(ways)]  # no way always goes first
            run: dict[str, Any] = {"order": order}
            for way in order:
                say(f"run {i + 1}/{args.repeat}: {args.containers} containers, {way}")
                if way == "mesoslite":
                    run[way] = measure_mesoslite(args, base / f"run{i}", api)
                    problems += run[way]["problems"]
                elif way == "sdk":
                    run[way] = measure_sdk(args, api)
                elif way == "sdk_parallel":
                    run[way] = measure_sdk(args, api, SDK_PARALLEL)
                else:
                    run[way] = measure_swarm(args, api)
                say(f"run {i + 1}/{args.repeat}: {way} {run[way]}")
            mine = run["mesoslite"].get("seconds")
            for way in ("sdk", "swarm"):
                theirs = run.get(way, {}).get("seconds")
                if mine and theirs:
                    run[f"ratio_{way}"] = round(mine / theirs, 3)
            runs.append(run)
    except KeyboardInterrupt:
        say("interrupted; cleaning up")
        problems.append("interrupted")
    except Exception as exc:  # noqa: BLE001 - reported, then cleaned up
        problems.append(failure(exc))
    finally:
        restore_sigterm()
        if api is not None:
            with contextlib.suppress(Exception):
                remove_labelled(api, BENCH_LABEL)
        remove_or_keep(base, args.keep)
    mesoslite_s = _median(runs, "mesoslite")
    sdk_s = _median(runs, "sdk")
    sdk_parallel_s = _median(runs, "sdk_parallel")
    swarm_s = _median(runs, "swarm")
    swarm_errors = [r["swarm"]["error"] for r in runs if "error" in r.get("swarm", {})]
    ratio_sdk = round(mesoslite_s / sdk_s, 3) if mesoslite_s and sdk_s else None
    ratio_swarm = round(mesoslite_s / swarm_s, 3) if mesoslite_s and swarm_s else None
    all_ran = bool(runs) and all(
        r[way].get("running") == args.containers
        for r in runs for way in ("mesoslite", "sdk", "sdk_parallel")) and not problems
    out = {
        "benchmark": "docker_launch",
        "containers": args.containers,
        "image": args.image,
        "network": args.network,
        "repeat": args.repeat,
        "mesoslite_s": mesoslite_s,
        "sdk_s": sdk_s,
        "sdk_parallel_s": sdk_parallel_s,
        "swarm_s": swarm_s,
        "swarm_error": swarm_errors[0] if swarm_errors else (
            None if args.swarm else "not measured (--no-swarm)"),
        "ratio_sdk": ratio_sdk,
        "goal_ratio_sdk": GOAL_SDK,
        "met_sdk": ratio_sdk is not None and ratio_sdk <= GOAL_SDK,
        "ratio_swarm": ratio_swarm,
        "goal_ratio_swarm": GOAL_SWARM,
        "met_swarm": ratio_swarm is not None and ratio_swarm <= GOAL_SWARM,
        "all_ran": all_ran,
        "problems": problems[:10],
        "runs": runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **run_facts(started),
    }
    print_report(out)
    return 0 if all_ran else 1


if __name__ == "__main__":
    sys.exit(main())
