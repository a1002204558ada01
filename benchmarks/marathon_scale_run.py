"""marathon_scale_run: part (a) of ``marathon_scale.py`` — one app to N healthy instances.

Owns: one measured run of each side on its own fresh cluster (a master and
agents as real processes, from ``bench_support.Cluster``):

* :func:`marathon_run`: a ``mesoslite marathon`` process beside the cluster
  (its ``--state_dir`` in the cluster's directory, or under
  ``--marathon-state-parent``);
  an app (``sleep 3600``, COMMAND health check ``true``) is created with 0
  instances, then scaled to N with ``PUT /v2/apps/{id}``; the clock runs from
  the PUT until ``GET /v2/apps/{id}`` reports ``tasksRunning`` and
  ``tasksHealthy`` both N (polled every ``poll`` seconds);
* :func:`sdk_run`: the same N tasks through the minimal SDK framework of
  ``marathon_scale_sdk``; the clock runs from its registration until every
  task is ``TASK_RUNNING`` with ``healthy`` true.

Each run stops its cluster (agents kill executors and tasks) before returning.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from bench_support import (
    Cluster,
    CpuMeter,
    cli_argv,
    free_port,
    remove_or_keep,
    say,
    spawn_logged,
    stop_all,
)
from marathon_scale_sdk import health_check, run_sdk

from mesoslite.resources import Resources

APP_ID = "/bench/sleep"


def app_definition(args: Any, instances: int) -> dict[str, Any]:
    """The benchmark's app: ``sleep 3600``, no host ports, one COMMAND health check."""
    return {
        "id": APP_ID,
        "cmd": args.command,
        "cpus": args.cpus,
        "mem": args.mem,
        "instances": instances,
        "portDefinitions": [],
        "healthChecks": [health_spec(args)],
    }


def health_spec(args: Any) -> dict[str, Any]:
    """Marathon's JSON of the health check both sides use."""
    return {
        "protocol": "COMMAND",
        "command": {"value": "true"},
        "gracePeriodSeconds": args.health_grace,
        "intervalSeconds": args.health_interval,
        "timeoutSeconds": args.health_timeout,
        "maxConsecutiveFailures": 3,
        "delaySeconds": args.health_delay,
    }


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """One JSON request without proxies: ``(status, decoded body or None)``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw[:500]


def new_cluster(args: Any, label: str) -> Cluster:
    """A started master and ``args.agents`` agents under a new temporary directory."""
    root = Path(tempfile.mkdtemp(prefix=f"mesoslite-marathon-scale-{label}-",
                                 dir=args.work_dir or None))
    cluster = Cluster(root, args.agents, args.agent_resources, args.log_level)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    return cluster


def discard(cluster: Cluster, keep: bool) -> None:
    """Stop ``cluster`` and (unless ``keep``) remove its directory."""
    cluster.stop()
    remove_or_keep(cluster.root, keep)


def start_marathon(cluster: Cluster, args: Any) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``mesoslite marathon`` on a free port; state under the cluster's root (or elsewhere)."""
    port = free_port()
    extra: list[str] = []
    if args.max_instances_per_offer:
        extra += ["--max_instances_per_offer", str(args.max_instances_per_offer)]
    state = (Path(tempfile.mkdtemp(prefix="marathon-state-", dir=args.marathon_state_parent))
             if args.marathon_state_parent else cluster.root / "marathon-state")
    with open(cluster.root / "marathon.log", "wb") as log:
        proc = spawn_logged(cli_argv(
            args.log_level, "marathon", "--master", cluster.master_address,
            "--http_address", "127.0.0.1", "--http_port", str(port), "--state_dir", str(state),
            *extra), log, cluster.root)
    return proc, f"http://127.0.0.1:{port}", state


def wait_subscribed(proc: subprocess.Popen[bytes], url: str, timeout: float = 30.0) -> None:
    """Until the framework has a framework id and is subscribed (``/metrics``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mesoslite marathon exited with {proc.returncode}")
        try:
            _, metrics = http("GET", f"{url}/metrics", timeout=2.0)
            gauges = (metrics or {}).get("gauges", {})
            if gauges.get("framework.subscribed", {}).get("value") == 1:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"mesoslite marathon did not subscribe within {timeout}s")


def wait_no_deployments(url: str, timeout: float) -> None:
    """Until ``GET /v2/deployments`` is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", f"{url}/v2/deployments")
        if status == 200 and body == []:
            return
        time.sleep(0.05)
    raise RuntimeError(f"deployments still running after {timeout}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def marathon_run(args: Any) -> dict[str, Any]:
    """Scale the app from 0 to ``args.instances`` through ``mesoslite marathon``; the figures."""
    cluster = new_cluster(args, "marathon")
    proc: subprocess.Popen[bytes] | None = None
    state_dir: Path | None = None
    out: dict[str, Any] = {"side": "marathon", "problems": []}
    try:
        proc, url, state_dir = start_marathon(cluster, args)
        wait_subscribed(proc, url)
        status, body = http("POST", f"{url}/v2/apps", app_definition(args, 0))
        if status != 201:
            raise RuntimeError(f"POST /v2/apps answered {status}: {body}")
        wait_no_deployments(url, 30.0)
        meter = CpuMeter(cluster)
        meter.begin()
        cpu_before = cpu_seconds(proc.pid)
        n = args.instances
        started = time.perf_counter()
        status, body = http("PUT", f"{url}/v2/apps{APP_ID}", {"instances": n})
        if status != 200:
            raise RuntimeError(f"PUT /v2/apps{APP_ID} answered {status}: {body}")
        put_s = time.perf_counter() - started
        all_running_s = None
        last: dict[str, Any] = {}
        last_say = 0.0
        deadline = time.monotonic() + args.timeout
        while True:
            status, body = http("GET", f"{url}/v2/apps{APP_ID}")
            app = (body or {}).get("app", {}) if status == 200 else {}
            now = time.perf_counter() - started
            last = {k: app.get(k) for k in ("tasksStaged", "tasksRunning", "tasksHealthy",
                                            "tasksUnhealthy")}
            if all_running_s is None and app.get("tasksRunning") == n:
                all_running_s = now
            if app.get("tasksRunning") == n and app.get("tasksHealthy") == n:
                out["seconds"] = now
                break
            if proc.poll() is not None:
                raise RuntimeError(f"mesoslite marathon exited with {proc.returncode}; {last}")
            if time.monotonic() > deadline:
                out["problems"].append(f"timed out after {args.timeout}s: {last}")
                out["seconds"] = float("nan")
                break
            if time.monotonic() - last_say > 5.0:
                last_say = time.monotonic()
                say(f"marathon: {now:.1f}s {last}")
            time.sleep(args.poll)
        meter.end()
        out.update({
            "put_answered_s": round(put_s, 4),
            "all_running_s": round(all_running_s, 3) if all_running_s is not None else None,
            "counts": last,
            "cpu_s": {**{k: round(v, 2) for k, v in meter.used.items()},
                      "marathon": round(cpu_seconds(proc.pid) - cpu_before, 2)},
            "other_processes_cpu_share": round(meter.other_share, 3),
        })
        _, metrics = http("GET", f"{url}/metrics")
        counters = (metrics or {}).get("counters", {})
        out["tasks_launched"] = counters.get("tasks.launched", {}).get("count")
    except Exception as exc:  # noqa: BLE001 - reported in the JSON
        out["problems"].append(f"{type(exc).__name__}: {exc}")
        out.setdefault("seconds", float("nan"))
    finally:
        if proc is not None:
            stop_all([proc], signal.SIGTERM, 10.0)
        discard(cluster, args.keep)
        if state_dir is not None and args.marathon_state_parent:
            shutil.rmtree(state_dir, ignore_errors=True)
    return out


def sdk_run(args: Any) -> dict[str, Any]:
    """The same tasks through the minimal SDK framework; the figures."""
    cluster = new_cluster(args, "sdk")
    out: dict[str, Any] = {"side": "sdk", "problems": []}
    try:
        per_task = Resources.from_dict({"cpus": args.cpus, "mem": args.mem})
        check = health_check(health_spec(args))
        meter = CpuMeter(cluster)
        meter.begin()
        sched = asyncio.run(run_sdk(cluster.master_address, args.instances, per_task,
                                    args.command, check, args.timeout))
        meter.end()
        out["problems"] += sched.problems
        t0 = sched.registered_at

        def since(t: float | None) -> float | None:
            return round(t - t0, 3) if t is not None and t0 is not None else None

        out.update({
            "seconds": since(sched.done_at) if sched.done_at is not None else float("nan"),
            "first_offer_s": since(sched.first_offer_at),
            "all_launched_s": since(sched.all_launched_at),
            "all_running_s": since(sched.all_running_at),
            "running": len(sched.running),
            "healthy": len(sched.healthy),
            "cpu_s": {k: round(v, 2) for k, v in meter.used.items()},
            "other_processes_cpu_share": round(meter.other_share, 3),
        })
    except Exception as exc:  # noqa: BLE001 - reported in the JSON
        out["problems"].append(f"{type(exc).__name__}: {exc}")
        out.setdefault("seconds", float("nan"))
    finally:
        discard(cluster, args.keep)
    return out
