"""The Mesos v1 HTTP APIs: scheduler and operator calls over JSON, events over RecordIO.

Owns: :mod:`.recordio` (the stream framing, PURE), :mod:`.v1json` (Mesos v1 JSON shapes
to and from :mod:`mesoslite.protocol` values, PURE), :mod:`.streams` (a bounded
RecordIO response stream), :mod:`.operator` (``POST /api/v1`` on the master),
:mod:`.scheduler` (``POST /api/v1/scheduler``) and :mod:`.routes` (the one call the
master's route table makes).  The package sits below the master in the layers: it
reads and drives the master through the Protocols of :mod:`.ports`, never its modules.
"""
