"""Progress for humans and machines: rich bars on a TTY, structured log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mdw.backfill.plan import OutcomeKey, Plan
from mdw.backfill.report import Progress
from mdw.logs import get_logger

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

log = get_logger(__name__)


def stdout_console() -> Console:
    from rich.console import Console  # imported lazily: rich costs a tenth of a second to load

    return Console(file=sys.stdout, soft_wrap=True)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, soft_wrap=True)


class RichProgress:
    """One bar over every request and derive task of the run, with bars fetched so far."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[bars]:,} bars"), TimeElapsedColumn(),
                       console=stderr_console(), transient=False)
        self.task: TaskID | None = None
        self.bars = 0

    def planned(self, plan: Plan) -> None:
        self.bar.start()
        total = plan.request_count + len(plan.derives) + len(plan.files)
        self.task = self.bar.add_task(f"backfill: {len(plan.series)} series", total=total, bars=0)

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
        self.bars += bars
        if self.task is not None:
            self.bar.update(self.task, advance=1, bars=self.bars)

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

    def planned(self, plan: Plan) -> None:
        self.total = plan.request_count + len(plan.derives) + len(plan.files) + len(plan.files)
        log.info("backfill started", action="backfill.progress", total=self.total, series=len(plan.series))

    def advanced(self, key: OutcomeKey, ok: bool, bars: int) -> None:
        self.done += 1
        self.bars += bars
        if not ok:
            log.warning("backfill request failed", action="backfill.progress", series=str(key))
        if self.total and self.done / self.total >= self.next_mark:
            self.next_mark += 0.1
            log.info("backfill progress", action="backfill.progress", done=self.done, total=self.total,
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
