"""Framework and agent authentication in the master's pure state: the challenge–response,
principal checks on subscription and failover, and agent ids bound to their identity."""

from __future__ import annotations

import itertools

from mesoslite.master.authn import Authenticator
from mesoslite.protocol import (
    AgentInfo,
    Authenticate,
    AuthenticationCompleted,
    AuthenticationFailed,
    AuthenticationResponse,
    AuthenticationStep,
    ClientAuthn,
    Credential,
    Error,
    FrameworkInfo,
    ProtocolError,
    RegisterAgent,
    ReregisterAgent,
    Subscribe,
    Subscribed,
)
from mesoslite.protocol.authn import client_digest, parse_credential
from mesoslite.resources import Resources
from mesoslite.testing.harness import Harness

CREDENTIALS = {"ops": "ops-secret", "ci": "ci-secret"}
NONCE = b"n" * 32
TOKEN = "secret-" + "token"


def peer(name: str) -> bytes:
    """A routing id as long as the transport's random ones (the master needs >= 16 bytes)."""
    return name.encode().ljust(24, b".")


def counting_bytes() -> object:
    """Deterministic distinct nonces."""
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def authed_harness(**config: object) -> Harness:
    """A Harness whose master knows CREDENTIALS."""
    h = Harness(credentials="creds.json", **config)  # type: ignore[arg-type]
    h.state.authn = Authenticator(CREDENTIALS, h.clock, timeout=15.0,
                                  random_bytes=counting_bytes())  # type: ignore[arg-type]
    return h


def login(h: Harness, who: bytes, principal: str, secret: str, role: str = "framework") -> object:
    """Run the whole exchange on ``who``; return the master's last answer."""
    client = ClientAuthn(Credential(principal, secret), role, NONCE)
    [step] = h.handle(who, client.start())
    assert isinstance(step.message, AuthenticationStep), step
    [done] = h.handle(who, client.on_step(step.message))
    if isinstance(done.message, AuthenticationCompleted):
        assert client.on_completed(done.message), "the master's proof is right"
    return done.message


def test_right_secret_authenticates_and_master_proves_it_knows_the_secret() -> None:
    """The right secret completes, and the client accepts the master's proof."""
    h = authed_harness()
    answer = login(h, peer("f"), "ops", "ops-secret")
    assert isinstance(answer, AuthenticationCompleted) and answer.principal == "ops"
    assert h.state.authn.principal_of(peer("f"), "framework") == "ops"
    assert h.state.authn.principal_of(peer("f"), "agent") is None


def test_wrong_secret_and_unknown_principal_fail_alike() -> None:
    """A wrong secret and an unknown principal get the same refusal (no enumeration)."""
    h = authed_harness()
    wrong = login(h, peer("a"), "ops", "guess")
    unknown = login(h, peer("b"), "nobody", "guess")
    assert isinstance(wrong, AuthenticationFailed) and isinstance(unknown, AuthenticationFailed)
    assert wrong.message == unknown.message == "authentication refused: wrong principal or secret"
    assert h.state.authn.principal_of(peer("a"), "framework") is None


def test_nonce_is_single_use_and_expires() -> None:
    """A replayed response is refused; so is one after the timeout."""
    h = authed_harness()
    who = peer("f")
    client = ClientAuthn(Credential("ops", "ops-secret"), "framework", NONCE)
    [step] = h.handle(who, client.start())
    response = client.on_step(step.message)
    [ok] = h.handle(who, response)
    assert isinstance(ok.message, AuthenticationCompleted)
    [replay] = h.handle(peer("x"), response)
    assert isinstance(replay.message, AuthenticationFailed)
    [again] = h.handle(who, response)
    assert "no authentication in progress" in again.message.message
    [step] = h.handle(who, client.start())
    h.clock.advance(15.5)
    [late] = h.handle(who, client.on_step(step.message))
    assert "expired" in late.message.message


def test_digest_for_one_role_is_worthless_for_another() -> None:
    """A framework's digest does not authenticate an agent session."""
    h = authed_harness()
    who = peer("f")
    [step] = h.handle(who, Authenticate("ops", role="agent", client_nonce=NONCE))
    digest = client_digest("ops-secret", "framework", "ops", step.message.server_nonce, NONCE)
    [answer] = h.handle(who, AuthenticationResponse("ops", step.message.server_nonce, digest))
    assert isinstance(answer.message, AuthenticationFailed)


def test_short_routing_ids_and_unknown_mechanisms_are_refused() -> None:
    """ZeroMQ's own short (guessable) ids cannot carry a session; CRAM-MD5 is not spoken."""
    h = authed_harness()
    [short] = h.handle(b"\x00k\x8bEg", Authenticate("ops", client_nonce=NONCE))
    assert "routing id is too short" in short.message.message
    [mech] = h.handle(peer("f"), Authenticate("ops", mechanism="CRAM-MD5", client_nonce=NONCE))
    assert "mechanism 'CRAM-MD5'" in mech.message.message


def test_unauthenticated_subscribe_refused_when_required() -> None:
    """--authenticate_frameworks: a Subscribe without authentication is refused, naming why."""
    h = authed_harness(authenticate_frameworks=True)
    [refusal] = h.handle(peer("f"), Subscribe(FrameworkInfo(user="u", name="f")))
    assert isinstance(refusal.message, Error)
    assert refusal.message.message.startswith("framework is not authenticated")
    assert "--authenticate_frameworks" in refusal.message.message
    assert not h.state.frameworks


def test_principal_must_match_the_authenticated_one() -> None:
    """framework_info.principal other than the proved principal is refused; equal works."""
    h = authed_harness(authenticate_frameworks=True)
    login(h, peer("f"), "ops", "ops-secret")
    [refusal] = h.handle(peer("f"), Subscribe(FrameworkInfo(user="u", name="f", principal="ci")))
    assert "does not match the authenticated principal 'ops'" in refusal.message.message
    sends = h.handle(peer("f"), Subscribe(FrameworkInfo(user="u", name="f", principal="ops")))
    assert any(isinstance(s.message, Subscribed) for s in sends)


def test_failover_only_by_the_same_principal() -> None:
    """Another principal cannot take a framework id over; the same principal can."""
    h = authed_harness(authenticate_frameworks=True)
    login(h, peer("f1"), "ops", "ops-secret")
    fid = h.subscribe(peer("f1"), principal="ops", failover_timeout=60.0)
    login(h, peer("f2"), "ci", "ci-secret")
    [refusal] = h.handle(peer("f2"), Subscribe(FrameworkInfo(user="u", name="x", id=fid,
                                                             principal="ci")))
    assert f"framework {fid} is registered with principal 'ops'" in refusal.message.message
    assert h.state.frameworks[fid].peer == peer("f1") and h.state.frameworks[fid].connected
    login(h, peer("f3"), "ops", "ops-secret")
    assert h.subscribe(peer("f3"), id=fid, principal="ops") == fid
    assert h.state.frameworks[fid].peer == peer("f3")


def test_failover_checks_the_principal_without_authentication_too() -> None:
    """With authentication off, a different claimed principal still cannot fail over."""
    h = Harness()
    fid = h.subscribe(peer("f1"), principal="ops", failover_timeout=60.0)
    [refusal] = h.handle(peer("f2"), Subscribe(FrameworkInfo(user="u", name="x", id=fid)))
    assert "registered with principal 'ops'" in refusal.message.message
    assert h.state.frameworks[fid].peer == peer("f1")


def agent_info(agent_id: str = "", cpus: int = 4) -> AgentInfo:
    """An AgentInfo with some resources."""
    return AgentInfo(hostname="h", id=agent_id, resources=Resources.parse(f"cpus:{cpus};mem:64"))


def test_unauthenticated_agent_refused_when_required() -> None:
    """--authenticate_agents: RegisterAgent without authentication is refused UNAUTHENTICATED."""
    h = authed_harness(authenticate_agents=True)
    [refusal] = h.handle(peer("a"), RegisterAgent(agent_info(cpus=1000)))
    assert isinstance(refusal.message, ProtocolError)
    assert refusal.message.code == "UNAUTHENTICATED" and not h.state.agents
    login(h, peer("a"), "ops", "ops-secret", role="agent")
    sends = h.handle(peer("a"), RegisterAgent(agent_info(), agent_token=TOKEN))
    assert sends[-1].message.agent_id in h.state.agents


def test_agent_id_reregistered_only_by_its_identity() -> None:
    """Another token (or principal) cannot re-register an agent's id; the real agent can."""
    h = authed_harness()
    [sent] = h.handle(peer("a"), RegisterAgent(agent_info(), agent_token=TOKEN))
    agent_id = sent.message.agent_id
    for token in ("", "guess"):
        [refusal] = h.handle(peer("fake"), ReregisterAgent(agent_info(agent_id, 1000),
                                                           agent_token=token))
        assert refusal.message.code == "UNAUTHENTICATED", refusal
    login(h, peer("fake2"), "ops", "ops-secret", role="agent")
    [refusal] = h.handle(peer("fake2"), ReregisterAgent(agent_info(agent_id, 1000),
                                                        agent_token=TOKEN))
    assert "bound to another identity" in refusal.message.message
    assert h.state.agents[agent_id].peer == peer("a")
    assert h.state.agents[agent_id].info.resources == Resources.parse("cpus:4;mem:64")
    sends = h.handle(peer("a2"), ReregisterAgent(agent_info(agent_id), agent_token=TOKEN))
    assert sends[-1].message.agent_id == agent_id and h.state.agents[agent_id].peer == peer("a2")


def test_parse_credential_forms() -> None:
    """Mesos's --credential file: JSON or 'principal secret'; errors never show the secret."""
    assert parse_credential('{"principal": "a", "secret": "s"}') == Credential("a", "s")
    assert parse_credential("a  s3cret\n") == Credential("a", "s3cret")
    for bad in ("", "onlyprincipal", '{"principal": "a"}', '{"principal": "a", "x": 1}'):
        try:
            parse_credential(bad, "f")
        except ValueError as exc:
            assert str(exc).startswith("f: ") and "s3cret" not in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")
    assert "s3cret" not in repr(Credential("a", "s3cret"))


def test_client_rejects_a_master_without_the_secret() -> None:
    """A fake master's proof (made without the secret) is refused by the client."""
    client = ClientAuthn(Credential("ops", "ops-secret"), "framework", NONCE)
    client.start()
    client.on_step(AuthenticationStep(server_nonce=b"s" * 32))
    assert not client.on_completed(AuthenticationCompleted("ops", proof=b"\x00" * 32))


def test_agent_binding_survives_a_master_failover_through_the_registry() -> None:
    """The binding is journaled, stored, and restored by the next leader: a fake agent is
    refused there too, the real one comes back."""
    from mesoslite.coordination.registry_state import RegistryState
    from mesoslite.master.recovery import Recovery
    from mesoslite.master.registry_sync import RegistrySync, snapshot_from

    h = Harness()
    h.state.journal = []
    [sent] = h.handle(peer("a"), RegisterAgent(agent_info(), agent_token=TOKEN))
    agent_id = sent.message.agent_id
    sync = RegistrySync(RegistryState())
    sync.ops_for(h.state.journal)
    stored = RegistryState.decode(sync.mirror.encode("json"), "json")
    assert stored.agents[agent_id].identity == h.state.agent_identities[agent_id]
    assert TOKEN not in sync.mirror.encode("json").decode()

    new = Harness()
    Recovery(new.state, snapshot_from(stored))
    [refusal] = new.handle(peer("fake"), ReregisterAgent(agent_info(agent_id, 1000)))
    assert refusal.message.code == "UNAUTHENTICATED"
    sends = new.handle(peer("a2"), ReregisterAgent(agent_info(agent_id),
                                                   agent_token=TOKEN))
    assert sends[-1].message.agent_id == agent_id and agent_id in new.state.agents


def test_a_master_without_credentials_says_so() -> None:
    """Authenticating with a master that has no --credentials fails, naming the flag."""
    h = Harness()
    [answer] = h.handle(peer("f"), Authenticate("ops", client_nonce=NONCE))
    assert isinstance(answer.message, AuthenticationFailed)
    assert "has no --credentials" in answer.message.message
