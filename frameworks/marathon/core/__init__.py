"""The framework's PURE decisions: plain values in, decisions out, no I/O.

Owns: the data model (``model``), placement constraints (``constraints``),
the offer matcher (``matcher``), the task builder (``task_builder``),
service-port allocation (``service_ports``), the steady-state reconciler
(``reconciler``), deployment plans and step decisions (``deployments``), the
per-app launch backoff (``launch_queue``), readiness decisions
(``readiness``), the reported value types (``reports``) and Marathon's
timestamps (``timestamps``).  Time comes from an injected clock.  Nothing here
imports the API, the stores, the shell modules beside this package, tornado,
kazoo, zmq or asyncio.
"""
