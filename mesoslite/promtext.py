"""Prometheus text exposition format (0.0.4): histograms, labels, request timings (PURE).

Owns what every process's ``/metrics`` shares:

- :class:`Histogram`: observations counted in fixed buckets, rendered by
  :func:`histogram_lines` as cumulative ``_bucket{le=...}``, ``_sum`` and ``_count``;
- :class:`HistogramFamily`: one histogram per label set (label names fixed up front);
- :class:`RouteTable`: the route *pattern* a request was routed by (``/v2/apps/(.+)``,
  never the raw path), so the ``route`` label's values are bounded by the route table;
- :class:`RequestTimings`: ``<prefix>_http_request_duration_seconds{route,method,code}``
  fed by a web server's request log hook (``code`` is the status class, ``2xx``...);
- :func:`label_text`, :func:`escape_label_value`, :func:`format_value`, and
  :func:`metric_names` (the families a text declares, for checks that names exist).

Nothing here reads a clock: durations are measured by the caller (tornado measures
every request itself) and handed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

#: Bucket bounds (seconds) for request and round-trip latencies: 1 ms to 60 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
#: Bucket bounds (seconds) for long operations (deployments): 0.1 s to 1 h.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                    1800.0, 3600.0)
#: The ``route`` label of a request no route matched (404s): one value for all of them.
UNMATCHED_ROUTE = "(unmatched)"

_TYPE_RE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) \w+$", re.MULTILINE)


@attrs.define
class Histogram:
    """Observations counted in buckets (``bounds`` ascending; +Inf is implied)."""

    bounds: tuple[float, ...]
    #: Observations at or below each bound (not cumulative); the last slot is +Inf.
    counts: list[int] = attrs.field()
    total: float = 0.0
    count: int = 0

    @counts.default
    def _zeros(self) -> list[int]:
        return [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Count ``value`` (negative values count as 0: a clock never runs backwards here)."""
        value = max(value, 0.0)
        index = next((i for i, bound in enumerate(self.bounds) if value <= bound),
                     len(self.bounds))
        self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or below it)`` for every bucket, +Inf last."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


def escape_label_value(value: str) -> str:
    """A label value for the text format (backslash, quote, newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_text(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """``a="x",b="y"`` (in the order given; empty for no labels)."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)


def format_value(value: float) -> str:
    """A sample value: integers as integers, floats round-tripping, +Inf/-Inf/NaN spelled."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def histogram_lines(metric: str, labels: str, histogram: Histogram) -> list[str]:
    """The samples of one histogram series (``labels``: :func:`label_text` output or "")."""
    prefix = labels + "," if labels else ""
    lines = [f'{metric}_bucket{{{prefix}le="{_bound(bound)}"}} {count}'
             for bound, count in histogram.cumulative()]
    suffix = "{" + labels + "}" if labels else ""
    lines.append(f"{metric}_sum{suffix} {float(histogram.total)!r}")
    lines.append(f"{metric}_count{suffix} {histogram.count}")
    return lines


def header(metric: str, kind: str, help_text: str) -> list[str]:
    """The ``# HELP`` and ``# TYPE`` lines of a family."""
    return [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]


@attrs.define
class HistogramFamily:
    """Histograms of one metric, one per label set (``label_names`` in that order)."""

    bounds: tuple[float, ...]
    label_names: tuple[str, ...]
    series: dict[tuple[str, ...], Histogram] = attrs.Factory(dict)

    def observe(self, value: float, *label_values: str) -> None:
        """Count ``value`` in the series named by ``label_values`` (one per label name)."""
        if len(label_values) != len(self.label_names):
            raise ValueError(f"HistogramFamily.observe: {len(self.label_names)} label values "
                             f"expected ({', '.join(self.label_names)}), got {label_values!r}")
        histogram = self.series.get(label_values)
        if histogram is None:
            histogram = self.series[label_values] = Histogram(self.bounds)
        histogram.observe(value)

    def text(self, metric: str, help_text: str) -> str:
        """The family in the text format (HELP and TYPE even with no series yet)."""
        lines = header(metric, "histogram", help_text)
        for values in sorted(self.series):
            labels = label_text(zip(self.label_names, values, strict=True))
            lines.extend(histogram_lines(metric, labels, self.series[values]))
        return "\n".join(lines) + "\n"


class RouteTable:
    """Which route pattern served a request, from the application's route list.

    ``rules`` are ``(pattern, handler class, ...)`` as given to the web application, in
    routing order.  A handler class served by one pattern is labelled with it; one served
    by several is labelled with the first pattern the request path matches in full.
    """

    def __init__(self, rules: Iterable[Any]) -> None:
        """Index ``rules`` by handler class."""
        self._patterns: dict[type, list[tuple[re.Pattern[str], str]]] = {}
        self.add(rules)

    def add(self, rules: Iterable[Any]) -> None:
        """Index more rules (routes added to the application later)."""
        for rule in rules:
            if isinstance(rule, tuple | list):
                pattern, handler = rule[0], rule[1]
            else:  # a tornado Rule/URLSpec: its matcher's regex, when it has one
                handler = getattr(rule, "target", None)
                pattern = getattr(getattr(getattr(rule, "matcher", None), "regex", None),
                                  "pattern", None)
            if not isinstance(handler, type):
                continue
            if not isinstance(pattern, str):  # matched some other way: the handler names it
                pattern = f"({handler.__name__})"
            pattern = pattern.removesuffix("$")
            self._patterns.setdefault(handler, []).append((re.compile(pattern), pattern))

    def label(self, handler_class: type, path: str) -> str:
        """The pattern that routed ``path`` to ``handler_class``, or :data:`UNMATCHED_ROUTE`."""
        patterns = self._patterns.get(handler_class)
        if not patterns:
            return UNMATCHED_ROUTE
        if len(patterns) == 1:
            return patterns[0][1]
        for regex, pattern in patterns:
            if regex.fullmatch(path):
                return pattern
        return patterns[0][1]


class RequestTimings:
    """Request durations by route pattern, method and status class: one histogram family."""

    #: Methods kept as they are; any other becomes ``other`` (bounded label values).
    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    def __init__(self, metric: str, routes: RouteTable,
                 bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        """Time requests into ``metric`` (``..._seconds``), labelling routes by ``routes``."""
        self.metric = metric
        self.routes = routes
        self.family = HistogramFamily(bounds, ("route", "method", "code"))

    def observe(self, handler_class: type, path: str, method: str, status: int,
                seconds: float) -> None:
        """Count one finished request."""
        route = self.routes.label(handler_class, path)
        method = method if method in self.METHODS else "other"
        code = f"{status // 100}xx" if 100 <= status <= 599 else "other"
        self.family.observe(seconds, route, method, code)

    def observe_handler(self, handler: Any) -> None:
        """Count a finished tornado request handler (its own ``request_time()``)."""
        request = handler.request
        self.observe(type(handler), request.path or "/", request.method or "",
                     handler.get_status(), request.request_time())

    def text(self) -> str:
        """The family in the text format."""
        return self.family.text(self.metric,
                                "HTTP request durations by route pattern, method and status.")


def metric_names(text: str) -> set[str]:
    """The metric families ``text`` declares with ``# TYPE`` lines."""
    return set(_TYPE_RE.findall(text))
