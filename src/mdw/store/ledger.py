"""The coverage ledger: its merge and cut rules, and the one place they are applied to the table.

A ledger row is a merged, half-open range of one (ticker, dataset, timeframe) that was fetched
(bars present, or confirmed empty by the vendor), with when. :func:`apply` reads the rows near the
ranges being changed, lets a pure rule decide, and writes the change inside the caller's
transaction, so bars (or corporate actions) and their coverage always commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mdw.domain import RangeSet, TimeRange
from mdw.store.base import CoverageEntry, Dataset
from mdw.store.primitives import Database, Row, Tx
from mdw.store.rows import as_int, as_str

_NEAR = (
    "SELECT start_ms, end_ms, fetched_at_ms FROM coverage WHERE ticker = ? AND dataset = ?"
    " AND timeframe = ? AND start_ms <= ? AND end_ms >= ?"
)
_DELETE = "DELETE FROM coverage WHERE ticker = ? AND dataset = ? AND timeframe = ? AND start_ms = ?"
_INSERT = (
    "INSERT INTO coverage (ticker, dataset, timeframe, start_ms, end_ms, fetched_at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_RANGES = "SELECT start_ms, end_ms FROM coverage WHERE ticker = ? AND dataset = ? AND timeframe = ?"
_ENTRIES = "SELECT ticker, dataset, timeframe, start_ms, end_ms, fetched_at_ms FROM coverage"
_MANY = "SELECT ticker, start_ms, end_ms FROM coverage WHERE dataset = ? AND timeframe = ?"



@dataclass(frozen=True, slots=True)
class LedgerKey:
    """Which ledger: (ticker, dataset, timeframe); the timeframe is "" for corporate actions."""

    ticker: str
    dataset: Dataset
    timeframe: str = ""

    def params(self) -> tuple[str, str, str]:
        return self.ticker, self.dataset.value, self.timeframe


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One stored coverage range (the backends' row shape)."""

    start_ms: int
    end_ms: int
    fetched_at_ms: int


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """Rows to delete (by start) and rows to insert, for one (ticker, dataset, timeframe)."""

    delete_starts: tuple[int, ...]
    insert: tuple[LedgerRow, ...]


Rule = Callable[[list[LedgerRow]], LedgerChange]


def merge_rule(existing: Iterable[LedgerRow], new: RangeSet, fetched_at_ms: int) -> LedgerChange:
    """Fold ``new`` into the stored ranges: what it touches (overlaps or abuts) merges into one row.

    A merged row takes ``fetched_at_ms``; stored rows the new ranges do not touch keep theirs.
    """
    if not new:
        return LedgerChange((), ())
    touching = [
        row for row in existing if any(row.start_ms <= r.end_ms and r.start_ms <= row.end_ms for r in new)
    ]
    merged = new.union(TimeRange(row.start_ms, row.end_ms) for row in touching)
    return LedgerChange(
        tuple(row.start_ms for row in touching),
        tuple(LedgerRow(r.start_ms, r.end_ms, fetched_at_ms) for r in merged),
    )


def cut_rule(existing: Iterable[LedgerRow], rng: TimeRange) -> LedgerChange:
    """Remove ``rng`` from the stored ranges; the pieces left keep their ``fetched_at``."""
    hit = [row for row in existing if row.start_ms < rng.end_ms and rng.start_ms < row.end_ms]
    keep: list[LedgerRow] = []
    for row in hit:
        if row.start_ms < rng.start_ms:
            keep.append(LedgerRow(row.start_ms, rng.start_ms, row.fetched_at_ms))
        if rng.end_ms < row.end_ms:
            keep.append(LedgerRow(rng.end_ms, row.end_ms, row.fetched_at_ms))
    return LedgerChange(tuple(row.start_ms for row in hit), tuple(keep))


def hull(ranges: RangeSet) -> TimeRange | None:
    """The smallest range holding all of ``ranges`` (None when empty)."""
    if not ranges:
        return None
    return TimeRange(ranges.ranges[0].start_ms, ranges.ranges[-1].end_ms)


async def merge(tx: Tx, key: LedgerKey, new: RangeSet, fetched_at_ms: int) -> None:
    """Record ``new`` as covered (fetched at ``fetched_at_ms``), inside the caller's transaction."""
    await apply(tx, key, new, _merging(new, fetched_at_ms))


async def merge_many(tx: Tx, items: Sequence[tuple[LedgerKey, RangeSet]], fetched_at_ms: int) -> None:
    """:func:`merge` of several distinct keys (a write's series) in a few round trips."""
    await apply_many(tx, [(key, new, _merging(new, fetched_at_ms)) for key, new in items])


def _merging(new: RangeSet, fetched_at_ms: int) -> Rule:
    return lambda rows: merge_rule(rows, new, fetched_at_ms)


async def cut(tx: Tx, key: LedgerKey, rng: TimeRange) -> None:
    """Cut ``rng`` out of the coverage, inside the caller's transaction."""
    await apply(tx, key, RangeSet.of([rng]), lambda rows: cut_rule(rows, rng))


async def apply(tx: Tx, key: LedgerKey, ranges: RangeSet, rule: Rule) -> None:
    """Read the rows near ``ranges``, apply ``rule``, write the change (the caller's transaction)."""
    await apply_many(tx, [(key, ranges, rule)])


_NEAR_MANY_CHUNK = 100  # keys per query: 5 parameters each, far below every driver's limit


async def apply_many(tx: Tx, items: Sequence[tuple[LedgerKey, RangeSet, Rule]]) -> None:
    """:func:`apply` of several distinct keys: the rows near each key's ranges read in one query
    per hundred keys, each key's rule applied to its own rows, then one batch of deletes and one
    of inserts (the caller's transaction).

    The keys must differ: each key's change is computed from the rows read before any is written.
    """
    wanted = [(key, rule, box) for key, ranges, rule in items if (box := hull(ranges)) is not None]
    if len({key for key, _, _ in wanted}) != len(wanted):
        raise ValueError("apply_many needs distinct ledger keys")
    found: dict[int, list[LedgerRow]] = {}
    for lo in range(0, len(wanted), _NEAR_MANY_CHUNK):
        chunk = wanted[lo : lo + _NEAR_MANY_CHUNK]
        sql = " UNION ALL ".join(
            _NEAR.replace("SELECT ", f"SELECT {lo + i} AS k, ", 1) for i in range(len(chunk))
        )
        args = [a for key, _, box in chunk for a in (*key.params(), box.end_ms, box.start_ms)]
        for r in await tx.fetch(sql, *args):
            found.setdefault(as_int(r[0]), []).append(LedgerRow(as_int(r[1]), as_int(r[2]), as_int(r[3])))
    deletes: list[tuple[str, str, str, int]] = []
    inserts: list[tuple[str, str, str, int, int, int]] = []
    for i, (key, rule, _) in enumerate(wanted):
        change = rule(found.get(i, []))
        deletes.extend((*key.params(), start) for start in change.delete_starts)
        inserts.extend((*key.params(), r.start_ms, r.end_ms, r.fetched_at_ms) for r in change.insert)
    if deletes:
        await tx.executemany(_DELETE, deletes)
    if inserts:
        await tx.executemany(_INSERT, inserts)


async def ranges(db: Database[Tx], key: LedgerKey) -> RangeSet:
    """The merged ranges held for ``key``."""
    found = await db.fetch("coverage", _RANGES, *key.params())
    return RangeSet.of((as_int(r[0]), as_int(r[1])) for r in found)


async def ranges_many(db: Database[Tx], tickers: Sequence[str], dataset: Dataset, timeframe: str
                      ) -> dict[str, RangeSet]:
    """:func:`ranges` of many tickers at one dataset and timeframe, in one query."""
    wanted = set(tickers)
    found: dict[str, list[tuple[int, int]]] = {}
    for r in await db.fetch("coverage_many", _MANY, dataset.value, timeframe):
        if r[0] in wanted:
            found.setdefault(str(r[0]), []).append((as_int(r[1]), as_int(r[2])))
    return {t: RangeSet.of(found.get(t, ())) for t in tickers}


async def entries(db: Database[Tx], ticker: str | None = None) -> list[CoverageEntry]:
    """Every ledger row (of one ticker, when given), by ticker, dataset, timeframe and start."""
    where, args = (" WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
    found = await db.fetch(
        "coverage_entries", _ENTRIES + where + " ORDER BY ticker, dataset, timeframe, start_ms", *args
    )
    return [_entry(r) for r in found]


def _entry(r: Row) -> CoverageEntry:
    return CoverageEntry(
        as_str(r[0]), Dataset(as_str(r[1])), as_str(r[2]), as_int(r[3]), as_int(r[4]), as_int(r[5])
    )
