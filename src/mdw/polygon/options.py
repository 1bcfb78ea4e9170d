"""The client's settings, grouped by what they govern, as small frozen values.

:class:`Pacing` (how fast and how many at once), :class:`RetryPolicy` (how often a failed request
is tried again), :class:`BreakerPolicy` (when to stop calling a vendor that is down and how to
find out it is back) and :class:`~mdw.polygon.transport.Timeouts` (how long one request may take).
:func:`options_from_settings` builds all four from :class:`~mdw.config.Settings`, so the CLI, the
Python API, the service and scale-out configure the client the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mdw.config import RateLimit, Settings
from mdw.polygon.transport import Timeouts

PAGE_LIMIT = 50_000  # the vendor's largest aggregates ``limit``


@dataclass(frozen=True, slots=True)
class Pacing:
    """How fast requests start and how many are out at once.

    Args:
        rate_limit: the plan's limit (``"5/min"``, ``"100/s"``, ``"unlimited"``); ignored when the
            client is given a shared limiter.
        max_in_flight: concurrent requests at most (also the connection pool size).
        page_limit: the aggregates ``limit`` (base bars per page); the vendor's maximum by default.
    """

    rate_limit: RateLimit | str = field(default_factory=lambda: RateLimit.parse("5/min"))
    max_in_flight: int = 16
    page_limit: int = PAGE_LIMIT

    @property
    def rate(self) -> RateLimit:
        """The rate limit, parsed."""
        return RateLimit.parse(self.rate_limit)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per request and the capped exponential backoff with full jitter between them.

    Attempt ``k`` that failed waits ``U(0, min(cap_s, base_s * 2**(k-1)))``, or the vendor's
    Retry-After when that is longer (up to ``cap_s``).

    Args:
        attempts: total attempts including the first (so ``attempts - 1`` retries).
        base_s: the first backoff ceiling.
        cap_s: the largest backoff ceiling.
    """

    attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 300.0

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the circuit opens and how it probes the vendor again.

    Args:
        threshold: consecutive transient failures that open the breaker.
        cooldown_s: the first cool-down before probing.
        cooldown_cap_s: the longest cool-down; a half-open spell whose probes all failed doubles
            it up to this cap. It bounds recovery: after an outage of T seconds answered by errors,
            work resumes within about T + ``cooldown_cap_s`` + ``probe_gap_s``.
        probes: probes in one half-open spell before it re-opens, so one 5xx as the vendor comes
            back doesn't cost a whole cool-down.
        probe_gap_s: the pause between those probes.
    """

    threshold: int = 5
    cooldown_s: float = 10.0
    cooldown_cap_s: float = 20.0
    probes: int = 3
    probe_gap_s: float = 1.0


def options_from_settings(settings: Settings) -> tuple[Pacing, RetryPolicy, BreakerPolicy, Timeouts]:
    """The four option groups as :class:`~mdw.config.Settings` (env, ``mdw.toml``) sets them."""
    return (
        Pacing(settings.rate_limit, settings.max_in_flight),
        RetryPolicy(settings.retry_attempts, settings.retry_base_s, settings.retry_cap_s),
        BreakerPolicy(settings.breaker_threshold, settings.breaker_cooldown_s,
                      settings.breaker_cooldown_cap_s),
        Timeouts(settings.connect_timeout_s, settings.request_timeout_s),
    )
