"""The pure parts of ``mesoslite ctl`` for apps: tables, errors, versions, progress, waiting."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from typing import Any

import pytest

from mesoslite.ctl.apps import (
    WaitOptions,
    cmd_deploy,
    cmd_destroy,
    cmd_scale,
    load_definition,
    wait_deployment,
)
from mesoslite.ctl.apps_api import MarathonApiError, describe_api_error
from mesoslite.ctl.apps_view import (
    Progress,
    ProgressView,
    choose_rollback_version,
    format_app,
    format_apps,
    progress_from,
    render_bar,
    render_line,
)
from mesoslite.ctl.common import CtlError
from mesoslite.ctl.main import add_ctl_parser
from mesoslite.testing.clock import FakeClock

V1, V2, V3 = "2026-01-02T03:04:05.000Z", "2026-01-02T03:05:00.000Z", "2026-01-02T03:06:00.000Z"
HC = [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1,
       "gracePeriodSeconds": 10, "maxConsecutiveFailures": 3}]


def _task(n: int, state: str = "TASK_RUNNING", alive: bool | None = True,
          version: str = V1) -> dict[str, Any]:
    task: dict[str, Any] = {"id": f"web.instance-{n}._app.1", "appId": "/web",
                            "host": "127.0.0.1", "ports": [31000 + n], "state": state,
                            "version": version}
    task["healthCheckResults"] = [] if alive is None else [{"alive": alive}]
    return task


def _app(tasks: list[dict[str, Any]], instances: int = 2, checks: bool = True,
         config: str = V1, **extra: Any) -> dict[str, Any]:
    app = {"id": "/web", "cmd": "python3 -m http.server $PORT0", "instances": instances,
           "cpus": 0.1, "mem": 64.0, "disk": 0, "ports": [10000],
           "healthChecks": HC if checks else [], "version": config,
           "versionInfo": {"lastConfigChangeAt": config, "lastScalingAt": config},
           "tasks": tasks, "deployments": [],
           "tasksRunning": sum(t["state"] == "TASK_RUNNING" for t in tasks),
           "tasksHealthy": sum(bool(t["healthCheckResults"]) and
                               t["healthCheckResults"][0]["alive"] for t in tasks),
           "tasksUnhealthy": 0, "tasksStaged": 0}
    app.update(extra)
    return app


def _deployment(dep_id: str, action: str = "ScaleApplication") -> dict[str, Any]:
    return {"id": dep_id, "version": V2, "affectedApps": ["/web"], "currentStep": 1,
            "totalSteps": 1, "steps": [{"actions": [{"action": action, "app": "/web"}]}],
            "currentActions": [{"action": action, "app": "/web"}]}


class FakeApi:
    """Answers requests from a table of (method, path) -> answer or callable."""

    def __init__(self, routes: dict[tuple[str, str], Any]) -> None:
        self.routes = routes
        self.calls: list[tuple[str, str, Any, dict[str, str] | None]] = []

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
        """Record the call and answer it."""
        self.calls.append((method, path, body, query))
        answer = self.routes[(method, path)]
        if callable(answer):
            answer = answer()
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, tuple):
            return answer
        return answer, {}


def _not_found(path: str) -> MarathonApiError:
    return MarathonApiError("GET", path, 404, {"message": f"App '{path}' does not exist"})


def test_apps_table_shows_counts_health_deployments_and_command() -> None:
    """`ctl apps` rows: running/wanted, healthy/unhealthy or '-', short deployment ids, image."""
    web = _app([_task(1), _task(2, alive=False)], instances=3,
               deployments=[{"id": "0123456789abcdef"}], tasksUnhealthy=1)
    db = {"id": "/db", "instances": 1, "tasksRunning": 0, "cpus": 1, "mem": 128,
          "healthChecks": [], "container": {"docker": {"image": "redis:7"}}}
    lines = format_apps([web, db]).splitlines()
    assert lines[0].split() == ["ID", "INSTANCES", "HEALTH", "CPUS", "MEM", "DEPLOYMENTS",
                                "CMD/IMAGE"]
    assert lines[1].split()[:6] == ["/db", "0/1", "-", "1", "128", "-"]
    assert "image redis:7" in lines[1]
    assert lines[2].split()[:6] == ["/web", "2/3", "1/1", "0.1", "64", "01234567"]
    assert lines[2].endswith("python3 -m http.server $PORT0")


def test_apps_table_clips_long_commands() -> None:
    """A long command is cut to a fixed width ending with '...'."""
    app = _app([], cmd="x" * 200)
    row = format_apps([app]).splitlines()[1]
    assert row.endswith("...") and len(row) < 150


def test_app_view_lists_tasks_with_address_state_and_health() -> None:
    """`ctl app` shows fields, the health check, and one task row with host:ports and health."""
    app = _app([_task(1), _task(2, alive=None, state="TASK_STAGING")])
    text = format_app(app)
    assert "MESOS_HTTP port index 0 / every 1s" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.startswith("web.instance")}
    assert rows["web.instance-1._app.1"][1:4] == ["127.0.0.1:31001", "TASK_RUNNING", "healthy"]
    assert rows["web.instance-2._app.1"][1:4] == ["127.0.0.1:31002", "TASK_STAGING", "unknown"]


def test_api_error_text_names_fields_and_suggests_force_on_409() -> None:
    """422 details become one line per field; 409 names the deployment and suggests --force."""
    text = describe_api_error("POST", "/v2/apps", 422, {
        "message": "Object is not valid",
        "details": [{"path": "/cpus", "errors": ["got -1, expected 0 or more"]}]})
    assert text.splitlines() == ["POST /v2/apps: HTTP 422: Object is not valid",
                                 "  /cpus: got -1, expected 0 or more"]
    locked = describe_api_error("PUT", "/v2/apps/web", 409, {
        "message": "App is locked", "deployments": [{"id": "d-1"}]})
    assert "d-1" in locked and "--force" in locked
    assert "HTTP 502: bad gateway" in describe_api_error("GET", "/v2/apps", 502, "bad gateway")


def test_rollback_defaults_to_the_version_before_the_current_one() -> None:
    """Without a version, the newest stored version older than the current one is chosen."""
    assert choose_rollback_version([V1, V3, V2], V3) == V2
    assert choose_rollback_version([V3, V2, V1], V2) == V1


def test_rollback_checks_a_requested_version() -> None:
    """A requested version must be stored and differ from the current one."""
    assert choose_rollback_version([V3, V2, V1], V3, V1) == V1
    with pytest.raises(CtlError, match="not stored"):
        choose_rollback_version([V3, V2], V3, V1)
    with pytest.raises(CtlError, match="already the current"):
        choose_rollback_version([V3, V2], V3, V3)


def test_rollback_without_an_older_version_fails_clearly() -> None:
    """An app with a single version has nothing to roll back to."""
    with pytest.raises(CtlError, match="no version older"):
        choose_rollback_version([V1], V1)


def test_progress_counts_healthy_tasks_when_the_app_has_checks() -> None:
    """With health checks only healthy running tasks are ready; without, running ones are."""
    tasks = [_task(1), _task(2, alive=False), _task(3, state="TASK_STAGING", alive=None)]
    checked = progress_from("/web", _app(tasks, instances=3), _deployment("d"))
    assert (checked.ready, checked.wanted, checked.running, checked.staged) == (1, 3, 2, 1)
    assert checked.actions == ("ScaleApplication",) and checked.word == "healthy"
    plain = progress_from("/web", _app(tasks, instances=3, checks=False), None)
    assert (plain.ready, plain.word) == (2, "running")


def test_progress_of_a_restart_counts_only_tasks_of_the_new_configuration() -> None:
    """During a RestartApplication step old-config tasks are not ready; after it, all count."""
    tasks = [_task(1, version=V1), _task(2, version=V1), _task(3, version=V2)]
    app = _app(tasks, config=V2)
    assert progress_from("/web", app, _deployment("d", "RestartApplication")).ready == 1
    assert progress_from("/web", app, _deployment("d", "ScaleApplication")).ready == 3


def test_progress_of_a_destroy_counts_stopped_tasks_against_the_baseline() -> None:
    """For a destroy, ready is the number of tasks stopped since the start."""
    p = progress_from("/web", _app([_task(1)]), _deployment("d", "StopApplication"),
                      removing=True, baseline=3)
    assert (p.ready, p.wanted, p.word) == (2, 3, "stopped")
    assert progress_from("/web", None, None, removing=True, baseline=3).ready == 3


def test_progress_renderings() -> None:
    """The line names counts and step; the bar is filled in proportion and capped at full."""
    p = Progress("/web", 4, 1, 3, 1, True, step=2, total_steps=2, actions=("ScaleApplication",))
    assert render_line(p) == ("/web: 1/4 healthy (3 running, 1 staged); "
                              "step 2/2 ScaleApplication")
    assert render_bar(p, width=8).startswith("/web [##------] 1/4 healthy")
    over = Progress("/web", 2, 3, 3, 0, True)
    assert render_bar(over, width=4).startswith("/web [####] 3/2")


def test_progress_view_prints_one_line_per_change_off_a_terminal() -> None:
    """Off a terminal, identical snapshots print once and each change prints a line."""
    out = io.StringIO()
    view = ProgressView(out, tty=False)
    a, b = Progress("/web", 2, 0, 1, 1, True), Progress("/web", 2, 1, 2, 0, True)
    for p in (a, a, b, b):
        view.update(p)
    assert out.getvalue().splitlines() == [render_line(a), render_line(b)]


def test_progress_view_redraws_in_place_on_a_terminal() -> None:
    """On a terminal the bar is redrawn with a carriage return and ended with a newline."""
    out = io.StringIO()
    view = ProgressView(out, tty=True)
    view.update(Progress("/web", 2, 0, 1, 1, True))
    view.update(Progress("/web", 2, 2, 2, 0, True))
    view.note("done")
    text = out.getvalue()
    assert text.count("\r") == 2 and "\n" not in text.split("done")[0][:-1]
    assert text.endswith("\x1b[K\ndone\n")


def _waiting_api(polls_until_done: int, app: Callable[[], Any],
                 dep: dict[str, Any] | None = None) -> FakeApi:
    dep = dep or _deployment("d-1")
    seen = {"n": 0}

    def deployments() -> list[dict[str, Any]]:
        seen["n"] += 1
        return [dep] if seen["n"] <= polls_until_done else []

    return FakeApi({("GET", "/v2/deployments"): deployments, ("GET", "/v2/apps/web"): app})


def test_wait_returns_0_when_the_deployment_is_gone() -> None:
    """Waiting polls until the deployment disappears and reports the app's final counts."""
    clock, out = FakeClock(), io.StringIO()
    states = iter([_app([_task(1)]), _app([_task(1)]), _app([_task(1), _task(2)])])
    api = _waiting_api(2, lambda: {"app": next(states)})
    rc = wait_deployment(api, "/web", "d-1", out, tty=False, timeout=60, clock=clock,
                         sleep=clock.advance, interval=1)
    lines = out.getvalue().splitlines()
    assert rc == 0
    assert lines[0] == "/web: 1/2 healthy (1 running, 0 staged); step 1/1 ScaleApplication"
    assert lines[-1] == "deployment d-1 finished in 2.0s: /web 2 of 2 running, 2 healthy"


def test_wait_times_out_naming_the_deployment() -> None:
    """A deployment still there after the timeout is a CtlError naming it and its progress."""
    clock, out = FakeClock(), io.StringIO()
    api = _waiting_api(10**6, lambda: {"app": _app([_task(1)])})
    with pytest.raises(CtlError, match=r"deployment d-1 of /web did not finish within 5s"
                                       r".*1/2 healthy"):
        wait_deployment(api, "/web", "d-1", out, tty=False, timeout=5, clock=clock,
                        sleep=clock.advance, interval=1)
    assert clock.monotonic() - 1_000_000.0 == pytest.approx(5)


def test_wait_reports_a_deployment_replaced_by_another() -> None:
    """A deployment gone while the app is in another one (forced change) exits 1."""
    clock, out = FakeClock(), io.StringIO()
    api = _waiting_api(0, lambda: {"app": _app([_task(1)], deployments=[{"id": "d-2"}])})
    rc = wait_deployment(api, "/web", "d-1", out, tty=False, clock=clock, sleep=clock.advance)
    assert rc == 1 and "replaced by deployment(s) d-2" in out.getvalue()


def test_wait_retries_through_a_transient_error() -> None:
    """A failed poll is reported once and retried until the deployment is gone."""
    clock, out = FakeClock(), io.StringIO()
    answers = iter([CtlError("cannot connect"), {"app": _app([_task(1), _task(2)])}])
    api = _waiting_api(0, lambda: next(answers))
    rc = wait_deployment(api, "/web", "d-1", out, tty=False, clock=clock, sleep=clock.advance)
    assert rc == 0 and "(retrying: cannot connect)" in out.getvalue()


def test_ctrl_c_while_waiting_leaves_the_deployment_running() -> None:
    """Ctrl-C while waiting returns 130 and says the deployment keeps running."""
    out = io.StringIO()
    api = _waiting_api(10**6, lambda: {"app": _app([_task(1)])})

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    rc = wait_deployment(api, "/web", "d-1", out, tty=True, sleep=interrupt)
    assert rc == 130 and "deployment d-1 of /web keeps running" in out.getvalue()


def test_destroy_waits_until_the_app_is_gone() -> None:
    """Destroy counts the tasks before the DELETE and succeeds once the app is 404."""
    out = io.StringIO()
    answers = iter([{"app": _app([_task(1), _task(2)])}, _not_found("/v2/apps/web")])
    api = _waiting_api(0, lambda: next(answers))
    api.routes[("DELETE", "/v2/apps/web")] = {"deploymentId": "d-1", "version": V2}
    rc = cmd_destroy(api, out, "web", True, WaitOptions())
    assert rc == 0 and api.calls[1][3] == {"force": "true"}
    assert "/web: 2/2 stopped" in out.getvalue() and "/web destroyed" in out.getvalue()


def test_deploy_posts_a_new_app_and_replaces_an_existing_one() -> None:
    """deploy POSTs when GET says 404, else PUTs the whole definition (partial=false)."""
    definition = {"id": "web", "cmd": "sleep 100"}
    new = FakeApi({("GET", "/v2/apps/web"): _not_found("/v2/apps/web"),
                   ("POST", "/v2/apps"): ({"id": "/web"}, {"marathon-deployment-id": "d-9"})})
    out = io.StringIO()
    assert cmd_deploy(new, out, definition, False, WaitOptions(wait=False)) == 0
    assert new.calls[1][:3] == ("POST", "/v2/apps", {"id": "/web", "cmd": "sleep 100"})
    assert out.getvalue() == "/web: created: deployment d-9\n"
    old = FakeApi({("GET", "/v2/apps/web"): {"app": _app([])},
                   ("PUT", "/v2/apps/web"): {"deploymentId": "d-10", "version": V2}})
    assert cmd_deploy(old, io.StringIO(), definition, True, WaitOptions(wait=False)) == 0
    assert old.calls[1][3] == {"partial": "false", "force": "true"}


def test_scale_of_a_missing_app_is_a_404_not_a_create() -> None:
    """scale checks the app exists before the PUT (which would create it)."""
    api = FakeApi({("GET", "/v2/apps/nope"): _not_found("/v2/apps/nope")})
    with pytest.raises(MarathonApiError, match="HTTP 404"):
        cmd_scale(api, io.StringIO(), "/nope", 3, False, WaitOptions())
    assert [c[0] for c in api.calls] == ["GET"]


def test_definition_file_errors_name_the_problem(tmp_path) -> None:
    """A missing file, bad JSON, a non-object or a missing id each get a clear error."""
    with pytest.raises(CtlError, match="cannot read"):
        load_definition(str(tmp_path / "none.json"), io.StringIO())
    with pytest.raises(CtlError, match="not valid JSON"):
        load_definition("-", io.StringIO("{nope"))
    with pytest.raises(CtlError, match="expected one app definition"):
        load_definition("-", io.StringIO("[]"))
    with pytest.raises(CtlError, match="field 'id'"):
        load_definition("-", io.StringIO('{"cmd": "x"}'))
    assert load_definition("-", io.StringIO('{"id": "/a"}')) == {"id": "/a"}


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_ctl_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["ctl", *argv])


def test_marathon_address_from_flag_before_or_after_the_command_or_env(monkeypatch) -> None:
    """--marathon works on ctl or on the sub-command; MESOSLITE_MARATHON is the default."""
    assert _parse("--marathon", "h:1", "apps").marathon == "h:1"
    assert _parse("apps", "--marathon", "h:2").marathon == "h:2"
    monkeypatch.setenv("MESOSLITE_MARATHON", "h:3")
    assert _parse("scale", "/web", "2").marathon == "h:3"
    monkeypatch.delenv("MESOSLITE_MARATHON")
    args = _parse("rollback", "/web", "--no-wait", "--timeout", "5")
    assert (args.marathon, args.version, args.no_wait, args.timeout) == \
        ("http://127.0.0.1:8080", None, True, 5.0)


def test_bad_instances_or_timeout_exit_2(capsys) -> None:
    """A negative instance count or a non-positive timeout is refused by the parser."""
    for argv in (("scale", "/web", "-1"), ("scale", "/web", "two"),
                 ("restart", "/web", "--timeout", "0")):
        with pytest.raises(SystemExit) as exc:
            _parse(*argv)
        assert exc.value.code == 2
    assert "expected" in capsys.readouterr().err
