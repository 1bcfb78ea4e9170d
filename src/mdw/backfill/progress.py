"""Progress for humans and machines: rich bars on a TTY, structured log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mdw.backfill.plan import FilesKey, OutcomeKey, Plan
from mdw.backfill.report import Progress
from mdw.logs import console, get_logger

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

log = get_logger(__name__)


def stdout_console() -> Console:
    from rich.console import Console  # imported lazily: rich costs a tenth of a second to load

    return Console(file=sys.stdout, soft_wrap=True)


def stderr_console() -> Console:
    """The console log lines print through too (:func:`mdw.logs.console`): one console, so a
    line logged while the bar is live is printed above it."""
    return console()


class TickerTally:
    """Tickers done of total: a ticker is done when every request, derive and action of its own
    has finished, and the market-wide ones it is in (grouped-daily requests, flat files) too.

    The engine names a finished job by its first series; a stock's daily bars are asked either
    all by grouped-daily requests or all per ticker within one plan, so a first series that
    opens a grouped request is read as one of the shared pool.
    """

    def __init__(self, plan: Plan) -> None:
        self.own: dict[str, int] = {}
        self.pooled: set[str] = set()
        self.pool_keys: set[OutcomeKey] = set()
        self.pool_left = len(plan.files)
        for r in plan.requests:
            if r.kind == "grouped":
                self.pool_left += 1
                self.pooled.update(t.ticker for t in r.targets)
                if r.targets:
                    self.pool_keys.add(r.targets[0].key)
            else:
                self.own[r.ticker] = self.own.get(r.ticker, 0) + 1
        for d in plan.derives:
            self.own[d.ticker] = self.own.get(d.ticker, 0) + 1
        for a in plan.actions:
            self.own[a.ticker] = self.own.get(a.ticker, 0) + 1
        if plan.files:
            self.pooled.update(k.ticker for k in plan.series)
        self.total = len({k.ticker for k in plan.series} | set(self.own) | self.pooled)
        self.done = self.total - len({t for t, n in self.own.items() if n} | (self.pooled if self.pool_left
                                                                            else set()))

    def advanced(self, key: OutcomeKey) -> None:
        if isinstance(key, FilesKey) or (key in self.pool_keys and self.pool_left):
            self.pool_left -= 1
            if self.pool_left == 0:
                self.done += sum(1 for t in self.pooled if not self.own.get(t))
            return
        ticker = getattr(key, "ticker", "")
        left = self.own.get(ticker, 0)
        if left <= 0:
            return
        self.own[ticker] = left - 1
        if left == 1 and (ticker not in self.pooled or self.pool_left == 0):
            self.done += 1


class RichProgress:
    """One bar over every request and derive task of the run, with bars fetched so far."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[tickers]}"), TextColumn("{task.fields[bars]:,} bars"),
                       TimeElapsedColumn(), console=stderr_console(), transient=False)
        self.task: TaskID | None = None
        self.bars = 0
        self.tally: TickerTally | None = None

    def planned(self, plan: Plan) -> None:
        self.bar.start()
        self.tally = TickerTally(plan)
        total = plan.request_count + len(plan.derives) + len(plan.files)
        self.task = self.bar.add_task(f"backfill: {len(plan.series)} series", total=total, bars=0,
                                      tickers=self._tickers())

    def _tickers(self) -> str:
        return "" if self.tally is None else f"{self.tally.done:,}/{self.tally.total:,} tickers"

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
        self.bars += bars
        if self.tally is not None:
            self.tally.advanced(key)
        if self.task is not None:
            self.bar.update(self.task, advance=1, bars=self.bars, tickers=self._tickers())

    def close(self) -> None:
        self.bar.stop()


class LogProgress:
    """A structured log line at each tenth of the run (and every failure)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.bars = 0
        self.next_mark = 0.1
        self.started = time.perf_counter()
        self.tally: TickerTally | None = None

    def planned(self, plan: Plan) -> None:
        self.total = plan.request_count + len(plan.derives) + len(plan.files) + len(plan.files)
        self.tally = TickerTally(plan)
        log.info("backfill started", action="backfill.progress", total=self.total, series=len(plan.series),
                 tickers_total=self.tally.total)

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
        self.done += 1
        self.bars += bars
        if self.tally is not None:
            self.tally.advanced(key)
        if not ok:
            log.warning("backfill request failed", action="backfill.progress", series=str(key))
        if self.total and self.done / self.total >= self.next_mark:
            self.next_mark += 0.1
            log.info("backfill progress", action="backfill.progress", done=self.done, total=self.total,
                     tickers_done=self.tally.done if self.tally else 0,
                     tickers_total=self.tally.total if self.tally else 0,
                     bars=self.bars, elapsed_s=round(time.perf_counter() - self.started, 2))

    def close(self) -> None:
        return None


@contextmanager
def make_progress(tty: bool | None = None) -> Iterator[Progress]:
    """Rich bars when stderr is a terminal, log lines otherwise."""
    use_rich = sys.stderr.isatty() if tty is None else tty
    sink: RichProgress | LogProgress = RichProgress() if use_rich else LogProgress()
    try:
        yield sink
    finally:
        sink.close()
