"""URLs and pagination: build request URLs, follow ``next_url`` safely, keep pages inside the range.

``next_url`` carries a cursor and never the key; we take only its path and query and send them to
the configured base URL (its host may be a different name for the same vendor, or the real vendor
when we talk to a proxy), with the key in the ``Authorization`` header. Whether the aggregates
cursor remembers ``adjusted=false`` is not documented, so it is re-added when absent: correct
whichever way the vendor behaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import numpy as np
from yarl import URL

from mdw.domain import BarBatch, Timeframe
from mdw.errors import VendorError
from mdw.logs import redact

_KEY_PARAMS = frozenset({"apikey", "api_key"})


class PageLink:
    """Whether the page an aggregates pager last yielded came with a ``next_url`` (``more``): a
    caller that passes one learns that a page was full and more of the range is left."""

    __slots__ = ("more",)

    def __init__(self) -> None:
        self.more = False


def join(base_url: URL, path: str, params: Mapping[str, str] | None = None) -> URL:
    """``base_url`` + ``path`` (already percent-encoded) with ``params`` as the query."""
    prefix = base_url.raw_path.rstrip("/")
    url = URL(f"{base_url.scheme}://{base_url.raw_authority}{prefix}{path}", encoded=True)
    return url.with_query(dict(params)) if params else url


def aggs_path(ticker: str, timeframe: Timeframe, start_ms: int, end_ms: int) -> str:
    """The aggregates path for the half-open ``[start_ms, end_ms)``: the vendor's ``to`` is inclusive."""
    return (
        f"/v2/aggs/ticker/{quote(ticker, safe=':.')}/range/{timeframe.multiplier}/"
        f"{timeframe.timespan}/{start_ms}/{end_ms - 1}"
    )


def follow(base_url: URL, next_url: str, ensure: Mapping[str, str] | None = None) -> URL:
    """The URL to request for ``next_url``: its path+query on our base, never with a key param.

    Args:
        base_url: the configured vendor base URL.
        next_url: the vendor's ``next_url`` (absolute or relative).
        ensure: query parameters added when the cursor URL lacks them.
    """
    nxt = URL(next_url, encoded=True)
    path = nxt.raw_path or "/"
    prefix = base_url.raw_path.rstrip("/")
    if prefix and not path.startswith(prefix + "/"):
        path = prefix + path
    query = [(k, v) for k, v in nxt.query.items() if k.lower() not in _KEY_PARAMS]
    present = {k for k, _ in query}
    query.extend((k, v) for k, v in (ensure or {}).items() if k not in present)
    url = URL(f"{base_url.scheme}://{base_url.raw_authority}{path}", encoded=True)
    return url.with_query(query) if query else url


class PageGuard:
    """Refuses a ``next_url`` that was already followed, so a stuck cursor cannot loop forever."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, url: URL) -> None:
        key = str(url)
        if key in self._seen:
            shown = redact(key)
            raise VendorError(f"vendor pagination loop: next_url repeats [GET {shown}]", url=shown)
        self._seen.add(key)


def clip(batch: BarBatch, after_t: int, end_ms: int) -> BarBatch:
    """Bars with ``after_t < t < end_ms``, sorted and without duplicates.

    The vendor snaps ``from`` down to its resolution and may repeat a bar across pages; both would
    otherwise put bars outside the requested half-open range or twice into the result.
    """
    t = batch.t
    if len(t) == 0:
        return batch
    if len(t) > 1 and not bool(np.all(t[1:] > t[:-1])):
        batch = batch.sorted()
        t = batch.t
        keep = np.concatenate([[True], t[1:] != t[:-1]])
        batch = batch.take(keep)
        t = batch.t
    if t[0] > after_t and t[-1] < end_ms:
        return batch
    return batch.between(after_t + 1, end_ms)
