"""Decode WebSocket frames with msgspec: minute aggregates into columns, statuses as they are.

A frame is a JSON array of events tagged by ``ev``: ``AM`` (stocks, per minute), ``XA`` (crypto,
per minute), ``status``. Other events (``A``/``XAS`` second bars, trades, quotes) are counted and
skipped, never mistaken for minute bars. The stream carries no trade count, so ``n`` is 0 in a
streamed bar (REST's count arrives with reconciliation). A crypto pair is spelt ``BTC-USD`` on the
stream and ``X:BTCUSD`` in the warehouse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec

from mdw.domain import MINUTE_MS
from mdw.errors import VendorTransientError

NAN = math.nan


class StockMinute(msgspec.Struct, tag_field="ev", tag="AM", gc=False):
    """``AM``: fields as the vendor sends them (``op``, ``av``, ``a``, ``z`` are not kept)."""

    sym: str
    o: float
    h: float
    l: float  # noqa: E741 - the vendor's field name
    c: float
    s: int
    e: int
    v: float = NAN
    vw: float = NAN


class CryptoMinute(msgspec.Struct, tag_field="ev", tag="XA", gc=False):
    """``XA``: a crypto pair's minute."""

    pair: str
    o: float
    h: float
    l: float  # noqa: E741
    c: float
    s: int
    e: int
    v: float = NAN
    vw: float = NAN


class Status(msgspec.Struct, tag_field="ev", tag="status", gc=False):
    """``status``: connected, auth_success, auth_failed, success (subscribed to: ...), error ..."""

    status: str
    message: str = ""


class Other(msgspec.Struct, gc=False):
    """Any event, read only for its ``ev`` (the slow path for frames holding other events)."""

    ev: str = ""


Event = StockMinute | CryptoMinute | Status
_frame = msgspec.json.Decoder(list[Event])
_one = msgspec.json.Decoder(Event)
_raw = msgspec.json.Decoder(list[msgspec.Raw])
_other = msgspec.json.Decoder(Other)


class FrameError(VendorTransientError):
    """A frame that is not a JSON array of events (counted; the connection goes on)."""


def ticker_of(event: StockMinute | CryptoMinute) -> str:
    """The warehouse's ticker: ``AAPL``, or ``X:BTCUSD`` for the pair ``BTC-USD``."""
    if isinstance(event, StockMinute):
        return event.sym
    return "X:" + event.pair.replace("-", "")


def symbol_of(ticker: str) -> tuple[str, str]:
    """The (market path, subscription param) of a warehouse ticker: ``stocks``/``AM.AAPL``, or
    ``crypto``/``XA.BTC-USD``."""
    if ticker.startswith("X:"):
        body = ticker[2:]
        return "crypto", f"XA.{body[:-3]}-{body[-3:]}"
    return "stocks", f"AM.{ticker}"


@dataclass(slots=True)
class Frame:
    """One decoded frame: its minute bars, its statuses, how many other events it held."""

    bars: list[StockMinute | CryptoMinute] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    skipped: int = 0


def decode_frame(data: bytes | str) -> Frame:
    """Split a frame into minute bars and statuses.

    Raises:
        FrameError: not JSON, not an array, or an event of a known kind with a bad field.
    """
    out = Frame()
    try:
        events = _frame.decode(data)
    except msgspec.DecodeError:
        events = _slow(data, out)
    for ev in events:
        if isinstance(ev, Status):
            out.statuses.append(ev)
        elif ev.e - ev.s != MINUTE_MS or ev.s % MINUTE_MS:
            out.skipped += 1  # not a minute window: never stored as a minute bar
        else:
            out.bars.append(ev)
    return out


def _slow(data: bytes | str, out: Frame) -> list[Event]:
    """Event by event: known kinds decoded strictly, the others counted as skipped."""
    try:
        raws = _raw.decode(data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"not a JSON array of events: {exc}") from None
    events: list[Event] = []
    for raw in raws:
        try:
            kind = _other.decode(raw).ev
        except msgspec.DecodeError as exc:
            raise FrameError(f"an event that is not an object: {exc}") from None
        if kind not in ("AM", "XA", "status"):
            out.skipped += 1
            continue
        try:
            events.append(_one.decode(raw))
        except msgspec.DecodeError as exc:
            raise FrameError(f"a bad {kind} event: {exc}") from None
    return events
