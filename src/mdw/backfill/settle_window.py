"""The settle window: which recent sessions the settle pass re-fetches, and from when (pure).

A session's bars are revised by the vendor after the close (late-reported trades, tape
corrections); the revision is in by the next morning. A session may be settled from ``after``
(ET) on the calendar day after it, and the pass looks at the last ``sessions`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from mdw.calendar import nyse_sessions, uses_nyse
from mdw.domain import NEW_YORK, AssetClass, TimeRange, from_ms
from mdw.domain import local_midnight_ms as midnight
from mdw.errors import UsageError

DEFAULT_SESSIONS = 2
DEFAULT_AFTER = time(11, 0)


@dataclass(frozen=True, slots=True)
class SettleWindow:
    """How far back the settle pass looks, and when a session may be settled.

    Args:
        sessions: the last this many trading days are settled (0 turns settling off).
        after: a session is settled after this time (ET) on the calendar day after it.
    """

    sessions: int = DEFAULT_SESSIONS
    after: time = DEFAULT_AFTER

    @classmethod
    def parse(cls, sessions: int, after: str) -> SettleWindow:
        """From the settings ``settle_sessions`` and ``settle_after`` (``HH:MM``, ET).

        Raises:
            UsageError: ``after`` is not a time of day or ``sessions`` is negative.
        """
        try:
            at = time.fromisoformat(after.strip())
        except ValueError:
            raise UsageError(f"invalid settle time {after!r}; expected HH:MM (ET), e.g. 11:00") from None
        if sessions < 0:
            raise UsageError(f"settle sessions must not be negative, got {sessions}")
        return cls(sessions, at)

    def days(self, asset: AssetClass, now_ms: int) -> list[date]:
        """The trading days of ``asset`` this window settles at ``now_ms``, oldest first."""
        if self.sessions == 0:
            return []
        today = from_ms(now_ms).astimezone(NEW_YORK).date()
        if uses_nyse(asset):
            candidates = [s.day for s in nyse_sessions(today - timedelta(days=10 + 2 * self.sessions), today)]
        else:
            candidates = [today - timedelta(days=i) for i in range(self.sessions + 2, -1, -1)]
        due = [d for d in candidates if self.due_ms(d) <= now_ms]
        return due[-self.sessions:]

    def due_ms(self, day: date) -> int:
        """When the session of ``day`` may be settled: ``after`` ET on the next calendar day."""
        return int(datetime.combine(day + timedelta(days=1), self.after, tzinfo=NEW_YORK).timestamp() * 1000)

    def range(self, asset: AssetClass, now_ms: int) -> TimeRange | None:
        """The span of the settle days in the asset's zone (None: nothing to settle yet)."""
        days = self.days(asset, now_ms)
        if not days:
            return None
        return TimeRange(midnight(days[0], asset.tz), midnight(days[-1] + timedelta(days=1), asset.tz))
