"""The load balancer's pure parts: apps and labels to services, services to haproxy text."""

from __future__ import annotations

from typing import Any

import pytest

from mesoslite.cli import FlagError, build_config, build_parser
from mesoslite.lb.config import LbConfig
from mesoslite.lb.model import Server, lookup_app, lookup_host, service_ports, services_from_apps
from mesoslite.lb.render import Listeners, render_config


def _task(task_id: str, port: int, state: str = "TASK_RUNNING",
          alive: list[bool] | None = None, host: str = "127.0.0.1") -> dict[str, Any]:
    task: dict[str, Any] = {"id": task_id, "host": host, "ports": [port], "state": state}
    if alive is not None:
        task["healthCheckResults"] = [{"alive": a} for a in alive]
    return task


def test_only_running_healthy_ready_tasks_become_servers() -> None:
    """Health: every result alive; readiness: not reported not ready; killing tasks drain."""
    apps = [{"id": "/web", "portDefinitions": [{"port": 10001}], "healthChecks": [{}],
             "readinessCheckResults": [{"taskId": "g", "ready": False},
                                       {"taskId": "a", "ready": True}],
             "tasks": [_task("a", 31001, alive=[True]), _task("b", 31002, alive=[False]),
                       _task("c", 31003, alive=[]), _task("d", 31004, "TASK_STAGING", [True]),
                       _task("e", 31005, alive=[True, True]),
                       _task("f", 31006, "TASK_KILLING", [True]),
                       _task("g", 31007, alive=[True])]},
            {"id": "/plain", "ports": [10002], "tasks": [_task("h", 31008)]}]
    services, warnings = services_from_apps(apps)
    assert warnings == []
    assert [(s.name, s.port, s.servers) for s in services] == [
        ("web_10001", 10001, (Server("a", "127.0.0.1", 31001), Server("e", "127.0.0.1", 31005))),
        ("plain_10002", 10002, (Server("h", "127.0.0.1", 31008),)),
    ]
    text = render_config(services)
    assert "frontend web_10001\n    bind 127.0.0.1:10001\n" in text
    assert "server e 127.0.0.1:31005\n" in text and "31002" not in text
    assert "retries 5\n    option redispatch 1" in text
    assert text == render_config(services_from_apps(list(reversed(apps)))[0])


def test_groups_default_to_external_like_marathon_lb() -> None:
    """--group external serves apps labelled external; '*' serves all."""
    ext = {"id": "/e", "ports": [10010], "labels": {"HAPROXY_GROUP": "internal, external"}}
    other = {"id": "/o", "ports": [10011], "labels": {"HAPROXY_GROUP": "internal"}}
    none = {"id": "/n", "ports": [10012]}
    assert LbConfig().group == "external"
    assert [s.app_id for s in services_from_apps([ext, other, none], "external")[0]] == ["/e"]
    assert len(services_from_apps([ext, other, none], "*")[0]) == 3


def test_vhost_port_mode_balance_sticky_redirect_and_cert_labels() -> None:
    """Every label lands in the configuration where haproxy expects it."""
    app = {"id": "/shop/web", "container": {"portMappings": [{"servicePort": 10020},
                                                             {"servicePort": 10021}]},
           "labels": {"HAPROXY_0_VHOST": "Shop.example.com, *.shop.test",
                      "HAPROXY_0_BALANCE": "leastconn", "HAPROXY_0_STICKY": "true",
                      "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                      "HAPROXY_0_SSL_CERT": "/etc/ssl/shop.pem",
                      "HAPROXY_1_PORT": "12000", "HAPROXY_1_MODE": "tcp"},
           "tasks": [{"id": "t1", "host": "10.0.0.5", "ports": [31001, 31002],
                      "state": "TASK_RUNNING"}]}
    [web, raw], warnings = services_from_apps([app])
    assert warnings == []
    assert (web.mode, web.balance, web.sticky, web.redirect_to_https, web.ssl_cert) == (
        "http", "leastconn", True, True, "/etc/ssl/shop.pem")
    assert web.vhosts == ("*.shop.test", "shop.example.com")
    assert (raw.port, raw.mode, raw.vhosts) == (12000, "tcp", ())
    text = render_config([web, raw], Listeners(http_port=8081, https_port=8443))
    assert "frontend marathon_http_in\n    bind 127.0.0.1:8081\n    mode http\n" in text
    assert "acl host_shop_web_10020 hdr(host),field(1,:) -i shop.example.com" in text
    assert "acl host_shop_web_10020 hdr_end(host) -i .shop.test" in text
    assert "redirect scheme https code 301 if host_shop_web_10020" in text
    assert "bind 127.0.0.1:8443 ssl crt /etc/ssl/shop.pem" in text
    assert "balance leastconn" in text and "cookie mesoslite_server_id insert" in text
    assert "server t1 10.0.0.5:31001 cookie t1" in text
    assert "bind 127.0.0.1:12000" in text and "server t1 10.0.0.5:31002\n" in text
    assert "use_backend shop_web_10020 if { req.hdr(x-marathon-app-id) -m str /shop/web }" in text
    assert lookup_host([web, raw], "shop.example.com:80") is web
    assert lookup_host([web, raw], "api.shop.test") is web
    assert lookup_host([web, raw], "elsewhere.test") is None
    assert lookup_app([web, raw], "shop/web") == [web, raw]


def test_bad_labels_are_named_and_defaulted() -> None:
    """A bad label value is warned about with its name and ignored; nothing unsafe is rendered."""
    app = {"id": "/x", "ports": [10030],
           "labels": {"HAPROXY_0_VHOST": "ok.test,bad host\\nlisten evil",
                      "HAPROXY_0_BALANCE": "random-ish", "HAPROXY_0_MODE": "udp",
                      "HAPROXY_0_PORT": "99999", "HAPROXY_0_SSL_CERT": "relative.pem"}}
    [service], warnings = services_from_apps([app])
    assert service.vhosts == ("ok.test",) and service.balance == "roundrobin"
    assert service.mode == "http" and service.port == 10030 and service.ssl_cert == ""
    joined = "\n".join(warnings)
    for name in ("VHOST", "BALANCE", "MODE", "PORT", "SSL_CERT"):
        assert f"label HAPROXY_0_{name}" in joined, name
    assert "evil" not in render_config([service])


def test_malformed_apps_and_tasks_are_skipped_with_a_reason() -> None:
    """Wrong types, unsafe hosts and port clashes are skipped, each named."""
    assert service_ports({"portDefinitions": [{"port": 10011}], "ports": [3]}) == [10011]
    bad = [{"id": "/p", "ports": ["80"]},
           {"id": "/q", "ports": [10013], "tasks": [_task("t", 31000, host="x y\nlisten")]},
           {"id": "/r", "ports": [10013]}, "junk",
           {"id": "/u", "ports": [10015], "labels": ["HAPROXY_GROUP"]}]
    services, warnings = services_from_apps(bad)
    assert [(s.app_id, s.servers) for s in services] == [("/q", ())]
    joined = "\n".join(warnings)
    assert "ports[0] must be an integer port" in joined and "host must be a hostname" in joined
    assert "port 10013 already used by /q" in joined
    assert "labels must be an object, got list" in joined
    assert services_from_apps({"apps": []})[1] == ["apps must be a list, got dict"]


def test_config_flags_are_validated() -> None:
    """Ports may not clash; the URL and group are checked, naming the flag."""
    for argv, flag in ((["--http_port", "9090"], "--stats_port"),
                       (["--marathon", "ftp://x"], "--marathon"),
                       (["--group", "a b"], "--group")):
        with pytest.raises(FlagError) as err:
            build_config(LbConfig, build_parser().parse_args(["lb", *argv]))
        assert err.value.flag == flag, argv
    cfg = build_config(LbConfig, build_parser().parse_args(["lb", "--group", "*"]))
    assert (cfg.group, cfg.http_port, cfg.stats_port, cfg.appid_port) == ("*", 80, 9090, 9091)
