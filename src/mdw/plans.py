"""The vendor's plans: how far back a key may ask, how late its data is, how fast it may ask.

A plan is what the vendor sells (``free``, ``starter``, ``developer``, ``advanced``) or an explicit
``history=5y,delay=15m,rate=unlimited,flatfiles=yes``. mdw reads it from ``MDW_PLAN`` so that one
setting says what the key may do; the individual settings (``MDW_RATE_LIMIT``, ``MDW_HISTORY``,
``MDW_DATA_DELAY``) still override their part. The simulator parses the same text for its keys,
so a test names a plan once and both sides agree on what it means.

Pure: dates and instants come in as arguments, never from the clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mdw.errors import ConfigError

_NEW_YORK = ZoneInfo("America/New_York")
_HISTORY_RE = re.compile(r"^(\d{1,3})\s*(y|d)$")
_DELAY_RE = re.compile(r"^(\d{1,5})\s*(s|m|min|h)$")
_DELAY_UNITS_MS = {"s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}
RATE_FORMS = "N/s, N/min or N/h (e.g. 5/min, 100/s), or 'unlimited'"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` request starts in any sliding window of ``period`` seconds.

    ``requests`` is ``math.inf`` for an unlimited plan.
    """

    requests: float
    period: float

    @classmethod
    def parse(cls, text: str | RateLimit) -> RateLimit:
        """Parse ``5/min``, ``100/s``, ``300/5min``-style strings or ``unlimited``.

        ``unlimited`` is the only spelling of no limit: ``0``, ``none`` or ``inf`` are errors, so a
        typo or an empty value can never turn pacing off (a limit that fails open).

        Raises:
            ConfigError: the text is not a rate; the message gives the accepted forms.
        """
        if isinstance(text, RateLimit):
            return text
        raw = str(text).strip().lower()
        if raw == "unlimited":
            return cls(math.inf, 1.0)
        m = _RATE_RE.fullmatch(raw)
        if not m:
            raise ConfigError(f"invalid rate limit {text!r}; expected {RATE_FORMS}")
        count = float(m[1])
        period = (float(m[2]) if m[2] else 1.0) * _PERIODS[m[3]]
        if count <= 0 or period <= 0:
            raise ConfigError(f"invalid rate limit {text!r}; expected {RATE_FORMS}")
        return cls(count, period)

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.requests)

    @property
    def per_second(self) -> float:
        return self.requests / self.period

    def seconds_for(self, requests: int) -> float:
        """The least wall time ``requests`` can take under this limit (the physical limit)."""
        if self.unlimited or requests <= 0:
            return 0.0
        windows = max(0, math.ceil(requests / self.requests) - 1)
        return windows * self.period

    def __str__(self) -> str:
        if self.unlimited:
            return "unlimited"
        count = int(self.requests) if float(self.requests).is_integer() else self.requests
        for name, secs in (("h", 3600.0), ("min", 60.0), ("s", 1.0)):
            if self.period == secs:
                return f"{count}/{name}"
        return f"{count}/{self.period:g}s"


PLAN_FORMS = ("free, starter, developer, advanced, or key=value pairs such as "
              "history=5y,delay=15m,rate=unlimited,flatfiles=yes (history: Ny, Nd or all; "
              "delay: 0, Nm, Nh or eod; rate: as MDW_RATE_LIMIT; flatfiles: yes or no)")


@dataclass(frozen=True, slots=True)
class History:
    """How far back a plan reaches: ``years`` calendar years, or ``days`` days, or everything."""

    years: int | None = None
    days: int | None = None

    @classmethod
    def parse(cls, text: str) -> History:
        """``2y``, ``730d`` or ``all``.

        Raises:
            ConfigError: another form.
        """
        raw = text.strip().lower()
        if raw in ("all", "unlimited"):
            return cls()
        m = _HISTORY_RE.fullmatch(raw)
        if not m or int(m[1]) == 0:
            raise ConfigError(f"invalid history {text!r}; expected Ny (years), Nd (days) or all")
        return cls(years=int(m[1])) if m[2] == "y" else cls(days=int(m[1]))

    @property
    def unlimited(self) -> bool:
        return self.years is None and self.days is None

    def first_day(self, today: date) -> date | None:
        """The first day a plan with this history may ask for on ``today`` (None: no bound).

        Calendar years: two years back from 2026-03-04 is 2024-03-04 (29 February falls back to
        the 28th), as the vendor's plan pages count them.
        """
        if self.years is not None:
            year = today.year - self.years
            try:
                return today.replace(year=year)
            except ValueError:
                return date(year, today.month, 28)
        if self.days is not None:
            return today - timedelta(days=self.days)
        return None

    def __str__(self) -> str:
        if self.years is not None:
            return f"{self.years}y"
        if self.days is not None:
            return f"{self.days}d"
        return "all"


@dataclass(frozen=True, slots=True)
class Delay:
    """How late a plan's data is published: ``ms`` behind real time, or only after the day ends."""

    ms: int = 0
    end_of_day: bool = False

    @classmethod
    def parse(cls, text: str) -> Delay:
        """``0`` (real time), ``15m``, ``1h``, ``30s`` or ``eod``.

        Raises:
            ConfigError: another form.
        """
        raw = text.strip().lower()
        if raw in ("0", "realtime", "real-time", "none"):
            return cls()
        if raw in ("eod", "end-of-day"):
            return cls(end_of_day=True)
        m = _DELAY_RE.fullmatch(raw)
        if not m:
            raise ConfigError(f"invalid data delay {text!r}; expected 0, Nm, Nh, Ns or eod")
        return cls(ms=int(m[1]) * _DELAY_UNITS_MS[m[2]])

    def published_before_ms(self, now_ms: int) -> int:
        """The instant before which the plan's data is published at ``now_ms``.

        End-of-day data is published when the New York day ends: at ``now_ms`` everything before
        today's midnight is out, nothing of today is.
        """
        if self.end_of_day:
            day = datetime.fromtimestamp(now_ms / 1000, tz=_NEW_YORK).date()
            return int(datetime.combine(day, time(), tzinfo=_NEW_YORK).timestamp() * 1000)
        return now_ms - self.ms

    def __str__(self) -> str:
        if self.end_of_day:
            return "eod"
        if self.ms == 0:
            return "0"
        for unit, size in (("h", 3_600_000), ("m", 60_000)):
            if self.ms % size == 0:
                return f"{self.ms // size}{unit}"
        return f"{self.ms // 1000}s"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one API key may do: its history depth, its delay, its request rate, its flat files.

    ``name`` is the vendor's plan name, or ``custom`` for an explicit spec.
    """

    name: str
    history: History
    delay: Delay
    rate: RateLimit
    flatfiles: bool

    @classmethod
    def parse(cls, text: str | Plan) -> Plan:
        """A plan name or an explicit ``key=value,...`` spec (missing keys: the ``free`` plan's).

        Raises:
            ConfigError: an unknown name, key or value; the message gives the accepted forms.
        """
        if isinstance(text, Plan):
            return text
        raw = text.strip().lower()
        if raw in PLANS:
            return PLANS[raw]
        if "=" not in raw:
            raise ConfigError(f"unknown plan {text!r}; expected {PLAN_FORMS}")
        plan = replace(PLANS["free"], name="custom")
        for item in raw.split(","):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise ConfigError(f"invalid plan item {item.strip()!r}; expected {PLAN_FORMS}")
            if key == "history":
                plan = replace(plan, history=History.parse(value))
            elif key == "delay":
                plan = replace(plan, delay=Delay.parse(value))
            elif key == "rate":
                plan = replace(plan, rate=RateLimit.parse(value))
            elif key == "flatfiles":
                if value not in ("yes", "no", "true", "false"):
                    raise ConfigError(f"invalid plan flatfiles {value!r}; expected yes or no")
                plan = replace(plan, flatfiles=value in ("yes", "true"))
            else:
                raise ConfigError(f"unknown plan key {key!r}; expected {PLAN_FORMS}")
        return plan

    def first_day(self, today: date) -> date | None:
        """The first day this plan may ask for on ``today`` (None: no bound)."""
        return self.history.first_day(today)

    def spec(self) -> str:
        """The explicit form, which :meth:`parse` reads back to an equal plan (bar its name)."""
        return (f"history={self.history},delay={self.delay},rate={self.rate},"
                f"flatfiles={'yes' if self.flatfiles else 'no'}")

    def __str__(self) -> str:
        return self.name if self.name != "custom" else self.spec()


@dataclass(frozen=True, slots=True)
class Limits:
    """What a run may ask for: the key's plan, and the safety margin kept behind its delay.

    A delayed plan's newest data is not yet published: a window that ended less than the delay
    (plus ``margin_ms``) ago would come back empty or short, and marking it covered would leave a
    permanent hole. :meth:`final_before_ms` is the instant the planner treats as "now".
    """

    plan: Plan
    margin_ms: int = 60_000

    def first_day(self, now_ms: int) -> date | None:
        """The first day the plan's history reaches on the New York day of ``now_ms`` (None: all)."""
        return self.plan.first_day(datetime.fromtimestamp(now_ms / 1000, tz=_NEW_YORK).date())

    def final_before_ms(self, now_ms: int) -> int:
        """Windows ending at or before this instant are published (real time: ``now_ms`` itself)."""
        delay = self.plan.delay
        if delay.ms == 0 and not delay.end_of_day:
            return now_ms
        return delay.published_before_ms(now_ms) - self.margin_ms


# The vendor's stocks plans as its pricing page describes them (Basic is the free one).
PLANS: dict[str, Plan] = {
    "free": Plan("free", History(years=2), Delay(end_of_day=True), RateLimit(5.0, 60.0), False),
    "starter": Plan("starter", History(years=5), Delay(ms=15 * 60_000), RateLimit.parse("unlimited"), True),
    "developer": Plan("developer", History(years=10), Delay(ms=15 * 60_000), RateLimit.parse("unlimited"),
                      True),
    "advanced": Plan("advanced", History(), Delay(), RateLimit.parse("unlimited"), True),
}
