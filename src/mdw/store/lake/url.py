"""Columnar store URLs: ``iceberg+<database URL>?warehouse=...``, split into the database and the lake.

* ``iceberg+sqlite:///data/mdw.db`` keeps the ledger, records and catalog in ``data/mdw.db`` and the
  table's files in ``data/lake`` (``?warehouse=/other/dir`` or ``file:///other/dir`` moves them).
* ``iceberg+postgresql://mdw@db:5432/mdw?warehouse=s3://bucket/prefix&s3.endpoint=http://minio:9000``
  puts the files on an S3-compatible endpoint (``s3.region`` too). Credentials come from the
  environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), never from the URL, so no stored
  URL or log line carries a secret.
* ``maintain_every`` (commits between housekeeping runs, default 200, 0 = never),
  ``compact_files`` (small files in one timeframe that start housekeeping before the next write,
  default 32, 0 = only by commits), ``snapshot_keep_s`` (default 3600) and ``orphan_grace_s``
  (default 3600) tune housekeeping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

from mdw.errors import UsageError

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

PREFIX = "iceberg+"
URL_FORM = (
    "iceberg+sqlite:///path/mdw.db[?warehouse=/dir or s3://bucket/prefix] or "
    "iceberg+postgresql://user@host:port/db?warehouse=s3://bucket/prefix[&s3.endpoint=http://host:port]"
)
_SECRETS = ("s3.access-key-id", "s3.secret-access-key", "s3.session-token")
_OWN = ("warehouse", "s3.endpoint", "s3.region", "maintain_every", "compact_files", "snapshot_keep_s",
        "orphan_grace_s")


@dataclass(frozen=True)
class LakeConfig:
    """Where the table's files go and how housekeeping runs."""

    warehouse: str
    io_properties: dict[str, str] = field(default_factory=dict)
    maintain_every: int = 200
    compact_files: int = 32
    snapshot_keep_ms: int = 3_600_000
    orphan_grace_ms: int = 3_600_000

    def filesystem(self) -> FileSystem:
        """The pyarrow filesystem of the warehouse (for listing files to clean up)."""
        from pyarrow import fs

        if not self.warehouse.startswith("s3://"):
            return fs.LocalFileSystem()
        endpoint = self.io_properties.get("s3.endpoint", "")
        scheme, _, host = endpoint.partition("://") if endpoint else ("https", "", "")
        return fs.S3FileSystem(
            endpoint_override=host or None, scheme=scheme or "https",
            region=self.io_properties.get("s3.region", os.environ.get("AWS_REGION", "us-east-1")),
        )  # fmt: skip


def split_url(url: str) -> tuple[str, LakeConfig]:
    """The database URL and the lake's configuration of an ``iceberg+`` URL.

    Raises:
        UsageError: not an ``iceberg+sqlite`` or ``iceberg+postgresql`` URL, a secret in the URL,
            or a bad number.
    """
    if not url.startswith(PREFIX):
        raise UsageError(f"invalid columnar store URL {url!r}; expected {URL_FORM}")
    text = url[len(PREFIX) :]
    parts = urlsplit(text)
    head = text.split("?", 1)[0]
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k in _SECRETS for k, _ in query):
        raise UsageError("S3 credentials do not belong in the store URL: set AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY in the environment")  # fmt: skip
    own = {k: v for k, v in query if k in _OWN}
    rest = [(k, v) for k, v in query if k not in _OWN]
    database = f"{head}?{urlencode(rest)}" if rest else head
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path or path == ":memory:":
            raise UsageError(f"invalid columnar store URL {url!r}: the catalog needs a database file")
        default = Path(path).resolve().parent / "lake"
    elif parts.scheme in ("postgresql", "postgres"):
        default = None
    else:
        raise UsageError(f"invalid columnar store URL {url!r}; expected {URL_FORM}")
    warehouse = own.get("warehouse") or (str(default) if default is not None else "")
    if not warehouse:
        raise UsageError(f"invalid columnar store URL {url!r}: PostgreSQL needs "
                         "?warehouse=s3://bucket/prefix or a directory every writer shares")  # fmt: skip
    if "://" not in warehouse:
        warehouse = f"file://{Path(warehouse).resolve()}"
    io = {k: own[k] for k in ("s3.endpoint", "s3.region") if own.get(k)}
    return database, LakeConfig(
        warehouse=warehouse.rstrip("/"), io_properties=io,
        maintain_every=_int(own, "maintain_every", 200),
        compact_files=_int(own, "compact_files", 32),
        snapshot_keep_ms=_int(own, "snapshot_keep_s", 3600) * 1000,
        orphan_grace_ms=_int(own, "orphan_grace_s", 3600) * 1000,
    )  # fmt: skip


def _int(values: dict[str, str], key: str, default: int) -> int:
    text = values.get(key)
    if text is None or text == "":
        return default
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"{key} must be a whole number, got {text!r}") from None
    if number < 0:
        raise UsageError(f"{key} must not be negative, got {number}")
    return number
