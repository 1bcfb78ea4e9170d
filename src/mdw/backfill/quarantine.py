"""Invalid bars a run refuses to store go to the store's quarantine: reported, kept, never silently lost.

The vendor client (after its last attempt) and the store (before any write) raise
:class:`~mdw.errors.ValidationError` holding the offending bars and why each is invalid; this module
turns those into :class:`~mdw.store.base.QuarantinedBar` rows stamped with the run and the request.
"""

from __future__ import annotations

from mdw.clock import now_ms
from mdw.errors import StoreError, ValidationError
from mdw.logs import get_logger
from mdw.store.base import QuarantinedBar, Store

log = get_logger(__name__)


def quarantine_entries(error: ValidationError, run_id: str, at_ms: int) -> list[QuarantinedBar]:
    """One entry per offending bar the error holds (none when it holds no bars)."""
    bars = error.bars
    if bars is None or not len(bars):
        return []
    reasons = list(error.reasons) + ["breaks a bar invariant"] * (len(bars) - len(error.reasons))
    tf, url = str(bars.timeframe), error.url or ""
    return [
        QuarantinedBar(bars.ticker, tf, t, o, h, lo, c, v, vw, n, reason, run_id, url, at_ms)
        for t, o, h, lo, c, v, vw, n, reason in zip(
            bars.t.tolist(), bars.o.tolist(), bars.h.tolist(), bars.l.tolist(), bars.c.tolist(),
            bars.v.tolist(), bars.vw.tolist(), bars.n.tolist(), reasons, strict=False)
    ]


async def quarantine_error(store: Store, error: ValidationError, run_id: str) -> tuple[int, str]:
    """Quarantine the bars of ``error``; returns how many, and the failure's reason for the report.

    A store that cannot take them does not hide the original failure: the reason says both.
    """
    entries = quarantine_entries(error, run_id, now_ms())
    if not entries:
        return 0, str(error)
    try:
        kept = await store.quarantine.add(entries)
    except StoreError as exc:
        log.error("could not quarantine invalid bars", action="backfill.quarantine_failed",
                  bars=len(entries), error=str(exc))
        return 0, f"{error} (quarantining its {len(entries)} bar(s) failed: {exc})"
    log.warning("invalid bars quarantined", action="backfill.quarantined", bars=kept,
                ticker=entries[0].ticker, timeframe=entries[0].timeframe, run_id=run_id)
    return kept, f"{error} ({kept} bar(s) quarantined: mdw quarantine --symbols {entries[0].ticker})"
