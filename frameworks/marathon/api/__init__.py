"""The Marathon REST API v2 over HTTP (tornado handlers), coded against the service facade.

Owns: the route table and the system, deployment and queue handlers
(``routes``), the app and task routes (``apps``), groups (``groups``), the
event stream (``event_stream``) and the handlers' common ground (``base``:
JSON answers and errors, standby forwarding).  Handlers talk to the framework
only through :class:`~frameworks.marathon.facade.ServiceFacade`; JSON comes
from ``wire``.  Nothing here imports ``state``: the stores sit behind the
service.
"""
