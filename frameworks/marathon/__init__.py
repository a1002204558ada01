"""The Marathon-style framework for long-running services (Marathon REST API v2).

Layers (README.md draws the flow): ``core`` (pure decisions), ``wire``
(Marathon JSON in and out), ``state`` (stores and repositories), ``api`` (the
REST handlers); beside them the service, the scheduling shell, the election,
the event bus, the configuration and ``main`` (the composition root).
"""
