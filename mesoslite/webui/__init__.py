"""The master's web UI: static pages, their JSON views and the live push (issue 10).

Owns nothing at import time (so that its PURE modules import without tornado):

- :mod:`.source` (PURE): the master as the UI reads it, as Protocols; the
  master's own classes satisfy them, so the UI never imports ``mesoslite.master``.
- :mod:`.views` (PURE): summaries, rows, filters, sorting and pages over the
  master's state; the overview and its resource totals (cached per agent version).
- :mod:`.publisher`: one coalescing publisher per master that computes the overview
  at most once a second while someone watches and fans it out to every watcher.
- :mod:`.proxy`: the sandbox and usage proxy to registered agents' own endpoints.
- :mod:`.routes`: the tornado handlers and :func:`~.routes.master_ui_rules`, the
  one call the master's route table makes.
- ``static/``: the hand-written HTML, CSS and JavaScript (no build step, no CDN),
  shared with the service UI of ``frameworks.marathon.webui`` (``static/common``).
"""
