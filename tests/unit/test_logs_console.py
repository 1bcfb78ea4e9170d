"""Logs on a terminal share the progress bar's console; JSON only when asked or not a terminal (#21)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress

from mdw import logs
from mdw.backfill.progress import stderr_console

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    uvicorn_saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                         logging.getLogger(n).propagate) for n in names}
    monkeypatch.setattr(logs, "_secrets", set())
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for n, (handlers, level, propagate) in uvicorn_saved.items():
            lg = logging.getLogger(n)
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)


def _terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The shared console, pointed at a buffer that claims to be a terminal."""
    buf = io.StringIO()
    terminal = Console(file=buf, force_terminal=True, width=100, soft_wrap=True, markup=False,
                       emoji=False, highlight=False)
    monkeypatch.setattr(logs, "_console", terminal)
    return buf


def test_logs_progress_bar_and_log_lines_share_one_console(monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    assert stderr_console() is logs.console()


def _fresh_uvicorn_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's loggers as a process that never ran uvicorn with its own log config has them: an
    earlier test's server (default ``log_config``) leaves ``uvicorn`` with a handler and
    ``propagate=False``, which would keep these lines from mdw's handlers."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "level", logging.NOTSET)


def test_logs_terminal_lines_print_above_a_live_bar_never_on_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fresh_uvicorn_loggers(monkeypatch)
    buf = _terminal(monkeypatch)
    logs.configure("INFO", "console")
    with Progress("BACKFILLING", BarColumn(), console=logs.console(), auto_refresh=False) as progress:
        task = progress.add_task("x", total=10)
        progress.update(task, advance=3, refresh=True)
        logs.get_logger("mdw.test").info("structlog line", n=1)
        logging.getLogger("uvicorn.error").warning("stdlib line")
        progress.update(task, advance=3, refresh=True)
    text = ANSI.sub("", buf.getvalue()).replace("\r", "\n")
    lines = [line for line in text.splitlines() if "line" in line]
    assert len(lines) == 2, text
    for line in lines:  # each log line stands alone: no bar text before or after it
        assert "BACKFILLING" not in line and "━" not in line, line
        assert not line.startswith("{"), line  # human-readable, not JSON
    assert "structlog line" in lines[0] and "n=1" in lines[0]
    assert "stdlib line" in lines[1]


def test_logs_auto_is_json_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "auto")  # pytest's captured stderr is not a terminal
    logs.get_logger("mdw.test").info("hello", n=2)
    logging.getLogger("mdw.other").info("from stdlib")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    got = [(ln["event"], ln["logger"]) for ln in lines]
    assert got == [("hello", "mdw.test"), ("from stdlib", "mdw.other")]


def test_logs_json_when_asked_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    buf = _terminal(monkeypatch)
    logs.configure("INFO", "json")
    logs.get_logger("mdw.test").info("asked for json")
    assert json.loads(capsys.readouterr().err)["event"] == "asked for json"
    assert buf.getvalue() == ""


def test_logs_uvicorn_lines_take_mdws_format_when_serve_leaves_logging_to_mdw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``mdw serve`` builds uvicorn's config with ``log_config=None``: uvicorn adds no handler of its
    own, so its lines reach mdw's (JSON here) like every other logger's."""
    _fresh_uvicorn_loggers(monkeypatch)
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    uvicorn.Config(app=lambda: None, log_level="info", log_config=None)
    coloured = "Started server process [\x1b[36m%d\x1b[0m]"
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.info("Started server process [%d]", 7, extra={"color_message": coloured})
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (line["event"], line["logger"]) == ("Started server process [7]", "uvicorn.error")
    assert "color_message" not in line
