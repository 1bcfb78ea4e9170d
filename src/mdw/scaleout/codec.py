"""Planned work as JSON job arguments, and the queueing lock that names one window.

A procrastinate job carries its unit of work as plain JSON; these functions are the exact inverse of
each other, so a worker rebuilds the very request the planner produced (no re-planning on the
worker, no drift between planner and job).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

from mdw.backfill.plan import ActionsRequest, DeriveTask, PlannedRequest, Target
from mdw.domain import AssetClass, Timeframe, TimeRange

if TYPE_CHECKING:
    from procrastinate.types import JSONDict

Work = PlannedRequest | ActionsRequest | DeriveTask


def encode(work: Work) -> JSONDict:
    """The JSON form of one unit of planned work."""
    if isinstance(work, PlannedRequest):
        return {
            "type": "request", "kind": work.kind, "asset": work.asset.value, "ticker": work.ticker,
            "timeframe": str(work.timeframe), "fetch": [work.fetch.start_ms, work.fetch.end_ms],
            "base_units": work.base_units, "pages": work.pages, "density": work.density,
            "targets": [[t.ticker, str(t.timeframe), t.covers.start_ms, t.covers.end_ms, t.derived,
                         t.listed] for t in work.targets],
        }
    if isinstance(work, ActionsRequest):
        return {"type": "actions", "ticker": work.ticker, "kind": work.kind,
                "covers": [work.covers.start_ms, work.covers.end_ms], "tickers": list(work.tickers),
                "market_wide": work.market_wide, "pages": work.pages}
    return {"type": "derive", "ticker": work.ticker, "asset": work.asset.value, "source": str(work.source),
            "target": str(work.target), "covers": [work.covers.start_ms, work.covers.end_ms]}


def decode(data: dict[str, Any]) -> Work:
    """Rebuild the unit of work from :func:`encode`'s output.

    Raises:
        ValueError: the payload is not one this version wrote.
    """
    kind = data.get("type")
    if kind == "request":
        targets = tuple(Target(str(t), Timeframe.parse(tf), TimeRange(int(s), int(e)), bool(d),
                               bool(rest[0]) if rest else False)
                        for t, tf, s, e, d, *rest in data["targets"])
        fetch = TimeRange(int(data["fetch"][0]), int(data["fetch"][1]))
        req_kind: Literal["aggs", "grouped"] = "grouped" if data["kind"] == "grouped" else "aggs"
        return PlannedRequest(req_kind, AssetClass(data["asset"]), str(data["ticker"]),
                              Timeframe.parse(data["timeframe"]), fetch, targets, int(data["base_units"]),
                              int(data.get("pages", 1)),
                              None if data.get("density") is None else float(data["density"]))
    if kind == "actions":
        action: Literal["dividends", "splits"] = "dividends" if data["kind"] == "dividends" else "splits"
        return ActionsRequest(str(data["ticker"]), action, _span(data["covers"]),
                              tuple(str(t) for t in data.get("tickers", ())), bool(data.get("market_wide")),
                              int(data.get("pages", 1)))
    if kind == "derive":
        return DeriveTask(str(data["ticker"]), AssetClass(data["asset"]), Timeframe.parse(data["source"]),
                          Timeframe.parse(data["target"]), _span(data["covers"]))
    raise ValueError(f"unknown job payload type {kind!r}")


def _span(pair: list[int]) -> TimeRange:
    return TimeRange(int(pair[0]), int(pair[1]))


def window_lock(work: Work) -> str:
    """The queueing lock of one window: two plans of the same window yield the same lock."""
    if isinstance(work, PlannedRequest):
        who = work.ticker or f"grouped:{work.asset.value}"
        return f"mdw:{work.kind}:{who}:{work.timeframe}:{work.fetch.start_ms}:{work.fetch.end_ms}"
    if isinstance(work, ActionsRequest):
        who = work.ticker or "many:" + hashlib.sha256(",".join(work.tickers).encode()).hexdigest()[:16]
        return f"mdw:{work.kind}:{who}:{work.covers.start_ms}:{work.covers.end_ms}"
    return f"mdw:derive:{work.ticker}:{work.target}:{work.covers.start_ms}:{work.covers.end_ms}"
