"""Logging with structlog: readable on a TTY, JSON lines otherwise, and never a vendor key.

On a terminal every line (mdw's, uvicorn's, any library's) is printed through one rich console on
stderr, the one progress bars draw on (:func:`console`): rich prints the line above a live bar
instead of gluing it onto the bar's line. JSON lines are written when asked
(``MDW_LOG_FORMAT=json``) or when stderr is not a terminal (``auto``).

The redaction processor runs last-but-one on every event, so no field, message or exception text
can carry ``apiKey=...``, an ``Authorization`` header value, the configured key itself, or the
flat-file (S3) key pair: its secret, and its key id wherever a SigV4 ``Credential=`` names it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TextIO, cast

import stamina.instrumentation
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, ProcessorReturnValue, WrappedLogger

if TYPE_CHECKING:
    from rich.console import Console

# ``apiKey=xyz`` in a URL, and ``'apiKey': 'xyz'`` in a repr of query parameters.
_QUERY_KEY = re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^&\s\"',;}]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
# ``Authorization: xyz`` in a rendered header line, a dict repr or JSON ('Authorization': 'xyz').
_AUTH_TEXT = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\s)(?!\*\*\*)[^\s\"',;}]+")
_AUTH_FIELD = re.compile(
    r"(?i)^(authorization|api[_-]?key|x-api-key|polygon_api_key|token|flatfiles_key_id|flatfiles_secret"
    r"|(aws_)?secret(_access_key)?|(aws_)?access_key_id|x-amz-security-token)$"
)
# SigV4 names the key id in ``Credential=ID/date/...`` (header) or ``X-Amz-Credential=ID%2F...`` (URL),
# and an S3 secret can show up as ``secret_access_key=...`` in a repr of client options.
_SIGV4_CREDENTIAL = re.compile(r"(?i)((?:x-amz-)?credential=)(?!\*\*\*)[^/%\s,&\"']+")
_SECRET_KEY_TEXT = re.compile(
    r"(?i)((?:aws_)?secret(?:_access)?_key[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"',;}&]+")
REDACTED = "***"
_secrets: set[str] = set()
_console: Console | None = None


def console() -> Console:
    """The one rich console on stderr shared by log lines and progress bars.

    It resolves ``sys.stderr`` at each write (pytest's capture, an in-process CLI call swap it).
    A line printed while a progress bar is live goes above the bar, never onto its line.
    """
    global _console
    if _console is None:
        from rich.console import Console  # imported lazily: rich costs a tenth of a second to load

        _console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)
    return _console


def register_secret(value: str | None) -> None:
    """Remember a secret (the vendor key) so it is scrubbed wherever it shows up."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """Strip API keys from a string: query parameters, bearer tokens, SigV4 credentials and registered
    secrets."""
    text = _QUERY_KEY.sub(lambda m: m[1] + REDACTED, text)
    text = _BEARER.sub(lambda m: m[1] + REDACTED, text)
    text = _AUTH_TEXT.sub(lambda m: m[1] + REDACTED, text)
    text = _SIGV4_CREDENTIAL.sub(lambda m: m[1] + REDACTED, text)
    text = _SECRET_KEY_TEXT.sub(lambda m: m[1] + REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(value: object, key: str = "") -> object:
    if key and _AUTH_FIELD.match(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):  # dicts, and header multidicts such as aiohttp's
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    if isinstance(value, BaseException):
        return redact(repr(value))
    if value is None or isinstance(value, bool | int | float):
        return value
    # Other objects (a yarl.URL, a request object) are rendered by their str(): redact that.
    return redact(str(value))


def redact_processor(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """structlog processor: scrub every field of the event."""
    for key in list(event):
        event[key] = _scrub(event[key], key)
    return event


def _redact_rendered(_: WrappedLogger, __: str, line: object) -> ProcessorReturnValue:
    # Belt and braces after the renderer: whatever the fields held, the line written is scrubbed.
    # It runs after the renderer, so it is handed the rendered line, not the event dict.
    return redact(line) if isinstance(line, str) else cast(ProcessorReturnValue, line)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at each record, not the one at configuration time.

    A process that swaps stderr (pytest's capture, an in-process CLI call) and closes the old one
    would otherwise make every later log line fail with "I/O operation on closed file".
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None,
              secrets: Iterable[str | None] = ()) -> None:
    """Configure structlog and stdlib logging once per process."""
    for s in secrets:
        register_secret(s)
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    # Human lines on stderr go through the shared console, so they never break a progress bar.
    on_console = not use_json and stream is None
    renderer: Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *args: (_ConsoleLogger if on_console else _NamedPrintLogger)(
            stream or sys.stderr, str(args[0]) if args else ""),
        cache_logger_on_first_use=False,
    )
    # Standard-library loggers (ours, uvicorn's, asyncio's) go through the same processors, so a
    # JSON deployment gets JSON lines with their ``extra`` fields (``action`` ...) from every logger.
    handler: logging.Handler = (
        logging.StreamHandler(out) if stream is not None
        else _ConsoleHandler() if on_console else _StderrHandler()
    )
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
            _redact_rendered,
        ],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Every retry (the vendor client's, the webhook's) is scheduled by stamina: its on-retry hooks
    # write one line per retry in this format and count retries for Prometheus.
    stamina.instrumentation.set_on_retry_hooks([log_retry, stamina.instrumentation.PrometheusOnRetryHook])


def log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    """stamina's on-retry hook: one structured warning per scheduled retry, whoever retries."""
    exc = details.caused_by
    url = getattr(exc, "url", None)
    get_logger("mdw.retry").warning(
        "retry scheduled", action="vendor.retry" if isinstance(url, str) else "retry",
        error=type(exc).__name__, reason=redact(str(exc)), retry_num=details.retry_num,
        wait_s=round(details.wait_for, 3), waited_s=round(details.waited_so_far, 3),
        status=getattr(exc, "status", None), url=url,
    )


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose events carry ``logger=name``, as stdlib loggers' lines do.

    The logger stays lazy: it takes its processors (redaction included) from the configuration in
    force when it logs, so a module-level ``log = get_logger(__name__)`` made before
    :func:`configure` still goes through it. ``configure`` makes it a filtering bound logger whose
    print logger knows ``name``.
    """
    return cast(FilteringBoundLogger, structlog.get_logger(name))


class _NamedPrintLogger(structlog.PrintLogger):
    """structlog's print logger, knowing the module name it was made for."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _ConsoleLogger(_NamedPrintLogger):
    """The print logger of a terminal: each line goes through the shared console."""

    def msg(self, message: str) -> None:
        console().print(message, soft_wrap=True)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _ConsoleHandler(logging.Handler):
    """The stdlib handler of a terminal (uvicorn's and libraries' loggers): through the shared console."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console().print(self.format(record), soft_wrap=True)
        except Exception:
            self.handleError(record)


def _drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # uvicorn passes its message again with ANSI colours as an ``extra``: noise in either format.
    event.pop("color_message", None)
    return event


def _add_logger_name(logger: WrappedLogger, _: str, event: EventDict) -> EventDict:
    name = getattr(logger, "name", "")
    if name:
        event.setdefault("logger", name)
    return event
