"""The Iceberg catalog in mdw's own database, and the commit that swaps it with the ledger.

The catalog is Iceberg's SQL (JDBC) catalog: one row per table in ``iceberg_tables`` holding the
location of the table's current metadata file. pyiceberg's ``SqlCatalog``, Spark's and Trino's
JDBC catalogs read that same row. mdw keeps the row in the database that holds the coverage ledger,
so one SQL transaction moves the table's pointer *and* the ledger (ADR 0012):

1. under the transaction's write lock, read the pointer (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
   ``SELECT ... FOR UPDATE``), so concurrent writers of any process or machine queue here;
2. write the new data files, manifests and metadata file (new, uniquely named objects: invisible
   until the pointer names them);
3. ``UPDATE iceberg_tables SET metadata_location = new WHERE metadata_location = old`` (Iceberg's
   compare-and-swap) and the ledger change, then COMMIT.

A crash before step 3 commits leaves unreferenced files (removed by housekeeping) and the old table
and ledger; after it, both are new. They cannot disagree.
"""

from __future__ import annotations

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.update import TableRequirement, TableUpdate

from mdw.errors import StoreError

CATALOG = "mdw"
# The JDBC catalog's tables, as pyiceberg's SqlCatalog and Iceberg's JdbcCatalog create them.
CATALOG_DDL = (
    "CREATE TABLE IF NOT EXISTS iceberg_tables (catalog_name VARCHAR(255) NOT NULL,"
    " table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL,"
    " metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000),"
    " PRIMARY KEY (catalog_name, table_namespace, table_name))",
    "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (catalog_name VARCHAR(255) NOT NULL,"
    " namespace VARCHAR(255) NOT NULL, property_key VARCHAR(255) NOT NULL, property_value VARCHAR(1000),"
    " PRIMARY KEY (catalog_name, namespace, property_key))",
)


class CommitConflict(StoreError):
    """The table's pointer moved between reading it and swapping it: another writer committed."""


class StagingCatalog(SqlCatalog):
    """A ``SqlCatalog`` whose table commits write the new metadata file but do not move the pointer.

    ``commit_table`` validates the requirements against the table it is given (loaded at the
    pointer read under the caller's lock), writes the next metadata file, and records
    ``(old, new)`` in :attr:`staged`; the caller swaps the pointer in its own transaction.
    """

    staged: tuple[str, str] | None = None

    def commit_table(
        self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]
    ) -> CommitTableResponse:
        from pyiceberg.table.locations import load_location_provider

        from mdw.store.lake.table import apply_updates

        # What SqlCatalog's _update_and_stage_table does, with mdw's metadata update (no deep copy).
        for requirement in requirements:
            requirement.validate(table.metadata)
        metadata = apply_updates(table.metadata, updates, table.metadata_location)
        version = self._parse_metadata_version(table.metadata_location) + 1
        provider = load_location_provider(metadata.location, metadata.properties)
        location = provider.new_table_metadata_file_location(version)
        io = self._load_file_io(properties=metadata.properties, location=location)
        self._write_metadata(metadata, io, location)
        self.staged = (table.metadata_location, location)
        return CommitTableResponse(metadata=metadata, metadata_location=location)


def pointer_key(namespace: str, table: str) -> tuple[str, str, str]:
    return (CATALOG, namespace, table)


SELECT_POINTER = (
    "SELECT metadata_location FROM iceberg_tables"
    " WHERE catalog_name = {} AND table_namespace = {} AND table_name = {}"
)
SWAP_POINTER = (
    "UPDATE iceberg_tables SET metadata_location = {}, previous_metadata_location = {}"
    " WHERE catalog_name = {} AND table_namespace = {} AND table_name = {} AND metadata_location = {}"
)


def sql(template: str, dialect: str) -> str:
    """A statement with the dialect's placeholders (``?`` for SQLite, ``$n`` for PostgreSQL)."""
    count = template.count("{}")
    marks = ["?"] * count if dialect == "sqlite" else [f"${i + 1}" for i in range(count)]
    return template.format(*marks)
