"""Opening the store (with migrations), storing frames, remapping roles, and the run log."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, insert, inspect, text, update

from storage.catalog import datasets, run_log
from storage.clean import BOOLEAN, INTEGER, REAL, TEXT, TIMESTAMP
from storage.datasets import (
    IS_RETURN,
    LINE_AMOUNT,
    Dataset,
    DatasetInfo,
    get_dataset,
    get_dataset_by_id,
    quote_identifier,
    utcnow,
)
from storage.engine import make_engine
from storage.ingest import CANCELLED_ORDER, ORDER_KINDS, dataset_figures
from storage.roles import ColumnProfile, Detection, apply_overrides
from storage.settings import Settings
from storage.writer import INDEXED_ROLES, TableWriter, finish, index_name, reserve, transaction

log = logging.getLogger(__name__)

#: The migration that matches the schema `metadata.create_all` made before migrations existed.
BASELINE_REVISION = "0001"


def open_store(settings: Settings) -> Engine:
    """Open the database named by the settings and bring its schema up to date."""
    engine = make_engine(settings.db_url)
    migrate(engine)
    return engine


def migrate(engine: Engine) -> None:
    """Run the Alembic migrations to head, all in one transaction."""
    config = Config()
    config.set_main_option("script_location", "storage:migrations")
    with transaction(engine) as connection:
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "datasets" in tables and "alembic_version" not in tables:
            # A store from before migrations: its tables are the baseline's.
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, "head")


# Storing a prepared frame --------------------------------------------------------------


def store_frame(
    engine: Engine,
    frame: pd.DataFrame,
    *,
    chat_id: int,
    name: str,
    roles: dict[str, str],
    kind: str,
    source_file: str = "",
    stats: dict | None = None,
) -> Dataset:
    """Store an already-cleaned frame as a dataset of this chat, in one transaction.

    Columns are typed from their dtypes; `_line_amount` and `_is_return` are added for
    order data. The dataset becomes the chat's active one; an existing dataset of the same
    name is replaced.
    """
    columns = {str(column): _stored_type(frame[column]) for column in frame.columns}
    values = [_frame_values(frame[column], columns[str(column)]) for column in frame.columns]
    if kind in ORDER_KINDS:
        columns[LINE_AMOUNT], columns[IS_RETURN] = REAL, BOOLEAN
        values += [_frame_line_amount(frame, roles).tolist(), _frame_is_return(frame, roles)]
    detection = Detection(kind, dict(roles))
    with transaction(engine) as connection:
        target = reserve(connection, chat_id=chat_id, name=name, source_file=source_file)
        writer = TableWriter(connection, target.table_name, columns)
        writer.create()
        writer.insert_rows(list(zip(*values, strict=True)))
        writer.index(roles)
        figures = dataset_figures(connection, target.table_name, detection, len(frame))
        catalog = {
            "kind": kind,
            "row_count": len(frame),
            "roles": roles,
            "columns": columns,
            "stats": {**figures, **(stats or {})},
        }
        finish(connection, target, chat_id=chat_id, values=catalog)
    return get_dataset_by_id(engine, target.dataset_id)


def _stored_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return BOOLEAN
    if pd.api.types.is_integer_dtype(series):
        return INTEGER
    if pd.api.types.is_float_dtype(series):
        return REAL
    if pd.api.types.is_datetime64_any_dtype(series):
        return TIMESTAMP
    return TEXT


def _frame_values(series: pd.Series, stored: str) -> list:
    if stored == TIMESTAMP:
        text_values = series.dt.strftime("%Y-%m-%d %H:%M:%S")
        return text_values.astype(object).where(series.notna(), None).tolist()
    if stored == REAL:
        return series.astype("float64").tolist()
    if stored in (INTEGER, BOOLEAN):
        as_object = series.astype(object).where(series.notna(), None)
        return [None if value is None else int(value) for value in as_object]
    return series.astype(object).where(series.notna(), None).tolist()


def _frame_line_amount(frame: pd.DataFrame, roles: dict[str, str]) -> np.ndarray:
    def numbers(role: str) -> np.ndarray:
        return pd.to_numeric(frame[roles[role]], errors="coerce").to_numpy(dtype="float64")

    if "amount" in roles:
        return numbers("amount")
    if "unit_price" in roles:
        return numbers("unit_price") * (numbers("quantity") if "quantity" in roles else 1.0)
    return np.full(len(frame), np.nan)


def _frame_is_return(frame: pd.DataFrame, roles: dict[str, str]) -> list[int]:
    flag = np.zeros(len(frame), dtype=bool)
    for role in ("quantity", "amount"):
        if role in roles:
            flag |= pd.to_numeric(frame[roles[role]], errors="coerce").fillna(0).to_numpy() < 0
    if "order_id" in roles:
        order = frame[roles["order_id"]].astype("string")
        flag |= order.str.match(CANCELLED_ORDER).fillna(False).to_numpy(dtype=bool)
    return flag.astype(int).tolist()


# Remapping roles -----------------------------------------------------------------------


def remap_roles(
    engine: Engine, chat_id: int, name: str | None, overrides: dict[str, str | None]
) -> DatasetInfo:
    """Apply `/map role=column` to a stored dataset, recomputing the derived columns.

    Checks that the columns exist and fit the roles, then updates the catalog, indexes,
    `_line_amount` and `_is_return` in one transaction.
    """
    info = get_dataset(engine, chat_id, name).info
    profiles = [
        ColumnProfile(column, stored)
        for column, stored in info.columns.items()
        if not column.startswith("_")
    ]
    detection = apply_overrides(Detection(info.kind, dict(info.roles)), profiles, overrides)
    columns = dict(info.columns)
    with transaction(engine) as connection:
        if detection.kind in ORDER_KINDS:
            _add_derived_columns(connection, info.table_name, columns)
            _recompute_derived(connection, info.table_name, detection.roles)
        _reindex(connection, info, detection.roles)
        items = sum(1 for column in profiles if column.name not in detection.roles.values())
        figures = dataset_figures(
            connection, info.table_name, detection, info.row_count, items=items
        )
        connection.execute(
            update(datasets)
            .where(datasets.c.id == info.id)
            .values(
                kind=detection.kind,
                roles=detection.roles,
                columns=columns,
                stats={**info.stats, **figures},
                updated_at=utcnow(),
            )
        )
    return get_dataset_by_id(engine, info.id).info


def _add_derived_columns(connection: Connection, table_name: str, columns: dict) -> None:
    for column, stored, sql_type in ((LINE_AMOUNT, REAL, "REAL"), (IS_RETURN, BOOLEAN, "BIGINT")):
        if column not in columns:
            connection.execute(
                text(
                    f"ALTER TABLE {quote_identifier(table_name)} "
                    f"ADD COLUMN {quote_identifier(column)} {sql_type}"
                )
            )
            columns[column] = stored


def _recompute_derived(connection: Connection, table_name: str, roles: dict[str, str]) -> None:
    def number(role: str) -> str:
        return f"CAST({quote_identifier(roles[role])} AS REAL)"

    if "amount" in roles:
        amount = number("amount")
    elif "unit_price" in roles:
        quantity = f" * {number('quantity')}" if "quantity" in roles else ""
        amount = number("unit_price") + quantity
    else:
        amount = "NULL"
    tests = [
        f"COALESCE({number(role)} < 0, 0)" for role in ("quantity", "amount") if role in roles
    ]
    if "order_id" in roles:
        # GLOB is case-sensitive, like the ingest-time pattern ^C[0-9].
        tests.append(f"COALESCE({quote_identifier(roles['order_id'])} GLOB 'C[0-9]*', 0)")
    is_return = f"CASE WHEN {' OR '.join(tests)} THEN 1 ELSE 0 END" if tests else "0"
    assignments = f"{quote_identifier(LINE_AMOUNT)} = {amount}, {quote_identifier(IS_RETURN)} = "
    connection.execute(text(f"UPDATE {quote_identifier(table_name)} SET {assignments}{is_return}"))


def _reindex(connection: Connection, info: DatasetInfo, roles: dict[str, str]) -> None:
    """Keep one index per looked-up role, on the column that now has the role."""
    table = quote_identifier(info.table_name)
    for role in INDEXED_ROLES:
        if info.roles.get(role) == roles.get(role):
            continue
        index = quote_identifier(index_name(info.table_name, role))
        connection.execute(text(f"DROP INDEX IF EXISTS {index}"))
        if role in roles:
            column = quote_identifier(roles[role])
            connection.execute(text(f"CREATE INDEX {index} ON {table} ({column})"))


# Run log -------------------------------------------------------------------------------


def log_run(
    engine: Engine,
    *,
    chat_id: int,
    user_id: int | None,
    tool: str,
    params: dict[str, Any],
    dataset_id: int | None,
    started_at: datetime,
    duration_s: float,
    outcome: str,
    error_ref: str | None = None,
    detail: str | None = None,
) -> int:
    """Record one tool run (who, what, how long, how it ended); return the entry's id."""
    with engine.begin() as connection:
        result = connection.execute(
            insert(run_log).values(
                chat_id=chat_id,
                user_id=user_id,
                tool=tool,
                params=_json_safe(params),
                dataset_id=dataset_id,
                started_at=started_at,
                duration_s=duration_s,
                outcome=outcome,
                error_ref=error_ref,
                detail=detail,
            )
        )
    primary_key = result.inserted_primary_key
    if primary_key is None:
        raise RuntimeError("The database returned no id for the new run log entry.")
    return int(primary_key[0])


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values: dates and other objects become their text."""
    safe: dict[str, Any] = {}
    for key, value in params.items():
        plain = value is None or isinstance(value, bool | int | float | str | list | dict)
        safe[key] = value if plain else str(value)
    return safe
