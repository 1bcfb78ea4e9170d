"""The vendor's flat-file bucket over S3, through obstore (ADR 0011): list, head, and resumable download.

obstore signs every request (SigV4), pools connections and retries 5xx answers and connection
failures itself. Above it this module adds what the ingest needs: the vendor's 403s told apart
(bad credentials vs. a file the key may not read), listing a month of one dataset, and a download
that resumes a dropped body with a ``Range`` request pinned to the listed ETag (``If-Match``), so
a file replaced mid-download is never stitched from two versions.

Errors map to the vendor boundary's classes: bad credentials :class:`VendorAuthError`; not
entitled, outside the plan's history, or not yet published :class:`VendorPlanError` (the vendor's
403 does not say which); a missing key :class:`VendorNotFound`; anything that may pass
:class:`VendorTransientError`. The secret is never part of a message: the key pair goes in
headers only, and the URLs obstore reports carry none of it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import obstore
from obstore.exceptions import (
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from mdw.errors import (
    ConfigError,
    VendorAuthError,
    VendorNotFound,
    VendorPlanError,
    VendorTransientError,
)
from mdw.flatfiles.keys import BUCKET, FileDataset, FileInfo, TransferStats
from mdw.logs import get_logger, redact

if TYPE_CHECKING:
    from obstore import GetOptions

    from mdw.config import Settings

log = get_logger(__name__)
CHUNK = 1 << 20
_CODE_RE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_STATUS_RE = re.compile(r"status code: (\d{3})")
# obstore raises its own classes and, for some answers, Python's (FileNotFoundError for a 404)
OBSTORE_ERRORS = (BaseError, OSError)
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed",
                               "InvalidToken", "ExpiredToken"})


def _info(meta: Any) -> FileInfo:
    return FileInfo(str(meta["path"]), int(meta["size"]), str(meta.get("e_tag") or ""),
                    int(meta["last_modified"].timestamp() * 1000))


def raise_mapped(exc: BaseError | OSError, what: str) -> NoReturn:
    """Raise the vendor-boundary error for an obstore failure of ``what`` (chained).

    obstore names some answers by class (not found, permission denied) and reports others, a
    refused listing among them, as generic errors that quote the status and S3's error document;
    the class, the status and S3's error ``Code`` are read together.
    """
    text = redact(str(exc))
    code_match = _CODE_RE.search(text)
    code = code_match[1] if code_match else ""
    status_match = _STATUS_RE.search(text)
    status = int(status_match[1]) if status_match else None
    if code in _CREDENTIAL_CODES or isinstance(exc, UnauthenticatedError):
        raise VendorAuthError(
            f"flat-file credentials refused ({code or 'unauthenticated'}): check MDW_FLATFILES_KEY_ID "
            "and MDW_FLATFILES_SECRET", status=403) from exc
    if isinstance(exc, PermissionDeniedError | PermissionError) or status == 403 or code == "AccessDenied":
        raise VendorPlanError(
            f"flat file {what} refused (403 {code or 'AccessDenied'}): the key's plan may not include "
            "it or its history, or it is not published yet", status=403) from exc
    if isinstance(exc, NotFoundError | FileNotFoundError) or status == 404 or code in _MISSING_CODES:
        raise VendorNotFound(f"flat file {what} does not exist ({code or 404})", status=404) from exc
    if isinstance(exc, PreconditionError) or status == 412:
        raise VendorTransientError(f"flat file {what} was replaced during the download", status=412) from exc
    first_line = text.splitlines()[0] if text else type(exc).__name__
    raise VendorTransientError(f"flat file {what} failed: {first_line[:300]}", status=status) from exc


class FlatFileClient:
    """The flat-file bucket of one endpoint and key pair.

    Args:
        endpoint: ``https://files.massive.com`` (or the simulator's base URL).
        key_id, secret: the flat-file S3 key pair (not the REST API key).
        bucket: the bucket name.
        max_retries: obstore's retries of one request (5xx, connection failures).
        max_resumes: how often in a row one download may resume without receiving a byte more.
        timeout_s, connect_timeout_s: per-request limits (the body of a large file streams for long).
    """

    def __init__(self, endpoint: str, key_id: str, secret: str, *, bucket: str = BUCKET, max_retries: int = 5,
                 max_resumes: int = 5, timeout_s: float = 600.0, connect_timeout_s: float = 10.0) -> None:
        if not key_id or not secret:
            raise ConfigError("flat files need MDW_FLATFILES_KEY_ID and MDW_FLATFILES_SECRET (the S3 key "
                              "pair from the vendor's dashboard, not the API key)")
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.max_resumes = max_resumes
        self.stats = TransferStats()
        self._store = S3Store(
            bucket, endpoint=self.endpoint, access_key_id=key_id, secret_access_key=secret,
            region="us-east-1", virtual_hosted_style_request=False,
            client_options={"allow_http": self.endpoint.startswith("http://"),
                            "timeout": timedelta(seconds=timeout_s),
                            "connect_timeout": timedelta(seconds=connect_timeout_s)},
            retry_config={"max_retries": max_retries, "retry_timeout": timedelta(seconds=timeout_s),
                          "backoff": {"init_backoff": timedelta(milliseconds=100),
                                      "max_backoff": timedelta(seconds=15), "base": 2}},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FlatFileClient:
        """The client of the configured endpoint and key pair.

        Raises:
            ConfigError: the key pair is not configured.
        """
        pair = settings.flatfiles_credentials
        if pair is None:
            raise ConfigError("flat files need MDW_FLATFILES_KEY_ID and MDW_FLATFILES_SECRET (the S3 key "
                              "pair from the vendor's dashboard, not the API key)")
        return cls(settings.flatfiles_endpoint, *pair)

    def __repr__(self) -> str:
        return f"FlatFileClient({self.endpoint!r}, bucket={self.bucket!r})"

    async def listing(self, prefix: str) -> list[FileInfo]:
        """Every object under ``prefix``, in key order (ListObjectsV2, following continuation tokens)."""
        out: list[FileInfo] = []
        try:
            stream = obstore.list(self._store, prefix=prefix, chunk_size=1000)
            async for page in stream:
                self.stats.count("list")
                out.extend(_info(meta) for meta in page)
        except OBSTORE_ERRORS as exc:
            raise_mapped(exc, f"listing {prefix}")
        out.sort(key=lambda f: f.key)
        return out

    async def list_month(self, ds: FileDataset, year: int, month: int) -> list[FileInfo]:
        """One month of one dataset's files (one request: a month holds at most 31 keys)."""
        return await self.listing(ds.month_prefix(year, month))

    async def head(self, key: str) -> FileInfo:
        """The object's size, ETag and Last-Modified.

        Raises:
            VendorError: see the module docstring.
        """
        self.stats.count("head")
        try:
            meta = await obstore.head_async(self._store, key)
        except OBSTORE_ERRORS as exc:
            if _CODE_RE.search(str(exc)) is None and isinstance(exc, PermissionDeniedError | PermissionError):
                # A HEAD's 403 has no body to say why: a listing does (bad credentials fail it too)
                await self.listing(key)
            raise_mapped(exc, key)
        return _info(meta)

    async def download(self, info: FileInfo, chunk: int = CHUNK) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of about ``chunk``; a dropped body resumes where it stopped.

        Every request is pinned to ``info.etag``, so a replacement published mid-download fails it
        (``VendorTransientError``, status 412) instead of mixing two versions.

        Raises:
            VendorError: see the module docstring; ``VendorTransientError`` also when the body keeps
                dropping without progress (more than ``max_resumes`` times in a row).
        """
        offset = 0
        stalled = 0  # resumes in a row that received nothing (a body that drops but progresses goes on)
        self.stats.files += 1
        while True:
            started_at = offset
            options: GetOptions = {"if_match": info.etag} if info.etag else {}
            if offset:
                options["range"] = {"offset": offset}
            self.stats.count("get")
            try:
                got = await obstore.get_async(self._store, info.key, options=options)
                async for part in got.stream(min_chunk_size=chunk):
                    data = bytes(part)
                    offset += len(data)
                    self.stats.bytes += len(data)
                    yield data
            except (PreconditionError, NotFoundError, PermissionDeniedError, UnauthenticatedError,
                    FileNotFoundError, PermissionError) as exc:
                raise_mapped(exc, info.key)
            except OBSTORE_ERRORS as exc:
                failure: BaseError | OSError | None = exc
            else:
                if not info.size or offset >= info.size:
                    if info.size and offset > info.size:
                        raise VendorTransientError(
                            f"flat file {info.key} sent {offset} bytes, listed {info.size}")
                    return
                failure = None  # the body ended early without an error: resume it all the same
            stalled = 0 if offset > started_at else stalled + 1
            if stalled > self.max_resumes:
                if failure is not None:
                    raise_mapped(failure, info.key)
                raise VendorTransientError(
                    f"flat file {info.key} keeps ending at byte {offset} of {info.size}")
            self.stats.resumes += 1
            log.info("flat-file download resumed", action="flatfiles.resume", key=info.key, offset=offset,
                     stalled=stalled,
                     reason=redact(str(failure).splitlines()[0]) if failure else "short body")


def source_from(settings: Settings) -> FlatFileClient | None:
    """The flat-file client of the settings, or None when no key pair is configured (REST only)."""
    return FlatFileClient.from_settings(settings) if settings.flatfiles_credentials is not None else None
