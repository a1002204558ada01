"""Histogram families, route labels and request timings of mesoslite.promtext."""

from __future__ import annotations

import pytest

from frameworks.marathon.wire.prometheus import prometheus_text as marathon_text
from mesoslite.master import metrics
from mesoslite.promtext import (
    DURATION_BUCKETS,
    UNMATCHED_ROUTE,
    HistogramFamily,
    RequestTimings,
    RouteTable,
    metric_names,
)
from mesoslite.protocol import Decline, Filters
from mesoslite.testing.harness import Harness
from tests.support import promtext


class Apps:
    """A stand-in handler class (route tables index classes)."""


class App:
    """Another handler class, served under two patterns."""


class Metrics:
    """A third handler class."""


ROUTES = [(r"/v2/apps", Apps, {}), (r"/v2/apps/(.+)", App, {}), (r"/v2/groups/(.+)", App, {}),
          (r"/metrics", Metrics), (r"/master/metrics", Metrics)]


def test_routes_are_labelled_by_pattern_not_path() -> None:
    """Two app ids give one route label; a class under two patterns gets the matching one."""
    table = RouteTable(ROUTES)
    assert table.label(App, "/v2/apps/web") == r"/v2/apps/(.+)"
    assert table.label(App, "/v2/apps/other/deep") == r"/v2/apps/(.+)"
    assert table.label(App, "/v2/groups/g") == r"/v2/groups/(.+)"
    assert table.label(Metrics, "/master/metrics") == "/master/metrics"
    assert table.label(Apps, "/v2/apps") == "/v2/apps"
    assert table.label(int, "/nowhere/12345") == UNMATCHED_ROUTE


def test_request_timings_bound_their_labels() -> None:
    """Many paths, odd methods and statuses collapse to few series; the text parses."""
    timings = RequestTimings("x_http_request_duration_seconds", RouteTable(ROUTES))
    for n in range(100):
        timings.observe(App, f"/v2/apps/app{n}", "GET", 200, 0.002)
    timings.observe(App, "/v2/apps/x", "BREW", 418, 0.3)
    timings.observe(int, "/random/path", "GET", 404, 0.001)
    samples = promtext.parse(timings.text())
    counts = promtext.series(samples, "x_http_request_duration_seconds_count")
    assert counts == {
        (("code", "2xx"), ("method", "GET"), ("route", "/v2/apps/(.+)")): 100.0,
        (("code", "4xx"), ("method", "other"), ("route", "/v2/apps/(.+)")): 1.0,
        (("code", "4xx"), ("method", "GET"), ("route", UNMATCHED_ROUTE)): 1.0,
    }
    le = promtext.series(samples, "x_http_request_duration_seconds_bucket",
                         route="/v2/apps/(.+)", method="GET", le="0.0025")
    assert list(le.values()) == [100.0]


def test_family_refuses_wrong_label_count() -> None:
    """Observing with the wrong number of label values names the labels expected."""
    family = HistogramFamily((1.0,), ("answer",))
    with pytest.raises(ValueError, match="answer"):
        family.observe(0.5)


def test_master_offer_round_trip_is_labelled_by_answer() -> None:
    """The master's histogram text has launch-to-RUNNING and offer round trips by answer."""
    launch = metrics.Histogram((1.0,))
    launch.observe(0.5)
    offers = HistogramFamily((0.1, 1.0), ("answer",))
    offers.observe(0.05, "accept")
    offers.observe(2.0, "decline")
    samples = promtext.parse(metrics.histograms_text(launch, offers))
    count = metrics.OFFER_ROUND_TRIP_METRIC + "_count"
    assert promtext.series(samples, count, answer="accept") == {(("answer", "accept"),): 1.0}
    inf = promtext.series(samples, metrics.OFFER_ROUND_TRIP_METRIC + "_bucket",
                          answer="decline", le="+Inf")
    assert list(inf.values()) == [1.0]
    assert samples[(metrics.LAUNCH_TO_RUNNING_METRIC + "_count", ())] == 1.0


def test_marathon_text_has_every_family_before_any_event() -> None:
    """An idle framework still declares its gauges, counters and histogram (at 0)."""
    text = marathon_text({"gauges": {"apps.count": {"value": 2}}, "counters": {}},
                         {"TASK_RUNNING": 3}, HistogramFamily(DURATION_BUCKETS, ("outcome",)))
    samples = promtext.parse(text)
    assert samples[("mesoslite_marathon_apps", ())] == 2.0
    assert samples[("mesoslite_marathon_offers_declined_total", ())] == 0.0
    assert samples[("mesoslite_marathon_tasks_by_state", (("state", "TASK_RUNNING"),))] == 3.0
    assert "mesoslite_marathon_deployment_duration_seconds" in metric_names(text)


def test_offer_round_trip_is_measured_by_the_master_core() -> None:
    """Offers answered 3 s (accept) and 0.02 s (decline) after being made (fake clock)."""
    h = Harness()
    agent_id = h.add_agent(b"a0")
    framework_id = h.subscribe(b"f1")
    [offer] = h.offers(framework_id)
    h.clock.advance(3.0)
    h.accept(b"f1", framework_id, [offer.id], [h.task("t1", agent_id, "cpus:1;mem:128")],
             filters=Filters(refuse_seconds=0))
    [again] = h.offers(framework_id)
    h.clock.advance(0.02)
    h.handle(b"f1", Decline(framework_id=framework_id, offer_ids=(again.id,)))
    family = h.state.offer_round_trip
    accept, decline = family.series[("accept",)], family.series[("decline",)]
    assert (accept.count, accept.total) == (1, 3.0)
    assert dict(accept.cumulative())[2.5] == 0 and dict(accept.cumulative())[5.0] == 1
    assert decline.count == 1 and dict(decline.cumulative())[0.025] == 1
