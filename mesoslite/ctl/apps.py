"""``mesoslite ctl apps|app|deploy|scale|restart|rollback|destroy``: apps of the Marathon-style
framework from the command line.

Owns the app sub-commands of ``ctl``, their parser (:func:`add_app_parsers`)
and their run (:func:`run_app_command`), and the wait for a deployment
(:func:`wait_deployment`: a bar on a terminal, one line per change otherwise).
The framework address comes from ``--marathon`` or ``MESOSLITE_MARATHON``
(``http://127.0.0.1:8080`` by default; ``host:port`` is accepted).  The REST
API client is :mod:`mesoslite.ctl.apps_api`; the tables, the rollback-version
choice and the progress rendering live in :mod:`mesoslite.ctl.apps_view` (no I/O of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from mesoslite.ctl.apps_api import ApiClient, MarathonApiError, MarathonClient, api_get, app_path
from mesoslite.ctl.apps_view import (
    ACTIVE_STATES,
    Progress,
    ProgressView,
    choose_rollback_version,
    format_app,
    format_apps,
    normalize_app_id,
    progress_from,
    render_line,
)
from mesoslite.ctl.common import CtlError, guarded

DEFAULT_MARATHON = "http://127.0.0.1:8080"
#: The ``ctl`` sub-commands this module answers.
APP_COMMANDS = frozenset({"apps", "app", "deploy", "scale", "restart", "rollback", "destroy"})
#: How long a mutating command waits for its deployment by default (seconds).
DEFAULT_TIMEOUT = 600.0
#: Seconds between two looks at a running deployment.
POLL_INTERVAL = 0.5


class Clock(Protocol):
    """A monotonic time source (``time`` module, or a FakeClock in tests)."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...


def _deployment(deployments: Any, deployment_id: str) -> dict[str, Any] | None:
    if not isinstance(deployments, list):
        raise CtlError("GET /v2/deployments: expected a JSON array")
    return next((d for d in deployments if isinstance(d, dict) and d.get("id") == deployment_id),
                None)


def _app_or_none(client: ApiClient, app_id: str) -> dict[str, Any] | None:
    try:
        answer = api_get(client, app_path(app_id))
    except MarathonApiError as exc:
        if exc.status == 404:
            return None
        raise
    if not isinstance(answer, dict) or not isinstance(answer.get("app"), dict):
        raise CtlError(f"GET {app_path(app_id)}: expected {{\"app\": {{...}}}}")
    app: dict[str, Any] = answer["app"]
    return app


def wait_deployment(client: ApiClient, app_id: str, deployment_id: str, out: TextIO, *,
                    tty: bool, timeout: float = DEFAULT_TIMEOUT, removing: bool = False,
                    baseline: int | None = None, clock: Clock = time,
                    sleep: Callable[[float], None] = time.sleep,
                    interval: float = POLL_INTERVAL) -> int:
    """Show the deployment's progress until it is gone; 0 on success, 1 when it ended without
    its effect, 130 on Ctrl-C (the deployment keeps running).  CtlError on timeout.

    ``baseline`` (destroy only) is the number of tasks before the change; by default, the
    number seen at the first look.
    """
    view = ProgressView(out, tty)
    start = clock.monotonic()
    last = Progress(app_id, 0, 0, 0, 0, False)
    problem = ""
    try:
        while True:
            try:
                deployment = _deployment(api_get(client, "/v2/deployments"), deployment_id)
                app = _app_or_none(client, app_id)
                problem = ""
            except CtlError as exc:  # e.g. a leader change: keep trying until the deadline
                if not problem:
                    view.note(f"(retrying: {str(exc).splitlines()[0]})")
                problem = str(exc)
            else:
                if baseline is None:
                    baseline = len([t for t in (app or {}).get("tasks") or []
                                    if t.get("state") in ACTIVE_STATES])
                last = progress_from(app_id, app, deployment, removing, baseline)
                view.update(last)
                if deployment is None:
                    return _finished(view, app_id, deployment_id, app, removing,
                                     clock.monotonic() - start)
            if clock.monotonic() - start >= timeout:
                view.close()
                why = f"; last error: {problem}" if problem else f"; now {render_line(last)}"
                raise CtlError(f"deployment {deployment_id} of {app_id} did not finish within "
                               f"{timeout:g}s (it keeps running{why}); see GET "
                               f"/v2/deployments, cancel it with DELETE "
                               f"/v2/deployments/{deployment_id}")
            sleep(interval)
    except KeyboardInterrupt:
        view.note(f"interrupted: deployment {deployment_id} of {app_id} keeps running; "
                  f"follow it with `mesoslite ctl app {app_id}`")
        return 130


def _finished(view: ProgressView, app_id: str, deployment_id: str, app: dict[str, Any] | None,
              removing: bool, elapsed: float) -> int:
    """Report the end of a deployment; 1 when it ended without its effect."""
    others = [str(d.get("id")) for d in (app or {}).get("deployments") or []
              if d.get("id") != deployment_id]
    if removing:
        if app is None:
            view.note(f"deployment {deployment_id} finished in {elapsed:.1f}s: "
                      f"{app_id} destroyed")
            return 0
        view.note(f"deployment {deployment_id} ended but {app_id} still exists "
                  f"(cancelled or rolled back?)")
        return 1
    if app is None:
        view.note(f"deployment {deployment_id} ended but {app_id} no longer exists")
        return 1
    if others:
        view.note(f"deployment {deployment_id} ended: it was replaced by deployment(s) "
                  f"{', '.join(others)} (a forced change or a rollback)")
        return 1
    counts = f"{app.get('tasksRunning', 0)} of {app.get('instances', 0)} running"
    if app.get("healthChecks"):
        counts += f", {app.get('tasksHealthy', 0)} healthy"
    view.note(f"deployment {deployment_id} finished in {elapsed:.1f}s: {app_id} {counts}")
    return 0


# ------------------------------------------------------------------ commands
def _apps_list(client: ApiClient) -> list[dict[str, Any]]:
    answer = api_get(client, "/v2/apps", {"embed": "apps.counts"})
    if not isinstance(answer, dict) or not isinstance(answer.get("apps"), list):
        raise CtlError("GET /v2/apps: expected {\"apps\": [...]}")
    apps: list[dict[str, Any]] = answer["apps"]
    return apps


def cmd_apps(client: ApiClient, out: TextIO, as_json: bool) -> int:
    """Print every app (a table, or the API's JSON)."""
    apps = _apps_list(client)
    out.write(json.dumps({"apps": apps}, indent=2) if as_json else format_apps(apps))
    out.write("\n")
    return 0


def cmd_app(client: ApiClient, out: TextIO, app_id: str, as_json: bool) -> int:
    """Print one app with its tasks."""
    app = api_get(client, app_path(app_id))
    if not isinstance(app, dict) or not isinstance(app.get("app"), dict):
        raise CtlError(f"GET {app_path(app_id)}: expected {{\"app\": {{...}}}}")
    out.write(json.dumps(app, indent=2) if as_json else format_app(app["app"]))
    out.write("\n")
    return 0


def load_definition(source: str, stdin: TextIO) -> dict[str, Any]:
    """An app definition from a JSON file (``-``: standard input); CtlError naming the
    problem."""
    name = "standard input" if source == "-" else source
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CtlError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CtlError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CtlError(f"{name}: expected one app definition (a JSON object), "
                       f"got {type(value).__name__}")
    if not isinstance(value.get("id"), str) or not value["id"].strip("/ "):
        raise CtlError(f"{name}: field 'id': expected an app id string such as \"/web\", "
                       f"got {value.get('id')!r}")
    return value


def _deployment_id(answer: Any, headers: dict[str, str], what: str) -> str | None:
    """The deployment a write started (header, ``deploymentId`` or the app's deployments)."""
    if headers.get("marathon-deployment-id"):
        return headers["marathon-deployment-id"]
    if isinstance(answer, dict):
        if isinstance(answer.get("deploymentId"), str):
            return str(answer["deploymentId"])
        deployments = answer.get("deployments")
        if isinstance(deployments, list) and deployments and isinstance(deployments[0], dict):
            return str(deployments[0].get("id"))
        if "deploymentId" in answer:
            return None
    raise CtlError(f"{what}: the answer names no deployment")


@dataclass(frozen=True)
class WaitOptions:
    """How a mutating command waits for its deployment."""

    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT
    tty: bool = False


def _follow(client: ApiClient, out: TextIO, app_id: str, dep_id: str | None, opts: WaitOptions,
            started: str, removing: bool = False, baseline: int | None = None) -> int:
    if dep_id is None:
        out.write(f"{started}: nothing to do (no deployment)\n")
        return 0
    out.write(f"{started}: deployment {dep_id}\n")
    out.flush()
    if not opts.wait:
        return 0
    return wait_deployment(client, app_id, dep_id, out, tty=opts.tty, timeout=opts.timeout,
                           removing=removing, baseline=baseline)


def _force(force: bool) -> dict[str, str]:
    return {"force": "true"} if force else {}


def cmd_deploy(client: ApiClient, out: TextIO, definition: dict[str, Any], force: bool,
               opts: WaitOptions) -> int:
    """Create the app (POST /v2/apps) or replace its definition (PUT /v2/apps/{id})."""
    app_id = normalize_app_id(definition["id"])
    body = {**definition, "id": app_id}
    if _app_or_none(client, app_id) is None:
        answer, headers = client.request("POST", "/v2/apps", body, _force(force))
        started = f"{app_id}: created"
    else:
        answer, headers = client.request("PUT", app_path(app_id), body,
                                         {"partial": "false", **_force(force)})
        started = f"{app_id}: updated"
    dep_id = _deployment_id(answer, headers, f"deploy {app_id}")
    return _follow(client, out, app_id, dep_id, opts, started)


def cmd_scale(client: ApiClient, out: TextIO, app_id: str, instances: int, force: bool,
              opts: WaitOptions) -> int:
    """Set the app's number of instances."""
    app_id = normalize_app_id(app_id)
    api_get(client, app_path(app_id))  # a PUT would create a missing app: 404 first
    answer, headers = client.request("PUT", app_path(app_id), {"instances": instances},
                                     _force(force))
    return _follow(client, out, app_id, _deployment_id(answer, headers, f"scale {app_id}"),
                   opts, f"{app_id}: scaling to {instances}")


def cmd_restart(client: ApiClient, out: TextIO, app_id: str, force: bool,
                opts: WaitOptions) -> int:
    """Replace every instance of the app (rolling, under its upgradeStrategy)."""
    app_id = normalize_app_id(app_id)
    answer, headers = client.request("POST", app_path(app_id) + "/restart", None, _force(force))
    return _follow(client, out, app_id, _deployment_id(answer, headers, f"restart {app_id}"),
                   opts, f"{app_id}: restarting")


def cmd_rollback(client: ApiClient, out: TextIO, app_id: str, version: str | None, force: bool,
                 opts: WaitOptions) -> int:
    """Roll the app back to ``version`` (default: the one before the current)."""
    app_id = normalize_app_id(app_id)
    current = api_get(client, app_path(app_id))
    current_version = ((current or {}).get("app") or {}).get("version")
    listed = api_get(client, app_path(app_id) + "/versions")
    versions = listed.get("versions") if isinstance(listed, dict) else None
    if not isinstance(versions, list):
        raise CtlError(f"GET {app_path(app_id)}/versions: expected {{\"versions\": [...]}}")
    target = choose_rollback_version([str(v) for v in versions], current_version, version)
    answer, headers = client.request("PUT", app_path(app_id), {"version": target}, _force(force))
    return _follow(client, out, app_id, _deployment_id(answer, headers, f"rollback {app_id}"),
                   opts, f"{app_id}: rolling back to version {target}")


def cmd_destroy(client: ApiClient, out: TextIO, app_id: str, force: bool,
                opts: WaitOptions) -> int:
    """Stop every task of the app and remove it."""
    app_id = normalize_app_id(app_id)
    before = _app_or_none(client, app_id) or {}
    tasks = [t for t in before.get("tasks") or [] if t.get("state") in ACTIVE_STATES]
    answer, headers = client.request("DELETE", app_path(app_id), None, _force(force))
    return _follow(client, out, app_id, _deployment_id(answer, headers, f"destroy {app_id}"),
                   opts, f"{app_id}: destroying", removing=True, baseline=len(tasks))


# -------------------------------------------------------------------- parser
def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _instances(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more instances, got {value}")
    return value


def add_app_parsers(ctl_parser: argparse.ArgumentParser, ctl: Any) -> None:
    """Add ``--marathon`` to ``ctl`` and the app sub-commands to its sub-parsers ``ctl``."""
    help_text = ("Marathon-style framework address (default http://127.0.0.1:8080; "
                 "env MESOSLITE_MARATHON)")
    ctl_parser.add_argument("--marathon", help=help_text,
                            default=os.environ.get("MESOSLITE_MARATHON", DEFAULT_MARATHON))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--marathon", default=argparse.SUPPRESS, help=help_text)
    change = argparse.ArgumentParser(add_help=False, parents=[common])
    change.add_argument("--force", action="store_true",
                        help="cancel a deployment that holds the app and go ahead")
    change.add_argument("--no-wait", "--no_wait", dest="no_wait", action="store_true",
                        help="return once the deployment started")
    change.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for the deployment (default 600)")
    ap = ctl.add_parser("apps", parents=[common], help="apps of the Marathon-style framework")
    ap.add_argument("--json", action="store_true", help="print the API's JSON")
    one = ctl.add_parser("app", parents=[common], help="one app and its tasks")
    one.add_argument("app_id")
    one.add_argument("--json", action="store_true", help="print the API's JSON")
    dep = ctl.add_parser("deploy", parents=[change],
                         help="create an app, or replace its definition, from a JSON file")
    dep.add_argument("file", help="app definition (JSON object with an id); - reads stdin")
    sc = ctl.add_parser("scale", parents=[change], help="set an app's number of instances")
    sc.add_argument("app_id")
    sc.add_argument("instances", type=_instances)
    rs = ctl.add_parser("restart", parents=[change], help="replace every instance (rolling)")
    rs.add_argument("app_id")
    rb = ctl.add_parser("rollback", parents=[change],
                        help="go back to an earlier version (default: the previous one)")
    rb.add_argument("app_id")
    rb.add_argument("version", nargs="?", default=None)
    ds = ctl.add_parser("destroy", parents=[change], help="stop an app's tasks and remove it")
    ds.add_argument("app_id")


def run_app_command(args: argparse.Namespace, out: TextIO = sys.stdout,
                    stdin: TextIO = sys.stdin) -> int:
    """Run one app sub-command; 1 with a message on failure, 130 on Ctrl-C."""
    return guarded(lambda: _run_app_command(args, out, stdin), out)


def _run_app_command(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    client = MarathonClient(args.marathon)
    opts = WaitOptions(not getattr(args, "no_wait", False),
                       getattr(args, "timeout", DEFAULT_TIMEOUT), out.isatty())
    force = getattr(args, "force", False)
    match args.ctl_command:
        case "apps":
            return cmd_apps(client, out, args.json)
        case "app":
            return cmd_app(client, out, args.app_id, args.json)
        case "deploy":
            return cmd_deploy(client, out, load_definition(args.file, stdin), force, opts)
        case "scale":
            return cmd_scale(client, out, args.app_id, args.instances, force, opts)
        case "restart":
            return cmd_restart(client, out, args.app_id, force, opts)
        case "rollback":
            return cmd_rollback(client, out, args.app_id, args.version, force, opts)
        case "destroy":
            return cmd_destroy(client, out, args.app_id, force, opts)
    raise CtlError(f"unknown app command {args.ctl_command!r}")
