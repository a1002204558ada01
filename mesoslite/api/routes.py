"""The v1 API routes of masters and agents: the one call each route table makes.

Owns: :func:`master_api_rules` (``/api/v1``, ``/api/v1/operator``, ``/master/api/v1``
for the operator API and ``/api/v1/scheduler``, ``/master/api/v1/scheduler`` for the
scheduler API, as libprocess's longest-prefix routing lets Mesos clients post there) and
:func:`agent_api_rules` (``/api/v1`` and ``/api/v1/executor``, also under ``/slave(1)``).
"""

from __future__ import annotations

from typing import Any

from mesoslite.api.agent_operator import AgentOperatorHandler
from mesoslite.api.executor import ExecutorHandler, ExecutorHub
from mesoslite.api.operator import OperatorHandler, OperatorHub
from mesoslite.api.ports import AgentOperatorPort, ExecutorPort, MasterPort
from mesoslite.api.scheduler import SchedulerHandler, SchedulerHub


def master_api_rules(master: MasterPort) -> list[Any]:
    """Routes for ``master``'s route table (each path also under ``/master``)."""
    operator = {"master": master, "hub": OperatorHub(master)}
    scheduler = {"master": master, "hub": SchedulerHub(master)}
    rules: list[Any] = []
    for prefix in ("", "/master"):
        rules.append((prefix + r"/api/v1/scheduler/?", SchedulerHandler, scheduler))
        rules.append((prefix + r"/api/v1(?:/operator)?/?", OperatorHandler, operator))
    return rules


def agent_api_rules(executors: ExecutorPort, operator: AgentOperatorPort) -> list[Any]:
    """Routes for an agent's route table (each path also under ``/slave(1)``)."""
    hub = ExecutorHub(executors)
    rules: list[Any] = []
    for prefix in ("", r"/slave\(1\)"):
        rules.append((prefix + r"/api/v1/executor/?", ExecutorHandler, {"hub": hub}))
        rules.append((prefix + r"/api/v1(?:/operator)?/?", AgentOperatorHandler,
                      {"port": operator}))
    return rules
