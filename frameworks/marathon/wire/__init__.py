"""Marathon's v2 JSON in and out (PURE); the same JSON is the stored format.

Owns: reading and checking JSON values (``validation``), App JSON
(``app_json``, with its parts in ``app_parts``), Task JSON (``task_json``),
deployment plans as the API shows and the store keeps them
(``deployment_json``), group trees and group bodies (``group_json``), and what
the API adds around them (``render``: embeds, counts, queue entries, label
selectors).  Builds on ``core`` only: no I/O, no tornado, no store.
"""
