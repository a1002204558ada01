"""A scheduler written with mesoshttp (a Mesos v1 HTTP library from PyPI), unmodified use.

Run with the interpreter of :func:`tests.support.mesoshttp_env.ensure_mesoshttp` as
``python mesoshttp_scheduler.py <mesos url>`` (``http://host:port`` or ``zk://host:port/mesos``).
It launches ``done-1`` (``echo``) and ``long-1`` (``sleep``) on its first offer, declines
the rest, lets the library acknowledge updates, reconciles ``long-1`` once both tasks
reached their states, kills it, and stops (the library tears the framework down).  One
JSON line per milestone on stdout.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

from mesoshttp.client import MesosClient

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def say(event: str, **fields: Any) -> None:
    """One milestone line."""
    print(json.dumps({"event": event, **fields}), flush=True)


def main(url: str) -> None:
    """Run the scenario of the module docstring."""
    client = MesosClient(mesos_urls=[url], frameworkName="mesoshttp-test", max_reconnect=3)
    client.set_failover_timeout(60)
    state: dict[str, Any] = {"launched": False, "phase": "start", "states": {}}
    lock = threading.Lock()

    def task(task_id: str, command: str, agent_id: str) -> dict[str, Any]:
        return {"name": task_id, "task_id": {"value": task_id},
                "agent_id": {"value": agent_id},
                "command": {"value": command},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}

    def subscribed(driver: Any) -> None:
        say("subscribed", framework_id=client.frameworkId,
            master=(client.get_master_info() or {}).get("address", {}))

    def offers(offer_list: list[Any]) -> None:
        for offer in offer_list:
            body = offer.get_offer()
            with lock:
                first = not state["launched"]
                state["launched"] = True
            if first:
                agent = body["agent_id"]["value"]
                state["agent"] = agent
                offer.accept([task("done-1", "echo hello from mesoshttp", agent),
                              task("long-1", "sleep 600", agent)])
                say("launched", agent_id=agent)
            else:
                offer.decline()

    def update(event: dict[str, Any]) -> None:
        status = event["status"]
        task_id, task_state = status["task_id"]["value"], status["state"]
        say("update", task_id=task_id, state=task_state, reason=status.get("reason", ""))
        driver = client.get_driver()
        with lock:
            state["states"][task_id] = task_state
            states, phase = state["states"], state["phase"]
            if phase == "start" and states.get("done-1") == "TASK_FINISHED" \
                    and states.get("long-1") == "TASK_RUNNING":
                state["phase"] = "reconciling"
                driver.reconcile([{"task_id": {"value": "long-1"},
                                   "agent_id": {"value": state["agent"]}}])
            elif phase == "reconciling" and task_id == "long-1" \
                    and status.get("reason") == "REASON_RECONCILIATION":
                state["phase"] = "killing"
                say("reconciled", state=task_state)
                driver.kill(state["agent"], "long-1")
            elif phase == "killing" and task_id == "long-1" and task_state == "TASK_KILLED":
                state["phase"] = "done"
                say("killed")
                client.tearDown()

    def error(message: str) -> None:
        say("error", message=message)

    client.on(MesosClient.SUBSCRIBED, subscribed)
    client.on(MesosClient.OFFERS, offers)
    client.on(MesosClient.UPDATE, update)
    client.on(MesosClient.ERROR, error)
    client.register()
    say("stopped", phase=state["phase"])
    sys.exit(0 if state["phase"] == "done" else 1)


if __name__ == "__main__":
    main(sys.argv[1])
