"""Prometheus metrics of one ``mdw serve`` process (single process: no multiprocess mode needed).

Vendor counters are read from the client's :class:`~mdw.polygon.ClientStats` at scrape time by a
custom collector, so they can never drift from what the client counted. Service-side counters
(HTTP latency, runs, rows written, scheduler skips, alerts) are ordinary instruments, and
per-series freshness gauges are refreshed by the ``/metrics`` handler just before rendering.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from mdw.domain import SeriesKey
from mdw.polygon import BreakerState, ClientStats
from mdw.service.freshness import SeriesFreshness
from mdw.stream.state import StreamState

BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class VendorCollector(Collector):
    """Turns the vendor client's stats snapshot into metric families at scrape time."""

    def __init__(self, stats: Callable[[], ClientStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        if s is None:
            return
        yield CounterMetricFamily("mdw_vendor_requests", "HTTP requests sent to the vendor",
                                  value=s.total_requests)
        yield CounterMetricFamily("mdw_vendor_rate_limited", "Vendor answers with status 429",
                                  value=s.rate_limited_count)
        yield CounterMetricFamily("mdw_vendor_retries", "Vendor requests retried", value=s.retries)
        failures = CounterMetricFamily("mdw_vendor_failures", "Failed vendor attempts by error class",
                                       labels=["error"])
        for name, count in sorted(s.failures_by_class.items()):
            failures.add_metric([name], count)
        yield failures
        yield CounterMetricFamily("mdw_vendor_bytes_received", "Response bytes from the vendor",
                                  value=s.bytes_received)
        yield CounterMetricFamily("mdw_vendor_bars_decoded", "Bars decoded from vendor pages",
                                  value=s.bars_decoded)
        state = GaugeMetricFamily("mdw_vendor_breaker_state",
                                  "Circuit breaker: 0 closed, 1 half-open, 2 open", labels=[])
        state.add_metric([], BREAKER_VALUES[s.breaker_state])
        yield state
        yield CounterMetricFamily("mdw_vendor_breaker_transitions", "Circuit breaker state changes",
                                  value=s.breaker_transitions_total)
        yield GaugeMetricFamily("mdw_vendor_rate_limit_per_second",
                                "The limiter's current allowance (requests per second)",
                                value=s.limiter_per_second)
        cumulative = s.latency.cumulative()
        buckets = [(("+Inf" if b == float("inf") else repr(b)), c)
                   for b, c in zip(s.latency.bounds, cumulative, strict=True)]
        hist = HistogramMetricFamily("mdw_vendor_request_duration_seconds", "Vendor request latency",
                                     labels=[])
        hist.add_metric([], buckets, sum_value=s.latency.sum_s)
        yield hist


class StreamCollector(Collector):
    """The stream's state (connections, messages, bars, lag, reconciliation) at scrape time."""

    def __init__(self, state: Callable[[], StreamState | None]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        s = self._state()
        if s is None:
            return
        connected = GaugeMetricFamily("mdw_stream_connected", "1 while the feed is subscribed",
                                      labels=["feed"])
        connects = CounterMetricFamily("mdw_stream_connects", "Successful connections (auth and subscribe)",
                                       labels=["feed"])
        drops = CounterMetricFamily("mdw_stream_disconnects", "Connections lost (then reconnected)",
                                    labels=["feed"])
        for name, feed in sorted(s.feeds.items()):
            connected.add_metric([name], 1 if feed.connected else 0)
            connects.add_metric([name], feed.connects)
            drops.add_metric([name], feed.disconnects)
        yield connected
        yield connects
        yield drops
        yield CounterMetricFamily("mdw_stream_messages", "Events received", value=s.messages)
        yield GaugeMetricFamily("mdw_stream_messages_per_second", "Events per second over the last 10 s",
                                value=s.messages_per_s(time.monotonic()))
        bars = CounterMetricFamily("mdw_stream_bars", "Streamed minute bars by outcome", labels=["outcome"])
        for outcome, n in (("received", s.bars_received), ("stored", s.bars_stored),
                           ("replaced", s.bars_replaced), ("stale", s.bars_stale),
                           ("invalid", s.bars_invalid)):
            bars.add_metric([outcome], n)
        yield bars
        if s.lag_ms is not None:
            yield GaugeMetricFamily("mdw_stream_lag_seconds", "Storage of the last batch after its newest "
                                    "bar's window ended", value=s.lag_ms / 1000)
        if s.last_message_ms is not None:
            yield GaugeMetricFamily("mdw_stream_last_message_timestamp_seconds", "When the last frame came",
                                    value=s.last_message_ms / 1000)
        r = s.reconcile
        rec = CounterMetricFamily("mdw_stream_reconciled_bars", "Streamed spans checked over REST, by "
                                  "outcome", labels=["outcome"])
        for outcome, n in (("confirmed", r.bars_confirmed), ("corrected", r.bars_corrected),
                           ("filled", r.bars_filled)):
            rec.add_metric([outcome], n)
        yield rec
        yield CounterMetricFamily("mdw_stream_reconcile_failures", "Reconciliation passes that failed",
                                  value=r.failures)


class ServiceMetrics:
    """The registry and instruments of one app (a registry per app keeps tests independent)."""

    def __init__(self, stats: Callable[[], ClientStats | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.registry.register(VendorCollector(stats))
        self.http_latency = Histogram(
            "mdw_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route", "status"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        )
        self.rows_written = Counter("mdw_rows_written", "Bars inserted or corrected by runs", registry=r)
        self.runs = Counter("mdw_runs", "Finished runs by kind and status", ["kind", "status"], registry=r)
        self.run_duration = Histogram(
            "mdw_run_duration_seconds", "Wall time of finished runs", ["kind"], registry=r,
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
        )
        self.last_run_finished = Gauge("mdw_last_run_finished_timestamp_seconds",
                                       "When the last run finished (epoch seconds)", registry=r)
        self.freshness = Gauge("mdw_series_freshness_seconds",
                               "Tradable time since the series' stored data ends", ["ticker", "timeframe"],
                               registry=r)
        self.series_bars = Gauge("mdw_series_bars", "Bars stored per series", ["ticker", "timeframe"],
                                 registry=r)
        self.leader = Gauge("mdw_scheduler_leader", "1 when this process runs the scheduler", registry=r)
        self.scheduled = Counter("mdw_scheduler_jobs", "Scheduled jobs by outcome", ["outcome"], registry=r)
        self.alerts = Counter("mdw_alerts", "Webhook alerts by kind and delivery outcome",
                              ["kind", "outcome"], registry=r)
        self._fresh_labels: set[SeriesKey] = set()

    def set_freshness(self, series: list[SeriesFreshness]) -> None:
        """Replace the per-series freshness gauges (series that vanished are dropped)."""
        seen = set()
        for s in series:
            seen.add(s.series)
            self.freshness.labels(s.series.ticker, str(s.series.timeframe)).set(s.lag_ms / 1000)
        for gone in self._fresh_labels - seen:
            self.freshness.remove(gone.ticker, str(gone.timeframe))
        self._fresh_labels = seen

    def set_series_bars(self, counts: dict[SeriesKey, int]) -> None:
        self.series_bars.clear()
        for key, n in counts.items():
            self.series_bars.labels(key.ticker, str(key.timeframe)).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
