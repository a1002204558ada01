"""The service UI of the Marathon-style framework (issue 10).

Owns nothing at import time (so that its PURE module imports without tornado):

- :mod:`.summaries` (PURE): each app's status (Running, Deploying, Suspended,
  Delayed, Waiting) and health bar, the group tree, filters, search and pages.
- :mod:`.routes`: :func:`~.routes.mount_service_ui`, the one call ``main.py``
  makes: the page at ``/ui/`` (``/`` redirects there), its static files, the
  apps summary ``/ui/api/apps`` (coded against the service facade) and
  ``/ui/api/links`` (where the leading master's UI is, for the sandbox links).
- ``static/service``: the hand-written HTML and JavaScript; everything else the
  page does goes through the ``/v2`` API and its ``/v2/events`` stream.
"""
