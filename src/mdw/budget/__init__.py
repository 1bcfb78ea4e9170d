"""One rate budget per vendor API key, shared by every mdw process that uses the key.

The host's processes (``mdw serve`` and its scheduler, CLI backfills, the Python API) share it
through the warehouse's own database, SQLite or PostgreSQL; distributed workers share it through
PostgreSQL. :func:`shared_budget` is what each of them opens next to its vendor client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mdw.budget.limiter import SharedLimiter, budget_name, enforced_rate
from mdw.config import RateLimit, Settings

__all__ = ["SharedLimiter", "budget_name", "enforced_rate", "shared_budget"]


def lease_for(settings: Settings) -> float:
    """How long a request counts as in flight at most: the client's timeouts, plus slack."""
    return float(settings.connect_timeout_s + settings.request_timeout_s + 5.0)


@contextlib.asynccontextmanager
async def shared_budget(
    settings: Settings, *, url: str | None = None, margin_s: float | None = None, spacing_cap_s: float = 0.05,
) -> AsyncIterator[SharedLimiter | None]:
    """The shared limiter of ``settings``' key in the warehouse at ``url`` (default: its database).

    Yields None when there is nothing to share: an unlimited plan (only Retry-After applies, per
    process) or an in-memory SQLite database (no other process can see it); the client then uses
    its in-process limiter.

    Raises:
        ConfigError: another process uses the key right now with a different rate limit.
        StoreError: the database is unreachable or not migrated.
    """
    from mdw.store.budget import open_budget_store

    rate = RateLimit.parse(settings.rate_limit)
    if rate.unlimited or not settings.api_key:
        yield None
        return
    store = await open_budget_store(url or settings.database_url)
    if store is None:
        yield None
        return
    limiter = SharedLimiter(store, rate, name=budget_name(settings.api_key), lease_s=lease_for(settings),
                            owns_store=True, margin_s=margin_s, spacing_cap_s=spacing_cap_s)
    try:
        await limiter.open()
    except BaseException:
        await store.close()
        raise
    try:
        yield limiter
    finally:
        await limiter.close()
