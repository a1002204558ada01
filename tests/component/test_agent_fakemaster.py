"""Agent ↔ master link, driven by a fake master made from a raw RouterServer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mesoslite.protocol import (
    AgentRegistered,
    Ping,
    Pong,
    ProtocolError,
    RegisterAgent,
    ReregisterAgent,
)
from mesoslite.resources import Resources
from tests.support.agent_fakemaster import AGENT_ID, FakeMaster, make_agent, run, started


def test_agent_registers_and_answers_ping(tmp_path: Path) -> None:
    """The agent registers with its resources and attributes and answers Ping with Pong."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            register = master.of_type(RegisterAgent)[0]
            assert register.agent_info.resources == Resources.parse(
                "cpus:4;mem:4096;disk:10000;ports:[31000-31010]")
            assert register.agent_info.attributes == {"rack": "r1"}
            assert register.agent_info.port == agent.http_port
            assert agent.agent_id == AGENT_ID
            master.send(Ping())
            pong = await master.wait_for(lambda: master.of_type(Pong))
            assert pong[0].agent_id == AGENT_ID
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_agent_retries_registration_until_answered(tmp_path: Path) -> None:
    """Without an answer the agent keeps sending RegisterAgent with backoff."""

    async def body() -> None:
        master = FakeMaster(auto_register=False)
        agent = make_agent(tmp_path, master, registration_backoff_factor=0.05)
        await agent.start()
        try:
            await master.wait_for(lambda: len(master.of_type(RegisterAgent)) >= 3)
            assert not agent.registered.is_set()
            master.send(AgentRegistered(agent_id=AGENT_ID))
            await asyncio.wait_for(agent.registered.wait(), 5)
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_agent_reregisters_on_not_registered(tmp_path: Path) -> None:
    """ProtocolError(NOT_REGISTERED) makes a registered agent send ReregisterAgent with its id."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            master.send(ProtocolError(message="who are you", code="NOT_REGISTERED"))
            rereg = await master.wait_for(lambda: master.of_type(ReregisterAgent))
            assert rereg[0].agent_info.id == AGENT_ID
            await asyncio.wait_for(agent.registered.wait(), 5)
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_agent_reregisters_when_pings_stop(tmp_path: Path) -> None:
    """No Ping for ping_interval × factor makes the agent re-register."""

    async def body() -> None:
        master = FakeMaster(ping_interval=0.1)
        agent = await started(tmp_path, master, ping_timeout_factor=2.0)
        try:
            await master.wait_for(lambda: master.of_type(ReregisterAgent), timeout=5)
        finally:
            await agent.stop()
            master.close()

    run(body())
