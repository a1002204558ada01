"""What every HTTP server of the cluster refuses before a handler runs.

Owns nothing itself (importing the package loads nothing): :mod:`.policy` (PURE)
decides which requests are refused (writes without a JSON body type, a foreign
``Origin`` on a write, a ``Host`` that is not one of the server's names) and masks
secrets; :mod:`.server` is the tornado side: :class:`~.server.GuardedHTTPServer`
applies a :class:`~.policy.RequestPolicy` to every request of an application
(whatever routes it has, so endpoints added later are covered too), caps concurrent
connections, times out idle and slow clients, survives running out of file
descriptors, and raises the soft ``RLIMIT_NOFILE``.
"""
