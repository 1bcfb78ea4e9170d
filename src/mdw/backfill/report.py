"""The run report: measured wall, API and DB seconds, counts, and each series' outcome.

The original system printed an "API vs DB" split it never measured; here API seconds are the
wall time during which at least one vendor call was awaited, and DB seconds the time the single
writer spent in store transactions. The report is a table on a TTY, JSON with ``--report``, and
the ``report`` column of the run's row in ``runs``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from mdw.backfill.plan import ActionsKey, FilesKey, OutcomeKey, Plan
from mdw.errors import StoreError
from mdw.store.base import RunKind, RunStatus

if TYPE_CHECKING:
    from rich.console import Console


class Progress(Protocol):
    """Receives progress as the run advances (the CLI draws rich progress bars from it)."""

    def planned(self, plan: Plan) -> None: ...

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None: ...


@dataclass(slots=True)
class SeriesOutcome:
    """How one series (or one ticker's corporate actions) fared."""

    series: OutcomeKey
    status: str = "ok"  # ok | partial | failed | skipped
    requests_planned: int = 0
    requests_done: int = 0
    requests_failed: int = 0
    bars: int = 0
    reason: str = ""
    outside_plan: str = ""  # the wanted days before the plan's history (not asked, not covered)

    def settle(self) -> None:
        if self.requests_failed and self.requests_done:
            self.status = "partial"
        elif self.requests_failed:
            self.status = "failed"
        elif self.requests_done < self.requests_planned:
            self.status = "partial" if self.requests_done else "skipped"
        else:
            self.status = "ok"


@dataclass(slots=True)
class BusyClock:
    """Wall time during which at least one of several overlapping activities was running."""

    active: int = 0
    since: float = 0.0
    total: float = 0.0
    summed: float = 0.0

    def enter(self) -> float:
        now = time.perf_counter()
        if self.active == 0:
            self.since = now
        self.active += 1
        return now

    def leave(self, entered: float) -> None:
        now = time.perf_counter()
        self.active -= 1
        self.summed += now - entered
        if self.active == 0:
            self.total += now - self.since


_BRACKETED = re.compile(r"\s*\[(?:GET|POST|PUT|HEAD|DELETE) [^\]]*\]")
_REQUEST_ID = re.compile(r"\s*\(request_id [^)]*\)")
_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ][0-9:.+Z-]*)?")
_NUMBER = re.compile(r"\b\d{6,}\b")
GROUP_AFTER = 20  # more failed series than this: the table groups them by cause


def cause_of(reason: str, ticker: str) -> str:
    """A failure's reason without what differs from series to series (ticker, URL, request id, days),
    so thousands of series failed for one cause are one line of the report."""
    text = _REQUEST_ID.sub("", _BRACKETED.sub("", reason or "unknown"))
    if ticker:
        text = re.sub(rf"(?<![A-Za-z0-9:.]){re.escape(ticker)}(?![A-Za-z0-9])", "<ticker>", text)
    text = _NUMBER.sub("<n>", _DAY.sub("<day>", text))
    return " ".join(text.split())[:200] or "unknown"


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Series that did not complete for one cause: how many, and the first few."""

    cause: str
    count: int
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"cause": self.cause, "count": self.count, "examples": list(self.examples)}


def group_failures(outcomes: Sequence[SeriesOutcome], examples: int = 5) -> list[FailureGroup]:
    """The outcomes that did not complete, grouped by :func:`cause_of` their reason, largest first."""
    groups: dict[str, list[str]] = {}
    for s in sorted(outcomes, key=lambda o: str(o.series)):
        reason = s.reason or ("not run (stopped or skipped)" if s.status in ("skipped", "partial") else "")
        groups.setdefault(cause_of(reason, getattr(s.series, "ticker", "")), []).append(str(s.series))
    out = [FailureGroup(cause, len(names), tuple(names[:examples])) for cause, names in groups.items()]
    return sorted(out, key=lambda g: (-g.count, g.cause))


@dataclass(slots=True)
class RunReport:
    """Everything a run measured; ``to_dict`` is the JSON form."""

    run_id: str
    kind: RunKind
    status: RunStatus = RunStatus.RUNNING
    started_at_ms: int = 0
    finished_at_ms: int = 0
    wall_s: float = 0.0
    plan_s: float = 0.0
    api_s: float = 0.0
    api_request_s: float = 0.0
    db_s: float = 0.0
    planned_requests: int = 0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    transactions: int = 0
    bars_fetched: int = 0
    bars_inserted: int = 0
    bars_updated: int = 0
    bars_unchanged: int = 0
    derived_tasks: int = 0
    actions_fetched: int = 0
    actions_written: int = 0
    factor_mismatches: int = 0  # splits whose vendor historical_adjustment_factor disagrees with mdw's
    quarantined: int = 0  # invalid vendor bars refused and kept in the store's quarantine
    quarantine_reasons: dict[str, int] = field(default_factory=dict)  # why, bars per reason
    data_notes: dict[str, int] = field(default_factory=dict)  # vendor values kept or dropped, not refused
    rate_limit: str = ""
    files: dict[str, Any] = field(default_factory=dict)  # flat files: planned, done, failed, bytes, rows ...
    settled: dict[str, Any] = field(default_factory=dict)  # the settle pass (REST): see backfill/settle.py
    series: dict[OutcomeKey, SeriesOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Why the run's row in `runs` could not be saved at its end (a full disk, a lost server); the
    # data the run wrote is committed all the same. None: saved.
    record_error: str | None = None

    @property
    def bars_written(self) -> int:
        return self.bars_inserted + self.bars_updated

    @property
    def bars_per_s(self) -> float:
        return self.bars_fetched / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def failed_series(self) -> list[SeriesOutcome]:
        return [s for s in self.series.values() if s.status in ("failed", "partial", "skipped")]

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some series failed (or the run's record was not saved), 130 interrupted."""
        if self.status is RunStatus.INTERRUPTED:
            return 130
        return 1 if self.failed_series or self.status is RunStatus.FAILED or self.record_error else 0

    def settle(self, interrupted: bool) -> None:
        for outcome in self.series.values():
            outcome.settle()
        if interrupted:
            self.status = RunStatus.INTERRUPTED
        elif not self.failed_series:
            self.status = RunStatus.OK
        elif all(s.status == "failed" for s in self.series.values()):
            self.status = RunStatus.FAILED
        else:
            self.status = RunStatus.PARTIAL

    def to_dict(self) -> dict[str, object]:
        """The JSON form: the ``--report`` file and the ``report`` column of the run's row."""
        return {
            "run_id": self.run_id, "kind": self.kind.value, "status": self.status.value,
            "started_at_ms": self.started_at_ms, "finished_at_ms": self.finished_at_ms,
            "wall_s": round(self.wall_s, 4), "plan_s": round(self.plan_s, 4), "api_s": round(self.api_s, 4),
            "api_request_s": round(self.api_request_s, 4), "db_s": round(self.db_s, 4),
            "planned_requests": self.planned_requests, "requests": self.requests,
            "rate_limited": self.rate_limited, "retries": self.retries, "transactions": self.transactions,
            "bars_fetched": self.bars_fetched, "bars_written": self.bars_written,
            "bars_inserted": self.bars_inserted, "bars_updated": self.bars_updated,
            "bars_unchanged": self.bars_unchanged, "bars_per_s": round(self.bars_per_s, 1),
            "derived_tasks": self.derived_tasks, "actions_fetched": self.actions_fetched,
            "actions_written": self.actions_written, "factor_mismatches": self.factor_mismatches,
            "quarantined": self.quarantined,
            "quarantine_reasons": self.quarantine_reasons, "data_notes": self.data_notes,
            "rate_limit": self.rate_limit, "files": self.files,
            **({"settle": self.settled} if self.settled else {}),
            "series": [
                {"series": str(s.series), "status": s.status, "requests_planned": s.requests_planned,
                 "requests_done": s.requests_done, "requests_failed": s.requests_failed,
                 "bars": s.bars, "reason": s.reason,
                 **({"outside_plan": s.outside_plan} if s.outside_plan else {})}
                for s in sorted(self.series.values(), key=lambda o: str(o.series))
            ],
            "errors": self.errors,
            "failures_by_cause": [g.to_dict() for g in group_failures(self.failed_series)],
            **({"record_error": self.record_error} if self.record_error else {}),
        }


class StoredOutcome(msgspec.Struct):
    """One series row of a stored report, as :func:`stored_report` reads it back."""

    series: str = ""
    status: str = "ok"
    requests_failed: int = 0


class StoredReport(msgspec.Struct):
    """The fields of a stored report (``RunReport.to_dict``) that readers compute with."""

    requests: int = 0
    planned_requests: int = 0
    bars_fetched: int = 0
    bars_per_s: float = 0.0
    wall_s: float = 0.0
    series: list[StoredOutcome] = []
    errors: list[str] = []


def stored_report(report: Mapping[str, object]) -> StoredReport:
    """A run's stored JSON report, typed; a report still being written (``{}``) reads as zeros.

    Raises:
        StoreError: the stored report is not a report (a row written by something else).
    """
    try:
        return msgspec.convert(report, StoredReport)
    except msgspec.ValidationError as exc:
        raise StoreError(f"a stored run report is malformed: {exc}") from exc


def cannot_write_in(directory: Path) -> str | None:
    """Why a file cannot be created in ``directory`` (None when it can), found by creating one.

    Permission bits do not tell (root passes ``os.access`` on ``/proc``; a read-only mount or a
    full disk passes it too), so the check creates and removes a temp file where the real one goes.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mdw-probe.", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)
    return None


def write_json_atomic(path: str | Path, data: object) -> Path:
    """Write JSON to a temp file beside ``path`` and rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def outcome_lines(report: RunReport) -> list[str]:
    """What the run did, by kind of row: bar series apart from corporate actions and flat files.

    A report's rows are bar series (ticker x timeframe), one ticker's splits or dividends, and
    flat-file datasets; counting them together gave a "series" figure larger than the series asked
    for. A run that had nothing to do says so instead of printing an empty count.
    """
    groups: dict[str, dict[str, int]] = {"bars": {}, "actions": {}, "files": {}}
    for s in report.series.values():
        group = "actions" if isinstance(s.series, ActionsKey) else "files" if isinstance(s.series, FilesKey) \
            else "bars"
        groups[group][s.status] = groups[group].get(s.status, 0) + 1

    def counted(counts: dict[str, int]) -> str:
        return ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))

    lines: list[str] = []
    if groups["bars"]:
        lines.append(f"bar series (ticker x timeframe) fetched: {counted(groups['bars'])}")
    if groups["actions"]:
        keys = [s.series for s in report.series.values()]
        tickers = len({k.ticker for k in keys if isinstance(k, ActionsKey)})
        lines.append(f"corporate actions (splits, dividends; one row per stock and kind, "
                     f"{tickers:,} stocks): {counted(groups['actions'])}")
    if groups["files"]:
        lines.append(f"flat-file datasets: {counted(groups['files'])}")
    if not lines:
        lines.append("nothing to fetch: every series asked for was already held")
    return lines


def render(report: RunReport, console: Console) -> None:
    """Print the report as rich tables: the totals, then every series that is not ok."""
    from rich.table import Table

    totals = Table(title=f"mdw {report.kind} {report.run_id}: {report.status}", show_header=False)
    totals.add_column("what", style="bold")
    totals.add_column("value", justify="right")
    rows = [
        ("wall time", f"{report.wall_s:.2f} s (planning {report.plan_s:.2f} s)"),
        ("vendor busy (API)", f"{report.api_s:.2f} s"),
        ("store writes (DB)", f"{report.db_s:.2f} s in {report.transactions} transactions"),
        ("requests", f"{report.requests} (planned {report.planned_requests})"),
        ("429s / retries", f"{report.rate_limited} / {report.retries}"),
        ("bars fetched", f"{report.bars_fetched:,}"),
        ("bars written", f"{report.bars_written:,} ({report.bars_inserted:,} new, "
                         f"{report.bars_updated:,} corrected)"),
        ("bars/s", f"{report.bars_per_s:,.0f}"),
        ("bars quarantined", f"{report.quarantined:,}" + (" (mdw quarantine)" if report.quarantined else "")),
        *(("  " + why, f"{count:,}") for why, count in sorted(report.quarantine_reasons.items())),
        *(("vendor data: " + what, f"{count:,}") for what, count in sorted(report.data_notes.items())),
        ("rate limit", report.rate_limit),
    ]
    if report.files:
        f = report.files
        rows.insert(4, ("flat files", f"{f.get('done', 0)} of {f.get('planned', 0)} "
                        f"({f.get('failed', 0)} failed), {f.get('bytes', 0) / 1e6:,.1f} MB, "
                        f"{f.get('requests', 0)} requests"))
    outside = [s for s in report.series.values() if s.outside_plan]
    if outside:
        rows.append(("outside the plan", f"{len(outside)} series ({outside[0].outside_plan}; not asked, "
                                         "not covered)"))
    if report.record_error:
        rows.append(("run record", f"NOT saved: {report.record_error} (the bars written are committed)"))
    for k, v in rows:
        totals.add_row(k, v)
    console.print(totals)
    for line in outcome_lines(report):
        console.print(line)
    bad = report.failed_series
    if len(bad) > GROUP_AFTER:  # thousands of series (a universe): one line per cause
        table = Table(title=f"{len(bad):,} series did not complete, by cause")
        for col in ("series", "cause", "for example"):
            table.add_column(col)
        for g in group_failures(bad, examples=3):
            table.add_row(f"{g.count:,}", g.cause, ", ".join(g.examples))
        console.print(table)
    elif bad:
        table = Table(title="series that did not complete")
        for col in ("series", "status", "done/planned", "reason"):
            table.add_column(col)
        for s in sorted(bad, key=lambda o: str(o.series)):
            table.add_row(str(s.series), s.status, f"{s.requests_done}/{s.requests_planned}", s.reason)
        console.print(table)
