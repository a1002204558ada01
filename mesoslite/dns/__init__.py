"""``mesoslite dns``: an authoritative DNS server for the cluster's tasks, agents and masters.

Owns, by layer: :mod:`.names` (hostname labels from task and framework names, PURE),
:mod:`.table` (the record table built from the master's operator event stream, PURE),
:mod:`.answer` (a question → the answer's records, PURE), :mod:`.config` (the flags,
PURE); then the shells: :mod:`.wire` (DNS wire format through dnspython, truncation),
:mod:`.server` (UDP and TCP listeners), :mod:`.follow` (finds the leading master and
follows its ``SUBSCRIBE`` stream), :mod:`.http` (the Mesos-DNS-style ``/v1`` API) and
:mod:`.main` (composes the process).  README.md beside this file draws the flow.

This ``__init__`` imports nothing, so that importing a pure module loads no I/O.
"""
