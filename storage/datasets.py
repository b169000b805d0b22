"""Read access to stored datasets, and the catalog operations on them.

Every dataset lives in its own table (`ds_<id>`), one column per uploaded column, typed,
plus two columns ingestion derives for order data:

- `_line_amount`: the line's revenue (the amount role, or quantity x unit price), or NULL;
- `_is_return`: 1 for returns and cancellations (negative quantity or amount, or an
  invoice id starting with "C"), else 0. Tools leave these lines out of baskets and revenue.

Timestamps are stored as ISO-8601 text (`YYYY-MM-DD HH:MM:SS`), which sorts correctly and
works with SQLite's date functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, insert, select, text, update

from storage.catalog import chat_settings, datasets, run_log, subscriptions
from storage.errors import DatasetNotFoundError, MissingRoleError

#: Every column role, in the order the upload answer lists them.
ROLES = (
    "order_id",
    "customer_id",
    "product",
    "product_code",
    "quantity",
    "unit_price",
    "amount",
    "timestamp",
    "category",
    "country",
    "channel",
)
LINE_AMOUNT = "_line_amount"
IS_RETURN = "_is_return"


@dataclass(frozen=True)
class DatasetInfo:
    """One row of the datasets catalog."""

    id: int
    chat_id: int
    name: str
    table_name: str
    source_file: str
    kind: str
    row_count: int
    roles: dict[str, str]
    columns: dict[str, str]
    stats: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Dataset:
    """A read-only view of one dataset for tools: its roles, columns and SQL access."""

    def __init__(self, engine: Engine, info: DatasetInfo) -> None:
        self.engine = engine
        self.info = info

    @property
    def table_name(self) -> str:
        return self.info.table_name

    @property
    def roles(self) -> dict[str, str]:
        return self.info.roles

    @property
    def currency(self) -> str:
        """The currency symbol of the money columns ("¥", "$", ...), or "" when unknown."""
        return str(self.info.stats.get("currency") or "")

    def has(self, role: str) -> bool:
        return role in self.info.roles

    def column(self, role: str, *, tool: str = "") -> str:
        """The column name mapped to `role`; raises `MissingRoleError` when there is none."""
        try:
            return self.info.roles[role]
        except KeyError:
            raise MissingRoleError(role, tool=tool) from None

    def quoted(self, role: str, *, tool: str = "") -> str:
        """The column for `role`, quoted for use inside SQL text."""
        return quote_identifier(self.column(role, tool=tool))

    def require(self, *roles: str, tool: str = "") -> None:
        for role in roles:
            self.column(role, tool=tool)

    def read_sql(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a read query (values bound, never formatted in) and return a DataFrame.

        Write `{table}` in the SQL for the dataset's quoted table name.
        """
        statement = text(sql.replace("{table}", quote_identifier(self.table_name)))
        with self.engine.connect() as connection:
            return pd.read_sql_query(statement, connection, params=params or {})


def quote_identifier(name: str) -> str:
    """Quote a column or table name for SQL text (names come from users' headers)."""
    return '"' + name.replace('"', '""') + '"'


def _info(row: Any) -> DatasetInfo:
    return DatasetInfo(
        id=row.id,
        chat_id=row.chat_id,
        name=row.name,
        table_name=row.table_name,
        source_file=row.source_file,
        kind=row.kind,
        row_count=row.row_count,
        roles=dict(row.roles or {}),
        columns=dict(row.columns or {}),
        stats=dict(row.stats or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_datasets(engine: Engine, chat_id: int) -> list[DatasetInfo]:
    """This chat's datasets, newest first."""
    query = (
        select(datasets)
        .where(datasets.c.chat_id == chat_id)
        .order_by(datasets.c.created_at.desc(), datasets.c.id.desc())
    )
    with engine.connect() as connection:
        return [_info(row) for row in connection.execute(query)]


def active_dataset_id(engine: Engine, chat_id: int) -> int | None:
    query = select(chat_settings.c.active_dataset_id).where(chat_settings.c.chat_id == chat_id)
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def get_dataset(engine: Engine, chat_id: int, name: str | None = None) -> Dataset:
    """A dataset of this chat by name, or the active one (else the newest) when no name."""
    owned = list_datasets(engine, chat_id)
    if not owned:
        raise DatasetNotFoundError(
            "This chat has no data yet.", hint="Send a CSV or Excel export of your orders."
        )
    if name is not None:
        for info in owned:
            if info.name.lower() == name.lower():
                return Dataset(engine, info)
        names = ", ".join(info.name for info in owned)
        raise DatasetNotFoundError(f"There is no dataset called '{name}'.", hint=f"Yours: {names}")
    active = active_dataset_id(engine, chat_id)
    chosen = next((info for info in owned if info.id == active), owned[0])
    return Dataset(engine, chosen)


def get_dataset_by_id(engine: Engine, dataset_id: int) -> Dataset:
    with engine.connect() as connection:
        row = connection.execute(select(datasets).where(datasets.c.id == dataset_id)).first()
    if row is None:
        raise DatasetNotFoundError("That dataset no longer exists.")
    return Dataset(engine, _info(row))


def set_active_dataset(engine: Engine, chat_id: int, dataset_id: int) -> None:
    with engine.begin() as connection:
        set_active(connection, chat_id, dataset_id)


def set_active(connection: Any, chat_id: int, dataset_id: int) -> None:
    """Make a dataset the chat's active one, inside the caller's transaction.

    `connection` is a SQLAlchemy connection or anything with the same `execute`, such as
    the bulk writer's connection.
    """
    changed = connection.execute(
        update(chat_settings)
        .where(chat_settings.c.chat_id == chat_id)
        .values(active_dataset_id=dataset_id)
    ).rowcount
    if not changed:
        connection.execute(
            insert(chat_settings).values(chat_id=chat_id, active_dataset_id=dataset_id)
        )


def delete_chat_data(engine: Engine, chat_id: int) -> int:
    """Delete everything kept for this chat, in one transaction; return how many datasets.

    That is its dataset tables, their catalog rows, its settings, its subscriptions and its
    run log (which holds the parameters it asked with, such as product names).
    """
    owned = list_datasets(engine, chat_id)
    with engine.begin() as connection:
        for info in owned:
            connection.execute(text(f"DROP TABLE IF EXISTS {quote_identifier(info.table_name)}"))
        for table in (chat_settings, subscriptions, run_log, datasets):
            connection.execute(delete(table).where(table.c.chat_id == chat_id))
    return len(owned)


def utcnow() -> datetime:
    return datetime.now(UTC)
