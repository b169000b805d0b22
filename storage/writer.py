"""Writing a dataset table and its catalog row in one transaction.

The table, its rows, its indexes, the catalog row and the chat's active dataset are written
between one BEGIN and one COMMIT, so a dataset is stored whole or not at all, also when the
process dies half-way (SQLite then discards the uncommitted part of its write-ahead log).

Uploads to an SQLite file are written by a child process through the ADBC driver, which
binds Arrow columns without making Python objects (`storage.bulk`); the same statements
below run there. Elsewhere, and for `store_frame`: on SQLite, Python's driver would run
CREATE TABLE outside any transaction, so the writer opens the transaction itself
(BEGIN IMMEDIATE, which also takes the write lock up front) and inserts through the
driver's `executemany` with one prepared statement. Other databases get the same steps
through SQLAlchemy.

A dataset uploaded again under a name the chat already uses replaces the old one atomically:
it keeps its id (so subscriptions and the active-dataset choice still point at it), gets a
new table, and the old table is dropped in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.schema import CreateIndex, CreateTable

from storage.bulk import BulkConnection
from storage.catalog import datasets
from storage.clean import BOOLEAN, INTEGER, REAL
from storage.datasets import quote_identifier, set_active, utcnow

#: Roles that queries look rows up or group by. Measures are summed, never looked up, and
#: an index on a handful of countries or channels does not beat a scan, so those stay out:
#: each index costs about half a second per million lines at upload time.
INDEXED_ROLES = ("order_id", "customer_id", "product", "timestamp")

_SQL_TYPES = {INTEGER: BigInteger, BOOLEAN: BigInteger, REAL: Float}


@dataclass(frozen=True)
class Target:
    """Where the dataset goes: its catalog id, table name, and the table it replaces."""

    dataset_id: int
    table_name: str
    replaces: str | None


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that also covers CREATE TABLE and CREATE INDEX."""
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        driver = _driver_connection(connection)
        previous = driver.isolation_level
        driver.isolation_level = None  # we say BEGIN and COMMIT ourselves
        try:
            driver.execute("BEGIN IMMEDIATE")
            # SQLAlchemy's view of the same transaction (pysqlite's own BEGIN is a no-op), so
            # that commit and rollback reach the driver and Alembic sees a transaction.
            with connection.begin():
                yield connection
        finally:
            if driver.in_transaction:
                driver.rollback()
            driver.isolation_level = previous


def _driver_connection(connection: Connection) -> Any:
    """The DB-API connection under SQLAlchemy's, for statements SQLAlchemy cannot run."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("The database connection was closed or invalidated.")
    return driver


def reserve(
    connection: Connection | BulkConnection, *, chat_id: int, name: str, source_file: str
) -> Target:
    """Claim a catalog row for the dataset (a new one, or the one it replaces)."""
    existing = connection.execute(
        select(datasets.c.id, datasets.c.table_name).where(
            datasets.c.chat_id == chat_id, func.lower(datasets.c.name) == name.lower()
        )
    ).first()
    if existing is not None:
        token = secrets.token_hex(4)
        return Target(existing.id, f"ds_{existing.id}_{token}", existing.table_name)
    now = utcnow()
    primary_key = connection.execute(
        insert(datasets).values(
            chat_id=chat_id,
            name=name,
            table_name=f"pending_{chat_id}_{secrets.token_hex(6)}",
            source_file=source_file,
            kind="table",
            row_count=0,
            roles={},
            columns={},
            stats={},
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key
    if primary_key is None:
        raise RuntimeError("The database returned no id for the new catalog row.")
    dataset_id = primary_key[0]
    return Target(dataset_id, f"ds_{dataset_id}", None)


class TableWriter:
    """Creates the dataset table and appends rows to it inside the open transaction."""

    def __init__(
        self, connection: Connection | BulkConnection, table_name: str, columns: dict[str, str]
    ) -> None:
        self.connection = connection
        self.table = Table(
            table_name,
            MetaData(),
            *(Column(name, _SQL_TYPES.get(stored, Text)) for name, stored in columns.items()),
        )
        self.rows = 0
        self._sqlite = connection.dialect.name == "sqlite"
        placeholders = ", ".join("?" for _ in columns)
        self._insert_sql = f"INSERT INTO {quote_identifier(table_name)} VALUES ({placeholders})"

    def create(self) -> None:
        self.connection.execute(CreateTable(self.table))

    def insert(self, batch: pa.RecordBatch) -> None:
        """Append Arrow columns named like the table's (the ADBC child binds them as they are)."""
        if isinstance(self.connection, BulkConnection):
            if batch.num_rows:
                self.connection.ingest(self.table.name, batch)
                self.rows += batch.num_rows
            return
        columns = [column.to_pylist() for column in batch.columns]
        self.insert_rows(list(zip(*columns, strict=True)))

    def insert_rows(self, rows: Sequence[tuple]) -> None:
        """Append rows given as tuples in column order."""
        if not rows:
            return
        assert isinstance(self.connection, Connection)
        if self._sqlite:
            _driver_connection(self.connection).executemany(self._insert_sql, rows)
        else:
            names = [column.name for column in self.table.columns]
            self.connection.execute(
                insert(self.table), [dict(zip(names, row, strict=True)) for row in rows]
            )
        self.rows += len(rows)

    def index(self, roles: dict[str, str]) -> None:
        """Build indexes after the load: one sort per index instead of a b-tree per row."""
        for role in INDEXED_ROLES:
            if role in roles:
                index = Index(index_name(self.table.name, role), self.table.c[roles[role]])
                self.connection.execute(CreateIndex(index))


def index_name(table_name: str, role: str) -> str:
    return f"ix_{table_name}_{role}"


def finish(
    connection: Connection | BulkConnection,
    target: Target,
    *,
    chat_id: int,
    values: dict[str, Any],
) -> None:
    """Fill in the catalog row, drop the replaced table and make the dataset active."""
    connection.execute(
        update(datasets)
        .where(datasets.c.id == target.dataset_id)
        .values(table_name=target.table_name, updated_at=utcnow(), **values)
    )
    if target.replaces:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote_identifier(target.replaces)}")
    set_active(connection, chat_id, target.dataset_id)
