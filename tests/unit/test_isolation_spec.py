"""The PURE isolation parts: --isolation names, cgroup layouts, paths, limits, usage, env."""

from __future__ import annotations

import pytest

from mesoslite.agent.config import AgentConfig
from mesoslite.config_checks import ConfigError
from mesoslite.isolation.spec import (
    CGROUPS_DEFAULT,
    POSIX_DEFAULT,
    CgroupLayout,
    IsolationSettings,
    agent_scope,
    cgroup_dirs,
    cgroup_statistics,
    clean_environment,
    cpu_weight,
    limit_writes,
    oom_kills,
    parse_isolation,
    parse_mountinfo,
    resolve_isolation,
    user_problem,
    v2_layout,
)

V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 /nested /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""
V2_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1 = CgroupLayout(1, {"cpu": "/cg/cpu", "cpuacct": "/cg/cpuacct", "memory": "/cg/memory",
                      "pids": "/cg/pids"})
V2 = CgroupLayout(2, {"cpu": "/cg", "cpuacct": "/cg", "memory": "/cg", "pids": "/cg"})


def test_isolation_names_parse_and_refuse_unknown() -> None:
    """auto (or empty) → None, none → (), names deduplicated; unknown ones name the item."""
    assert parse_isolation("auto") is None and parse_isolation("") is None
    assert parse_isolation("none") == ()
    assert parse_isolation("cgroups/cpu, cgroups/mem,cgroups/cpu") == ("cgroups/cpu",
                                                                         "cgroups/mem")
    with pytest.raises(ValueError, match="'cgroups/net'"):
        parse_isolation("cgroups/cpu,cgroups/net")
    with pytest.raises(ValueError, match="'none'"):
        parse_isolation("none,posix/cpu")


def test_auto_resolves_by_writability() -> None:
    """auto: cgroups where writable; else posix with a warning; explicit cgroups refused."""
    assert resolve_isolation(None, True) == (CGROUPS_DEFAULT, "")
    isolators, warning = resolve_isolation(None, False)
    assert isolators == POSIX_DEFAULT and "no writable cgroup hierarchy" in warning
    assert resolve_isolation(("posix/disk",), False) == (("posix/disk",), "")
    with pytest.raises(ValueError, match="--isolation: cgroups/mem"):
        resolve_isolation(("cgroups/mem",), False)


def test_agent_flags_validated() -> None:
    """Bad --isolation, --cgroups_root and a quota without posix/disk name their flag."""
    assert AgentConfig().isolation == "auto" and AgentConfig().switch_user is True
    assert AgentConfig().container_disk_watch_interval == 15.0
    assert AgentConfig().cgroups_enable_cfs is False
    for field, value in (("isolation", "cgroups/gpu"), ("cgroups_root", "../escape"),
                         ("cgroups_root", "/"), ("cgroups_hierarchy", "relative"),
                         ("cgroups_pids_limit", -1)):
        with pytest.raises(ConfigError) as err:
            AgentConfig(**{field: value})
        assert err.value.field == field
    with pytest.raises(ConfigError) as err:
        AgentConfig(enforce_container_disk_quota=True)
    assert err.value.field == "enforce_container_disk_quota"
    AgentConfig(isolation="cgroups/cpu,posix/disk", enforce_container_disk_quota=True)


def test_mountinfo_layouts() -> None:
    """v1 controllers under the hierarchy (with mount roots); co-mounted cpu,cpuacct; v2."""
    layout, unified = parse_mountinfo(V1_MOUNTINFO, "/sys/fs/cgroup")
    assert layout is not None and layout.version == 1 and unified == ""
    assert layout.mounts == {"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
                             "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
    assert layout.roots["pids"] == "/nested"
    layout, _ = parse_mountinfo(COMOUNTED, "/sys/fs/cgroup/")
    assert layout is not None
    assert layout.mounts["cpu"] == layout.mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    layout, unified = parse_mountinfo(V2_MOUNTINFO, "/sys/fs/cgroup")
    assert layout is None and unified == "/sys/fs/cgroup"
    assert parse_mountinfo(V1_MOUNTINFO, "/elsewhere") == (None, "")
    v2 = v2_layout("/sys/fs/cgroup", "cpuset cpu io memory pids\n")
    assert v2 is not None and v2.version == 2 and v2.mounts["cpuacct"] == "/sys/fs/cgroup"
    assert v2_layout("/sys/fs/cgroup", "") is None


def test_cgroup_dirs_per_agent_scope() -> None:
    """<mount>/<root>/<agent scope>/<container>; v2 controllers share one directory."""
    scope = agent_scope("/var/lib/agent")
    assert scope.startswith("agent-") and scope == agent_scope("/var/lib/agent")
    assert scope != agent_scope("/var/lib/agent2")
    settings = IsolationSettings(CGROUPS_DEFAULT, cgroups_root="mesoslite", scope=scope,
                                 layout=V1)
    dirs = cgroup_dirs(settings, "c1")
    assert dirs["memory"] == f"/cg/memory/mesoslite/{scope}/c1"
    assert set(dirs) == {"cpu", "cpuacct", "memory", "pids"}
    v2 = cgroup_dirs(IsolationSettings(("cgroups/mem",), scope="s", layout=V2), "c1")
    assert v2 == {"memory": "/cg/mesoslite/s/c1"}


def test_limit_values_v1_and_v2() -> None:
    """cpu.shares = cpus x 1024 (CFS quota = cpus x 100ms when on), memory from mem
    (at least 32 MB), pids.max; v2 writes cpu.weight, cpu.max and memory.max."""
    on = IsolationSettings(CGROUPS_DEFAULT, layout=V1, enable_cfs=True, pids_limit=50)
    assert limit_writes(on, 0.5, 128) == [
        ("cpu", "cpu.shares", "512"), ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"), ("memory", "memory.limit_in_bytes",
                                               str(128 << 20)), ("pids", "pids.max", "50")]
    tiny = IsolationSettings(CGROUPS_DEFAULT, layout=V1, pids_limit=0)
    assert limit_writes(tiny, 0.001, 1) == [("cpu", "cpu.shares", "2"),
                                            ("memory", "memory.limit_in_bytes", str(32 << 20))]
    v2 = IsolationSettings(CGROUPS_DEFAULT, layout=V2, enable_cfs=True)
    assert limit_writes(v2, 2, 64) == [
        ("cpu", "cpu.weight", str(cpu_weight(2048))), ("cpu", "cpu.max", "200000 100000"),
        ("memory", "memory.max", str(64 << 20)), ("pids", "pids.max", "4096")]
    assert cpu_weight(2) == 1 and cpu_weight(262144) == 10000 and cpu_weight(1024) == 39
    assert limit_writes(IsolationSettings(POSIX_DEFAULT), 1, 64) == []


def test_usage_parsing() -> None:
    """cpuacct.stat ticks, memory.stat rss, cpu.stat throttling; v2 names; OOM kills."""
    v1 = cgroup_statistics(1, {
        "cpuacct.stat": "user 250\nsystem 50\n",
        "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 2000000000\n",
        "memory.stat": "cache 10\nrss 99\ntotal_cache 4096\ntotal_rss 8192\n",
        "memory.limit_in_bytes": "33554432\n", "memory.usage_in_bytes": "12288\n",
        "pids.current": "3\n"}, 100)
    assert v1 == {"cpus_user_time_secs": 2.5, "cpus_system_time_secs": 0.5,
                  "cpus_nr_periods": 10, "cpus_nr_throttled": 4,
                  "cpus_throttled_time_secs": 2.0, "mem_rss_bytes": 8192,
                  "mem_cache_bytes": 4096, "mem_total_bytes": 12288,
                  "mem_limit_bytes": 33554432, "processes": 3}
    v2 = cgroup_statistics(2, {
        "cpu.stat": "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"
                    "nr_periods 5\nnr_throttled 1\nthrottled_usec 500000\n",
        "memory.stat": "anon 4096\nfile 100\n", "memory.max": "max\n",
        "memory.current": "5000\n"}, 100)
    assert v2["cpus_user_time_secs"] == 2.0 and v2["cpus_throttled_time_secs"] == 0.5
    assert v2["mem_rss_bytes"] == 4096 and v2["mem_limit_bytes"] == 0
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2
    assert oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n") == 1
    assert oom_kills("") == 0


def test_settings_travel_in_one_variable() -> None:
    """to_env/from_env round-trip; absent → None; malformed → ValueError naming it."""
    settings = IsolationSettings(CGROUPS_DEFAULT, switch_user=False, scope="agent-x",
                                 layout=V1, enable_cfs=True, pids_limit=7,
                                 disk_watch_interval=2.5, enforce_disk_quota=True)
    assert IsolationSettings.from_env(settings.to_env()) == settings
    assert IsolationSettings.from_env({}) is None
    with pytest.raises(ValueError, match="MESOSLITE_ISOLATION"):
        IsolationSettings.from_env({"MESOSLITE_ISOLATION": '{"bogus": 1}'})


def test_clean_environment_keeps_only_what_tasks_get() -> None:
    """PATH, HOME, USER/LOGNAME of the task's user and MESOS_*; nothing else of the agent."""
    env = clean_environment({"PATH": "/bin", "SECRET": "x", "MESOS_CHECKPOINT": "1",
                             "MESOSLITE_AGENT_ZMQ": "tcp://", "PYTHONPATH": "/src",
                             "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": "t"},
                            "nobody", "/nonexistent")
    assert env == {"PATH": "/bin", "HOME": "/nonexistent", "USER": "nobody",
                   "LOGNAME": "nobody", "MESOS_CHECKPOINT": "1"}
    assert clean_environment({}, "", "")["PATH"].startswith("/usr/local/sbin")


def test_user_switch_needs_root() -> None:
    """A non-root agent runs tasks only as itself; root may switch to anyone."""
    assert user_problem("nobody", 65534, 0, "root") == ""
    assert user_problem("me", 1000, 1000, "me") == ""
    problem = user_problem("nobody", 65534, 1000, "me")
    assert "'nobody'" in problem and "not root" in problem and "--switch_user" in problem
