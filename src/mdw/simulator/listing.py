"""Shared machinery of the reference endpoints: filters, sorting and offset cursors.

v3 endpoints filter with ``col``, ``col.gt/.gte/.lt/.lte``; the Massive ``/stocks/v1`` ones add
``col.any_of``. A cursor re-encodes every filter plus the position, so a next_url alone (without
the original query) yields the next page, as the vendor's cursors do.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from mdw.errors import UsageError
from mdw.simulator.state import Row, decode_cursor, encode_cursor

_OPS = ("gt", "gte", "lt", "lte")


class ListingError(UsageError):
    """A bad listing parameter; the message is the vendor-style 400 text."""


@dataclass(frozen=True, slots=True)
class Query:
    params: dict[str, str]  # the effective parameters (from the cursor when one was sent)
    offset: int


def read_query(request: web.Request) -> Query:
    """The request's parameters, or the ones its cursor carries (plus the position ``ap``)."""
    query = request.query
    if "cursor" in query:
        decoded = decode_cursor(query["cursor"])
        if decoded is None:
            raise ListingError("Invalid cursor")
        try:
            offset = int(decoded.pop("ap", "0") or 0)
        except ValueError:
            raise ListingError("Invalid cursor") from None
        decoded.pop("as", None)
        return Query(decoded, max(0, offset))
    params = {k: v for k, v in query.items() if k not in ("apiKey", "cursor")}
    return Query(params, 0)


def read_limit(params: dict[str, str], default: int, maximum: int) -> int:
    text = params.get("limit")
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ListingError(f"limit must be an integer between 1 and {maximum}") from None
    if value < 1:
        raise ListingError(f"limit must be an integer between 1 and {maximum}")
    return min(value, maximum)


def _coerce(value: object, text: str) -> str | float | bool:
    """A query parameter's text as the type of the column's ``value`` it is compared with."""
    if isinstance(value, bool):
        return text.strip().lower() in ("true", "1")
    if isinstance(value, int | float):
        try:
            return float(text)
        except ValueError:
            raise ListingError(f"invalid number {text!r}") from None
    return text


def filter_rows(rows: Sequence[Row], params: dict[str, str], columns: Sequence[str],
                any_of: bool = False) -> list[Row]:
    """Keep rows matching every ``col``/``col.op``/``col.any_of`` parameter on ``columns``."""
    checks: list[Callable[[Row], bool]] = []
    for col in columns:
        if col in params:
            checks.append(_equal_check(col, params[col]))
        for op in _OPS:
            name = f"{col}.{op}"
            if name in params:
                checks.append(_range_check(col, op, params[name]))
        if any_of and f"{col}.any_of" in params:
            wanted = {w.strip() for w in params[f"{col}.any_of"].split(",") if w.strip()}
            checks.append(_any_of_check(col, wanted))
    return [r for r in rows if all(check(r) for check in checks)]


def _equal_check(col: str, text: str) -> Callable[[Row], bool]:
    def check(row: Row) -> bool:
        value = row.get(col)
        return value is not None and bool(value == _coerce(value, text))

    return check


def _any_of_check(col: str, wanted: set[str]) -> Callable[[Row], bool]:
    def check(row: Row) -> bool:
        value = row.get(col)
        return str(value) in wanted or _num_in(value, wanted)

    return check


def _num_in(value: object, wanted: set[str]) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    nums = set()
    for w in wanted:
        try:
            nums.add(float(w))
        except ValueError:
            continue
    return float(value) in nums


def _range_check(col: str, op: str, text: str) -> Callable[[Row], bool]:
    def check(row: Row) -> bool:
        value = row.get(col)
        if value is None:
            return False
        have, want = _comparable(value), _comparable(_coerce(value, text))
        if isinstance(have, str) != isinstance(want, str):  # text and numbers never compare
            return False
        return bool(_COMPARE[op](have, want))

    return check


def sort_rows(rows: list[Row], keys: Sequence[tuple[str, bool]]) -> list[Row]:
    """Stable multi-key sort; ``keys`` is (column, descending) from most to least significant."""
    out = list(rows)
    for col, desc in reversed(keys):
        out.sort(key=_sort_key(col), reverse=desc)
    return out


_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _comparable(value: object) -> str | float:
    """Numbers (booleans included) compare as floats; anything else as its text."""
    return float(value) if isinstance(value, int | float) else str(value)


def _sort_key(col: str) -> Callable[[Row], tuple[bool, str | float]]:
    def key(row: Row) -> tuple[bool, str | float]:
        value = row.get(col)
        return (value is None, _comparable(value) if value is not None else "")

    return key


def page_body(request: web.Request, base: str, rows: list[Row], q: Query, limit: int,
              extra: dict[str, object] | None = None) -> dict[str, object]:
    """The ``results`` page at the query's offset, with a next_url whose cursor carries everything."""
    chunk = rows[q.offset:q.offset + limit]
    body: dict[str, object] = {"results": chunk, "status": "OK"}
    if extra:
        body.update(extra)
    if q.offset + limit < len(rows):
        carried = dict(q.params) | {"ap": str(q.offset + limit), "as": "", "limit": str(limit)}
        body["next_url"] = f"{base}{request.path}?cursor={encode_cursor(carried)}"
    return body
