"""``mesoslite ctl``: a running cluster and its apps from the command line.

Modules, from the bottom up (each imports only the ones above it):

- :mod:`~mesoslite.ctl.common`: errors, HTTP calls, tables, the status line;
- :mod:`~mesoslite.ctl.cluster`: ``state``, ``agents``, ``frameworks``, ``tasks``, ``logs``;
- :mod:`~mesoslite.ctl.apps_view` (no I/O of its own): the app tables, rollback choice,
  deployment progress;
- :mod:`~mesoslite.ctl.apps_api`: the client of the Marathon-style framework's REST API v2;
- :mod:`~mesoslite.ctl.apps`: ``apps``, ``app``, ``deploy``, ``scale``, ``restart``,
  ``rollback``, ``destroy`` and the wait for a deployment;
- :mod:`~mesoslite.ctl.main`: the ``ctl`` parser (:func:`~mesoslite.ctl.main.add_ctl_parser`)
  and the dispatch.
"""
