"""Logging: the vendor key never reaches the output, whichever way a line was built."""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina
import structlog
from multidict import CIMultiDict
from yarl import URL

from mdw import logs
from mdw.errors import VendorTransientError

KEY = "Zq9SecretVendorKey7"
URL_WITH_KEY = f"https://api.massive.com/v2/aggs/ticker/AAPL/range/1/minute/1/2?adjusted=false&apiKey={KEY}"


@pytest.fixture
def output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Logging configured into a buffer with KEY registered; global state restored afterwards."""
    monkeypatch.setattr(logs, "_secrets", set())
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buf = io.StringIO()
    try:
        yield buf
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_structlog_line_never_prints_the_key_from_url_header_or_anywhere(
    output: io.StringIO, fmt: str
) -> None:
    """apiKey= in a URL, an Authorization header, and the bare key in any field are all scrubbed."""
    logs.configure("DEBUG", fmt, stream=output, secrets=[KEY])
    log = logs.get_logger("test")
    log.info("request", url=URL_WITH_KEY, headers={"Authorization": f"Bearer {KEY}"})
    log.info(f"plain message mentioning {KEY}", detail=[f"nested {KEY}"], extra=(KEY,))
    log.warning("objects", url=URL(URL_WITH_KEY), headers=CIMultiDict(Authorization=KEY))
    log.info("header text", raw=f"Authorization: {KEY}", params={"apiKey": KEY, "limit": 5})
    try:
        raise RuntimeError(f"GET {URL_WITH_KEY} failed")
    except RuntimeError:
        log.exception("failed")
    text = output.getvalue()
    assert KEY not in text
    assert text.count(logs.REDACTED) >= 9
    assert "apiKey=***" in text and "limit" in text


def test_structlog_json_output_stays_one_valid_object_per_line(output: io.StringIO) -> None:
    """Redaction never breaks the JSON lines a log shipper parses."""
    logs.configure("INFO", "json", stream=output, secrets=[KEY])
    logs.get_logger("test").info("request", url=URL_WITH_KEY, status=200)
    (line,) = output.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "request" and event["status"] == 200 and event["level"] == "info"
    assert event["url"].endswith("apiKey=***")


def test_stdlib_logging_line_never_prints_the_key(output: io.StringIO) -> None:
    """Third-party loggers (aiohttp, asyncpg) go through the same redaction, tracebacks included."""
    logs.configure("DEBUG", "console", stream=output, secrets=[KEY])
    lib = logging.getLogger("aiohttp.client")
    lib.warning("GET %s", URL_WITH_KEY)
    lib.warning("headers %s", {"Authorization": f"Bearer {KEY}"})
    lib.warning("raw header %s", {"Authorization": KEY})
    try:
        raise ConnectionError(f"reset while fetching {KEY}")
    except ConnectionError:
        lib.exception("boom")
    text = output.getvalue()
    assert KEY not in text
    assert "GET https://api.massive.com" in text and "ConnectionError" in text


def test_redact_scrubs_query_keys_and_bearer_tokens_without_registration(output: io.StringIO) -> None:
    """Even an unregistered key is removed from URLs and Authorization values."""
    assert logs.redact("https://x/a?apikey=abc123&b=1") == "https://x/a?apikey=***&b=1"
    assert logs.redact("https://x/a?API_KEY=abc123") == "https://x/a?API_KEY=***"
    assert logs.redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer ***"
    assert logs.redact("{'Authorization': 'abc123'}") == "{'Authorization': '***'}"
    harmless = "no key here; Authorization header missing"
    assert logs.redact(harmless) == harmless


def test_register_secret_ignores_empty_and_tiny_values(output: io.StringIO) -> None:
    """None, '' and 3-character strings are not registered, so common text is never mangled."""
    for value in (None, "", "abc"):
        logs.register_secret(value)
    assert logs.redact("abc def") == "abc def"
    logs.register_secret(KEY)
    assert logs.redact(f"x{KEY}y") == f"x{logs.REDACTED}y"


def test_get_logger_made_before_configure_logs_through_it_with_its_name(output: io.StringIO) -> None:
    """A module-level logger obeys the later configuration (format, level, redaction) and names itself."""
    log = logs.get_logger("mdw.service.alerts")
    logs.configure("INFO", "json", stream=output, secrets=[KEY])
    log.debug("dropped")
    log.warning("alert raised", action="alert.raise", summary=f"webhook {URL_WITH_KEY}")
    (line,) = output.getvalue().splitlines()
    event = json.loads(line)
    assert (event["logger"], event["action"]) == ("mdw.service.alerts", "alert.raise")
    assert event["level"] == "warning"
    assert KEY not in line and event["summary"].endswith("apiKey=***")


def test_configure_auto_format_is_json_when_not_a_tty(output: io.StringIO) -> None:
    """A non-terminal stream (a file, a pipe) gets JSON lines."""
    logs.configure("INFO", "auto", stream=output)
    logs.get_logger("test").info("hello")
    assert json.loads(output.getvalue())["event"] == "hello"


def test_configure_level_filters_lower_levels(output: io.StringIO) -> None:
    """Events below the configured level are dropped, for structlog and stdlib alike."""
    logs.configure("WARNING", "json", stream=output)
    logs.get_logger("test").info("quiet")
    logging.getLogger("lib").info("quiet too")
    logs.get_logger("test").warning("loud")
    assert [json.loads(x)["event"] for x in output.getvalue().splitlines()] == ["loud"]


def test_stdlib_logging_in_json_mode_writes_json_objects_with_extra_fields(output: io.StringIO) -> None:
    """A JSON deployment gets JSON lines from stdlib loggers too, keeping their ``action`` extra."""
    logs.configure("INFO", "json", stream=output, secrets=[KEY])
    logging.getLogger("mdw.polygon.retry").warning(
        "retry %d of %d for %s", 1, 5, URL_WITH_KEY, extra={"action": "vendor.retry"}
    )
    lines = output.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["action"] == "vendor.retry"
    assert event["logger"] == "mdw.polygon.retry"
    assert event["level"] == "warning"
    assert event["event"].startswith("retry 1 of 5 for https://api.massive.com")
    assert KEY not in lines[0]


def test_every_stamina_retry_is_one_line_from_mdws_hook_without_the_key(output: io.StringIO) -> None:
    """configure() installs mdw's on-retry hook in stamina: a vendor retry is one JSON line with
    the error, its status and the redacted URL."""
    logs.configure("INFO", "json", stream=output, secrets=[KEY])
    calls = 0
    try:
        for attempt in stamina.retry_context(on=VendorTransientError, attempts=2, timeout=None):
            with attempt:
                calls += 1
                if calls == 1:
                    raise VendorTransientError(f"vendor error (HTTP 503) [GET {URL_WITH_KEY}]", status=503,
                                               url=logs.redact(URL_WITH_KEY))
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
    [line] = output.getvalue().splitlines()
    event = json.loads(line)
    assert (event["action"], event["error"], event["status"], event["retry_num"]) == (
        "vendor.retry", "VendorTransientError", 503, 1)
    assert event["url"].startswith("https://api.massive.com/v2/aggs/") and KEY not in line


def test_structlog_line_never_prints_the_flat_file_key_pair(output: io.StringIO) -> None:
    """The S3 secret and key id are scrubbed as fields, in SigV4 headers and presigned URLs, and bare."""
    key_id, secret = "AKFF0123456789", "s3/Secret+Value=="
    logs.configure("DEBUG", "json", stream=output, secrets=[key_id, secret])
    log = logs.get_logger("test")
    log.info("sign", flatfiles_secret=secret, flatfiles_key_id=key_id, aws_secret_access_key=secret)
    sigv4 = f"AWS4-HMAC-SHA256 Credential={key_id}/20240307/us-east-1/s3/aws4_request"
    log.info("header", authorization=sigv4, raw=f"Authorization: {sigv4}")
    log.info(f"url https://files.massive.com/flatfiles/x?X-Amz-Credential={key_id}%2F20240307 {secret}")
    log.info("options", text=f"{{'secret_access_key': '{secret}'}}")
    text = output.getvalue()
    assert key_id not in text and secret not in text


def test_redact_scrubs_sigv4_credentials_without_registration(output: io.StringIO) -> None:
    """Credential= and secret_access_key= are scrubbed even when the pair was never registered."""
    text = logs.redact("Credential=AKXYZ/20240307/us-east-1/s3/aws4_request secret_access_key=abc123")
    assert "AKXYZ" not in text and "abc123" not in text


# Modules whose owners move them to structlog in their own change (#14); the list only shrinks.
_STDLIB_LOGGING_LEFT = {
    "mdw/polygon/client.py", "mdw/polygon/events.py", "mdw/scaleout/launcher.py", "mdw/scaleout/queue.py",
    "mdw/service/leader.py",
}


def _stdlib_logging_uses(path: Path) -> list[str]:
    """``logging.getLogger(...)`` calls and log calls with ``extra=`` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "getLogger" and getattr(node.func.value, "id", "") == "logging":
            found.append(f"line {node.lineno}: logging.getLogger")
        if node.func.attr in _LOG_METHODS and any(k.arg == "extra" for k in node.keywords):
            found.append(f"line {node.lineno}: {node.func.attr}(..., extra=...)")
    return found


_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def test_logs_every_module_logs_through_structlog_with_bound_keywords() -> None:
    """One logging style: ``get_logger(__name__)`` and keywords, never a stdlib logger with ``extra=``."""
    src = Path(logs.__file__).resolve().parent
    found = {}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src.parent).as_posix()
        if rel == "mdw/logs.py" or rel in _STDLIB_LOGGING_LEFT:
            continue
        if uses := _stdlib_logging_uses(path):
            found[rel] = uses
    assert found == {}
    assert {p.relative_to(src.parent).as_posix() for p in src.rglob("*.py")} >= _STDLIB_LOGGING_LEFT
