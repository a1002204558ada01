"""mesoslite: a two-level resource-offer cluster scheduler.

A master collects resources from agents and offers them to framework
schedulers; schedulers answer with tasks that agents run through executors.
"""

__version__ = "0.1.0"
