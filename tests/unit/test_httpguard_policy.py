"""Unit tests of mesoslite.httpguard.policy: which requests every server refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesoslite.httpguard.policy import (
    AuthPolicy,
    CredentialsError,
    RequestPolicy,
    allowed_host_names,
    basic_principal,
    is_json_type,
    parse_credentials,
    parse_user_password,
    split_host,
)

POLICY = RequestPolicy(allowed_host_names(["master.example"], "extra.example"),
                       form_paths=frozenset({"/teardown"}))


def _check(method: str = "POST", path: str = "/v2/apps", *, host: str = "localhost:8080",
           origin: str | None = None, content_type: str = "application/json",
           has_body: bool = True, policy: RequestPolicy = POLICY) -> tuple[int, str] | None:
    refusal = policy.check(method, path, host=host, origin=origin, content_type=content_type,
                           has_body=has_body)
    return None if refusal is None else (refusal.status, refusal.field)


@pytest.mark.parametrize(("value", "expected"), [
    ("name:80", ("name", 80)), ("NAME.", ("name", None)), ("[::1]:5050", ("::1", 5050)),
    ("1.2.3.4", ("1.2.3.4", None)), ("::1", ("::1", None)), ("a:b", None), ("[::1", None),
    ("", None), ("a b", None), ("x@y", None), ("h:123456", None),
])
def test_split_host(value: str, expected: tuple[str, int | None] | None) -> None:
    """Host headers split into a lower-cased name and a port; malformed ones are None."""
    assert split_host(value) == expected


def test_json_writes_from_this_server_are_served() -> None:
    """A JSON write naming a known host, with no Origin or its own Origin, passes."""
    assert _check() is None
    assert _check(origin="http://localhost:8080") is None
    assert _check(host="master.example", origin="http://master.example") is None
    assert _check(content_type="application/json; charset=utf-8") is None
    assert _check(content_type="application/vnd.x+json") is None
    # The scheme is not compared: behind a TLS proxy the page is https, the Host the same.
    assert _check(origin="https://localhost:8080") is None


@pytest.mark.parametrize("content_type", [
    "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=1",
    "application/jsonx", "text/html",
])
def test_writes_without_a_json_body_type_are_415(content_type: str) -> None:
    """POST, PUT and PATCH need a JSON Content-Type, body or not."""
    for method in ("POST", "PUT", "PATCH"):
        assert _check(method, content_type=content_type) == (415, "Content-Type")
        assert _check(method, content_type=content_type, has_body=False) == (415, "Content-Type")


def test_delete_needs_json_only_with_a_body() -> None:
    """A DELETE without a body needs no Content-Type; with one it must be JSON."""
    assert _check("DELETE", content_type="", has_body=False) is None
    assert _check("DELETE", content_type="text/plain", has_body=True) == (415, "Content-Type")


def test_form_posts_only_on_form_paths_and_only_with_authentication() -> None:
    """/teardown takes a form only when forms are allowed (authentication on)."""
    form = "application/x-www-form-urlencoded"
    assert _check(path="/teardown", content_type=form) == (415, "Content-Type")
    with_auth = RequestPolicy(POLICY.allowed_hosts, POLICY.form_paths, forms_allowed=True)
    assert _check(path="/teardown", content_type=form, policy=with_auth) is None
    assert _check(path="/weights", content_type=form, policy=with_auth) == (415, "Content-Type")


@pytest.mark.parametrize("origin", [
    "http://evil.example", "null", "http://localhost:8081", "https://localhost:8081",
    "file://", "http://localhost:8080/path", "garbage",
])
def test_foreign_origin_on_a_write_is_403(origin: str) -> None:
    """A write whose Origin is not this server is refused naming the Origin."""
    assert _check(origin=origin) == (403, "Origin")
    assert _check("DELETE", origin=origin, has_body=False) == (403, "Origin")


def test_reads_ignore_origin_and_content_type() -> None:
    """GET is not a write: a foreign Origin or any Content-Type does not matter."""
    assert _check("GET", origin="http://evil.example", content_type="text/plain") is None


@pytest.mark.parametrize(("host", "allowed"), [
    ("localhost", True), ("LOCALHOST:5050", True), ("127.0.0.1:5050", True),
    ("[::1]:5050", True), ("10.1.2.3", True), ("master.example", True),
    ("extra.example:1", True), ("app.localhost", True), ("evil.example", False),
    ("master.example.evil", False), ("bad host", False), ("", True),
])
def test_host_must_name_this_server(host: str, allowed: bool) -> None:
    """Names must be known (DNS rebinding); IP literals and no Host at all pass."""
    expected = None if allowed else (403, "Host")
    assert _check("GET", host=host) == expected


def test_star_turns_the_host_check_off() -> None:
    """--allowed_hosts '*' accepts every name."""
    policy = RequestPolicy(allowed_host_names([], "a, *"))
    assert _check("GET", host="anything.example", policy=policy) is None


def test_json_types() -> None:
    """JSON media types, with parameters and +json suffixes."""
    assert is_json_type("Application/JSON;charset=utf-8")
    assert is_json_type("text/json")
    assert not is_json_type("text/plain")
    assert not is_json_type("")


def _basic(user: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_parse_credentials_mesos_json() -> None:
    """Mesos's credentials JSON gives principal -> secret; bad shapes name what is wrong."""
    text = ('{"credentials": [{"principal": "a", "secret": "x"}, '
            '{"principal": "b", "secret": "y"}]}')
    assert parse_credentials(text) == {"a": "x", "b": "y"}
    for bad, words in (("nope", "not JSON"), ('{"credentials": []}', "at least one"),
                       ('{"credentials": [{"principal": "a"}]}', "secret"),
                       ('{"credentials": [{"principal": "a:b", "secret": "x"}]}', "principal"),
                       ('{"credentials": [{"principal": "a", "secret": "x", "z": 1}]}',
                        "principal and secret only")):
        with pytest.raises(CredentialsError, match=words):
            parse_credentials(bad)


def test_parse_user_password() -> None:
    """Marathon's user:password, several separated by commas."""
    assert parse_user_password("a:x, b:y:z") == {"a": "x", "b": "y:z"}
    for bad in ("", "nopassword", ":x", "a:"):
        with pytest.raises(CredentialsError):
            parse_user_password(bad)


def test_basic_principal() -> None:
    """Only a well-formed Basic header with the right secret proves a principal."""
    creds = {"ops": "s3cret"}
    assert basic_principal(_basic("ops", "s3cret"), creds) == "ops"
    for header in (None, "", _basic("ops", "wrong"), _basic("who", "s3cret"), "Bearer abc",
                   "Basic !!!", "Basic " + "b3Bz"):
        assert basic_principal(header, creds) is None, header


def test_auth_policy_reads_writes_and_open_paths() -> None:
    """401 with WWW-Authenticate where credentials are needed; open paths and the
    unauthenticated kind of request pass; with writes authenticated, forms go to /teardown."""
    auth = AuthPolicy({"ops": "s3cret"}, readonly=False, readwrite=True)
    policy = RequestPolicy(POLICY.allowed_hosts, POLICY.form_paths, auth=auth)
    assert _check("GET", policy=policy) is None
    refused = policy.check("POST", "/teardown", host="localhost", origin=None,
                           content_type="application/json", has_body=True)
    assert refused is not None and refused.status == 401
    assert refused.headers == (("WWW-Authenticate", 'Basic realm="mesos"'),)
    form = "application/x-www-form-urlencoded"
    assert policy.check("POST", "/teardown", host="localhost", origin=None, content_type=form,
                        has_body=True, authorization=_basic("ops", "s3cret")) is None
    assert policy.check("POST", "/teardown", host="localhost", origin="http://evil.example",
                        content_type=form, has_body=True,
                        authorization=_basic("ops", "s3cret")).status == 403  # type: ignore[union-attr]
    reads = AuthPolicy({"ops": "s3cret"}, readonly=True, readwrite=False)
    assert reads.check("GET", "/state", None) is not None
    assert reads.check("GET", "/health", None) is None
    assert reads.check("POST", "/x", None) is None


def test_ctl_credentials_come_from_the_environment(tmp_path: Path) -> None:
    """MESOSLITE_PRINCIPAL with MESOSLITE_SECRET or MESOSLITE_SECRET_FILE; none: no header."""
    from mesoslite.ctl.common import CtlError, basic_authorization

    assert basic_authorization({}) is None
    assert basic_authorization({"MESOSLITE_PRINCIPAL": "ops", "MESOSLITE_SECRET": "s3cret"}) \
        == _basic("ops", "s3cret")
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert basic_authorization({"MESOSLITE_PRINCIPAL": "ops",
                                "MESOSLITE_SECRET_FILE": str(secret)}) == _basic("ops", "s3cret")
    with pytest.raises(CtlError, match="MESOSLITE_SECRET"):
        basic_authorization({"MESOSLITE_PRINCIPAL": "ops"})


def test_authentication_flags_need_a_credentials_file() -> None:
    """--authenticate_http_* without --credentials is a ConfigError naming credentials."""
    from mesoslite.agent.config import AgentConfig
    from mesoslite.config_checks import ConfigError
    from mesoslite.master.config import MasterConfig

    for config in (MasterConfig, AgentConfig):
        with pytest.raises(ConfigError) as info:
            config(authenticate_http_readonly=True)
        assert info.value.field == "credentials"
        assert config(authenticate_http_readwrite=True, credentials="/x").credentials == "/x"


def test_open_paths_ignore_a_trailing_slash_and_can_be_added() -> None:
    """/health/ is /health; with_open adds the v1 scheduler or executor endpoints."""
    auth = AuthPolicy({"ops": "s3cret"}).with_open("/api/v1/scheduler")
    assert auth.check("GET", "/health/", None) is None
    assert auth.check("POST", "/api/v1/scheduler/", None) is None
    assert auth.check("POST", "/api/v1", None) is not None


def test_get_endpoints_acls_refuse_guarded_gets_only() -> None:
    """With ACLs, a GET of a guarded path by a principal they refuse is 403 naming it."""
    import base64 as _b64
    import json as _json

    from mesoslite.authz import parse_acls
    from mesoslite.httpguard.policy import AuthPolicy, RequestPolicy

    acls = parse_acls(_json.dumps({"get_endpoints": [
        {"principals": {"values": ["ops"]}, "paths": {"values": ["/flags"]}},
        {"principals": {"type": "NONE"}, "paths": {"values": ["/flags"]}}]}))
    secrets = {"ops": "s1", "dev": "s2"}
    auth = AuthPolicy(secrets, readonly=False, readwrite=True)
    policy = RequestPolicy(auth=auth, acls=acls)

    def check(method: str, path: str, who: str | None) -> object:
        header = None if who is None else "Basic " + _b64.b64encode(
            f"{who}:{secrets[who]}".encode()).decode()
        return policy.check(method, path, host="127.0.0.1:5050", origin=None,
                            content_type="application/json", has_body=False,
                            authorization=header)

    assert check("GET", "/flags", "ops") is None
    for who in ("dev", None):
        refusal = check("GET", "/master/flags/", who)
        assert refusal is not None and refusal.status == 403  # type: ignore[attr-defined]
        assert refusal.field == "principal"  # type: ignore[attr-defined]
    assert check("HEAD", "/flags", "dev") is not None
    assert check("GET", "/state", "dev") is None
    assert policy.principal("Basic " + _b64.b64encode(b"dev:s2").decode()) == "dev"
    assert policy.principal("Basic " + _b64.b64encode(b"dev:wrong").decode()) is None
