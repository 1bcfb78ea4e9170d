"""Parsing of path and query parameters into domain values, with 400s that say what is accepted."""

from __future__ import annotations

import base64
import binascii
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mdw.domain import Ticker, Timeframe, local_midnight_ms, parse_ticker, to_ms
from mdw.errors import UsageError
from mdw.service.errors import ApiError

MIN_MS = 0  # 1970-01-01
MAX_MS = 4_102_444_800_000  # 2100-01-01: far enough for any bar, small enough for every clock
TIME_FORMS = "YYYY-MM-DD (a day in the market's zone), an ISO datetime, or epoch milliseconds"


def ticker_param(text: str, *, stitch: bool = False) -> Ticker:
    """A ticker (with ``stitch``: also a composite FIGI or a CIK naming a security)."""
    from mdw.backfill.stitch import ident

    try:
        return ident(text) if stitch else parse_ticker(text)
    except UsageError as exc:
        raise ApiError(400, "bad_ticker", str(exc)) from None


def timeframe_param(text: str) -> Timeframe:
    try:
        return Timeframe.parse(text)
    except UsageError as exc:
        raise ApiError(400, "bad_timeframe", str(exc)) from None


def time_param(name: str, text: str | None, tz: ZoneInfo, *, end: bool, default: int) -> int:
    """Epoch ms of a start or end parameter.

    A bare date means 00:00 of that day in the market's zone; as an end it is inclusive (the range
    runs to 00:00 of the next day), as in the CLI.
    """
    if text is None or not text.strip():
        return default
    raw = text.strip()
    try:
        if raw.lstrip("-").isdigit():
            ms = int(raw)
        elif len(raw) == 10:
            day = date.fromisoformat(raw)
            ms = local_midnight_ms(day + timedelta(days=1) if end else day, tz)
        else:
            ms = to_ms(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except (ValueError, OverflowError, UsageError):
        raise ApiError(400, "bad_time", f"invalid {name} {raw[:40]!r}; expected {TIME_FORMS}") from None
    if not MIN_MS <= ms <= MAX_MS:  # bounds keep every date conversion in range
        raise ApiError(400, "bad_time", f"{name} must lie between 1970-01-01 and 2100-01-01")
    return ms


def encode_cursor(ms: int) -> str:
    """An opaque cursor: where the next page starts."""
    return base64.urlsafe_b64encode(f"v1:{ms}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, _, value = raw.partition(":")
        ms = int(value)
        if version != "v1" or not MIN_MS <= ms <= MAX_MS:
            raise ValueError(raw)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ApiError(400, "bad_cursor", "invalid cursor; pass next_cursor from the previous page") from None
    return ms
