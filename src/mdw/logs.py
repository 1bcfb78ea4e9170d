"""Logging with structlog: readable on a TTY, JSON lines otherwise, and never a vendor key.

The redaction processor runs last-but-one on every event, so no field, message or exception text
can carry ``apiKey=...``, an ``Authorization`` header value, the configured key itself, or the
flat-file (S3) key pair: its secret, and its key id wherever a SigV4 ``Credential=`` names it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

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


def _scrub(value: Any, key: str = "") -> Any:
    if key and _AUTH_FIELD.match(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):  # dicts, and header multidicts such as aiohttp's
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, BaseException):
        return redact(repr(value))
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (a yarl.URL, a request object) is rendered by its str(): redact that.
    return redact(str(value))


def redact_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: scrub every field of the event."""
    for key in list(event):
        event[key] = _scrub(event[key], key)
    return event


def _redact_rendered(_: Any, __: str, line: Any) -> Any:
    # Belt and braces after the renderer: whatever the fields held, the line written is scrubbed.
    return redact(line) if isinstance(line, str) else line


def configure(level: str = "INFO", fmt: str = "auto", stream: Any = None,
              secrets: Iterable[str | None] = ()) -> None:
    """Configure structlog and stdlib logging once per process."""
    for s in secrets:
        register_secret(s)
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Standard-library loggers (ours, uvicorn's, asyncio's) go through the same processors, so a
    # JSON deployment gets JSON lines with their ``extra`` fields (``action`` ...) from every logger.
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
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


def get_logger(name: str) -> Any:
    """A structlog logger bound to a module name."""
    return structlog.get_logger(name)
