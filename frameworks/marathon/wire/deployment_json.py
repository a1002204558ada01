"""Deployment plans in Marathon's JSON shapes, and as stored (PURE).

Owns: one element of ``GET /v2/deployments`` (:func:`render_deployment`), the
``plan`` of deployment events with its ``original``/``target`` root groups
(:func:`render_event_plan`, :func:`root_group`), the ``{"actions": [...]}``
steps, and the stored record of a plan (:func:`plan_to_record`,
:func:`plan_from_record`: the ``/deployments/<id>`` value).  The plans
themselves are ``core.deployments``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from frameworks.marathon.core.deployments import ACTIONS, DeploymentAction, DeploymentPlan
from frameworks.marathon.core.model import App
from frameworks.marathon.wire.group_json import parent_of


def render_action(action: DeploymentAction) -> dict[str, str]:
    """``{"action", "app"}`` as in Marathon's plans."""
    return {"action": action.action, "app": action.app_id}


def render_step(step: Sequence[DeploymentAction]) -> dict[str, Any]:
    """``{"actions": [...]}``: one step (also the ``currentStep`` of step events)."""
    return {"actions": [render_action(a) for a in step]}


def render_deployment(
    deployment: DeploymentPlan,
    readiness: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """One element of ``GET /v2/deployments``.

    ``currentStep`` is 1-based; ``readiness`` maps app id → readiness-check
    results (``{taskId, lastResponse, name, ready}``) for ``currentActions``.
    """
    total = len(deployment.steps)
    readiness = readiness or {}
    return {
        "id": deployment.id,
        "version": deployment.version,
        "affectedApps": list(deployment.affected_app_ids),
        "affectedPods": [],
        "steps": [render_step(step) for step in deployment.steps],
        "currentActions": [
            {**render_action(a), "readinessCheckResults": list(readiness.get(a.app_id, ()))}
            for a in deployment.current_actions
        ],
        "currentStep": min(deployment.current_step + 1, total),
        "totalSteps": total,
    }


def root_group(
    apps: Mapping[str, App], version: str, app_to_json: Callable[[App], dict[str, Any]]
) -> dict[str, Any]:
    """The root group holding ``apps``, nested by path, in Marathon's Group shape.

    Each group is ``{id, apps, groups, pods, dependencies, version}``.
    """
    group_ids = {"/"}
    for app_id in apps:
        parent = parent_of(app_id)
        while parent not in group_ids:
            group_ids.add(parent)
            parent = parent_of(parent)
    nodes: dict[str, dict[str, Any]] = {
        gid: {"id": gid, "apps": [], "groups": [], "pods": [], "dependencies": [],
              "version": version}
        for gid in group_ids
    }
    for app_id in sorted(apps):
        nodes[parent_of(app_id)]["apps"].append(app_to_json(apps[app_id]))
    for gid in sorted(group_ids - {"/"}):
        nodes[parent_of(gid)]["groups"].append(nodes[gid])
    return nodes["/"]


def render_event_plan(
    deployment: DeploymentPlan,
    app_to_json: Callable[[App], dict[str, Any]] | None = None,
    *,
    light: bool = False,
) -> dict[str, Any]:
    """The ``plan`` of deployment events: ``{id, original, target, steps, version}``.

    ``original``/``target`` are root groups (see :func:`root_group`); with
    ``light`` (``plan-format=light``) or without ``app_to_json`` they are left out.
    """
    out: dict[str, Any] = {"id": deployment.id}
    if not light and app_to_json is not None:
        out["original"] = root_group(deployment.original, deployment.version, app_to_json)
        out["target"] = root_group(deployment.target, deployment.version, app_to_json)
    out["steps"] = [render_step(step) for step in deployment.steps]
    out["version"] = deployment.version
    return out


# -- the stored record ------------------------------------------------------------------------


def plan_to_record(
    deployment: DeploymentPlan, app_to_json: Callable[[App], dict[str, Any]]
) -> dict[str, Any]:
    """A JSON-able record of ``deployment`` for the store (see :func:`plan_from_record`)."""
    return {
        "id": deployment.id,
        "version": deployment.version,
        "original": {k: app_to_json(v) for k, v in sorted(deployment.original.items())},
        "target": {k: app_to_json(v) for k, v in sorted(deployment.target.items())},
        "steps": [[render_action(a) for a in step] for step in deployment.steps],
        "currentStep": deployment.current_step,
    }


def plan_from_record(
    record: Mapping[str, Any], app_from_json: Callable[[dict[str, Any]], App]
) -> DeploymentPlan:
    """The plan stored by :func:`plan_to_record`; raises ValueError naming a bad field."""
    try:
        steps = tuple(
            tuple(DeploymentAction(str(a["action"]), str(a["app"])) for a in step)
            for step in record["steps"]
        )
        for step in steps:
            for action in step:
                if action.action not in ACTIONS:
                    raise ValueError(f"steps: unknown action {action.action!r}")
        current = record.get("currentStep", 0)
        if isinstance(current, bool) or not isinstance(current, int) or current < 0:
            raise ValueError(f"currentStep: expected a non-negative integer, got {current!r}")
        return DeploymentPlan(
            id=str(record["id"]),
            version=str(record["version"]),
            original={k: app_from_json(v) for k, v in record["original"].items()},
            target={k: app_from_json(v) for k, v in record["target"].items()},
            steps=steps,
            current_step=current,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"deployment record: missing or malformed field {exc}") from None
