"""The framework's durable state: what survives a restart or a failover.

Owns: the :class:`~frameworks.marathon.state.store.Store` contract and its two
implementations (``file_store``: a local state directory, snapshot plus
journal, formats in ``journal``; ``zk_store``: ZooKeeper, fenced by the
leader's znode), and the repositories that lay apps, deployments, the
framework id (``repository``) and tasks (``instances``) out in a store as
compact JSON.  The stored layout and formats are fixed: a state directory or
znode tree written by an earlier version still loads.  The REST API never
reaches in here: it goes through the service.
"""
