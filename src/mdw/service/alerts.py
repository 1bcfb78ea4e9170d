"""Webhook alerts: a JSON POST on run failure, on stale data and on breaker open/close.

Alerts are queued and delivered by one side task, so raising an alert never blocks a request,
a run or the vendor client's event hook. A webhook that is down is retried a few times and then
logged and counted; it can never take the service down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import aiohttp
import stamina

from mdw.clock import Clock
from mdw.domain import SeriesKey, from_ms
from mdw.logs import get_logger, redact
from mdw.service.freshness import SeriesFreshness
from mdw.service.metrics import ServiceMetrics

log = get_logger(__name__)
KINDS = ("run_failed", "stale_data", "breaker_open", "breaker_closed", "stream_auth_failed")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as posted: ``{"source", "kind", "severity", "at_ms", "at", "summary", "detail"}``."""

    kind: str
    severity: str
    summary: str
    at_ms: int
    detail: dict[str, object] = field(default_factory=dict)

    def payload(self) -> dict[str, object]:
        return {"source": "mdw", "kind": self.kind, "severity": self.severity, "at_ms": self.at_ms,
                "at": from_ms(self.at_ms).isoformat(), "summary": redact(self.summary),
                "detail": self.detail}


class Alerter:
    """Queue of alerts and the task that posts them to ``webhook_url`` (a no-op without one)."""

    def __init__(self, webhook_url: str | None, metrics: ServiceMetrics, clock: Clock) -> None:
        self.webhook_url = webhook_url
        self._metrics = metrics
        self._clock = clock
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=1000)
        self.recent: list[Alert] = []  # the last alerts, for the API and the dashboard
        self._stale: set[SeriesKey] = set()

    def raise_alert(self, kind: str, severity: str, summary: str, **detail: object) -> None:
        """Record an alert and queue it for delivery (drops, with a log line, when the queue is full)."""
        alert = Alert(kind, severity, summary, self._clock.now_ms(), detail)
        self.recent = [*self.recent[-99:], alert]
        log.warning("alert raised", action="alert.raise", kind=kind, summary=summary)
        if self.webhook_url is None:
            return
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._metrics.alerts.labels(kind, "dropped").inc()

    def check_stale(self, series: list[SeriesFreshness], threshold_s: float) -> None:
        """Alert once when a series' lag crosses ``threshold_s``; re-arm when it is fresh again."""
        now_stale = set()
        for s in series:
            lag_s = s.lag_ms / 1000
            if lag_s > threshold_s:
                now_stale.add(s.series)
                if s.series not in self._stale:
                    self.raise_alert("stale_data", "warning",
                                     f"{s.series} is {lag_s / 3600:.1f} h of trading time behind",
                                     ticker=s.series.ticker, timeframe=str(s.series.timeframe), lag_s=lag_s,
                                     threshold_s=threshold_s)
        self._stale = now_stale

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver queued alerts until ``stop``; then deliver what is left, briefly."""
        if self.webhook_url is None:
            await stop.wait()
            return
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if getter in done:
                    await self._deliver(session, getter.result())
                else:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while not self._queue.empty():
                        await self._deliver(session, self._queue.get_nowait())

    async def _deliver(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        assert self.webhook_url is not None
        try:
            async for attempt in stamina.retry_context(on=_worth_retrying, attempts=3, timeout=30.0):
                with attempt:
                    async with session.post(self.webhook_url, json=alert.payload()) as resp:
                        if 400 <= resp.status < 500:  # refused: asking again won't help
                            log.error("webhook refused an alert", action="alert.refused", kind=alert.kind,
                                      status=resp.status)
                            self._metrics.alerts.labels(alert.kind, "refused").inc()
                            return
                        resp.raise_for_status()  # a 5xx: ClientResponseError, tried again
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error("webhook delivery failed", action="alert.failed", kind=alert.kind, error=str(exc))
            self._metrics.alerts.labels(alert.kind, "failed").inc()
            return
        self._metrics.alerts.labels(alert.kind, "sent").inc()


def _worth_retrying(exc: Exception) -> bool:
    """A webhook that is down, slow or answering 5xx may recover; anything else is not retried."""
    return isinstance(exc, aiohttp.ClientError | TimeoutError)
