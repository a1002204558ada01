"""Health checks of tasks, below both the command executor and the agent's Docker tasks.

Modules: :mod:`mesoslite.health.schedule` (PURE: the validation rules of a
``HealthCheck`` and :class:`~mesoslite.health.schedule.HealthCheckState`,
when to probe and what each result means, on an injected clock) and
:mod:`mesoslite.health.probes` (asyncio I/O: the COMMAND, HTTP and TCP
probes and :class:`~mesoslite.health.probes.HealthChecker`, which runs them
as the schedule says).  Nothing here imports the agent or the executor.
"""
