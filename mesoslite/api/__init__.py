"""The Mesos v1 HTTP APIs: scheduler, operator and executor calls over JSON, RecordIO events.

Owns: :mod:`.recordio` (the stream framing, PURE), :mod:`.v1json` (Mesos v1 JSON shapes
to and from :mod:`mesoslite.protocol` values, PURE), :mod:`.scheduler_calls`,
:mod:`.executor_calls` and :mod:`.operator_view` (calls, events and views, PURE),
:mod:`.streams` (a bounded RecordIO response stream and the handlers' base),
:mod:`.operator` (``POST /api/v1`` on the master), :mod:`.scheduler`
(``POST /api/v1/scheduler``), :mod:`.files` (LIST_FILES/READ_FILE through the agents),
:mod:`.executor` (``POST /api/v1/executor`` on agents), :mod:`.jsonp`, :mod:`.version`,
:mod:`.leader`, and :mod:`.routes` (the one call the master's route table makes).  The
package sits below the master and the agent in the layers: it reads and drives them
through the Protocols of :mod:`.ports`, never their modules.
"""
