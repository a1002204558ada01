"""``mesoslite lb``: a load balancer that follows the Marathon-style framework (HAProxy).

The package imports nothing itself (its pure parts must load no I/O): use
:class:`mesoslite.lb.config.LbConfig` and :class:`mesoslite.lb.balancer.Balancer`.
The flow: the framework's ``/v2/events`` (:mod:`.events`) marks the routing dirty; the
balancer coalesces bursts, re-reads ``/v2/apps?embed=apps.tasks&embed=apps.readiness``,
turns apps and their marathon-lb labels into services (:mod:`.model`, PURE), renders an
haproxy configuration (:mod:`.render`, PURE) and has a real haproxy check it and
soft-reload (:mod:`.haproxy`); :mod:`.http` serves the balancer's own API.
"""
