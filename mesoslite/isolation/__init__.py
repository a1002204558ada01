"""Isolation of shell tasks: who a task runs as, and the resources it may use.

Owns the parts the agent and the command executor share to confine command tasks
(below both, above :mod:`mesoslite.proc`): :mod:`~mesoslite.isolation.spec` (PURE: the
``--isolation`` names, the settings the agent hands its command executors, cgroup paths
and limit values for the v1 and v2 layouts, usage parsing, a task's clean environment),
:mod:`~mesoslite.isolation.cgroups` (the cgroup file system: detection, one cgroup per
container, entering it around a spawn, usage, OOM kills, destruction) and
:mod:`~mesoslite.isolation.users` (a task's user: lookup, the switch decision, the
sandbox's owner and mode).  This ``__init__`` imports nothing, so the pure part stays
importable alone.
"""
