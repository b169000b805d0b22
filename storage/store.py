"""Opening the store, and writing a cleaned frame as a dataset."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, insert, text, update

from storage.catalog import datasets, metadata
from storage.datasets import (
    IS_RETURN,
    LINE_AMOUNT,
    Dataset,
    get_dataset_by_id,
    quote_identifier,
    set_active_dataset,
    utcnow,
)
from storage.engine import make_engine
from storage.settings import Settings


def open_store(settings: Settings) -> Engine:
    """Open the database named by the settings and bring its schema up to date."""
    engine = make_engine(settings.db_url)
    metadata.create_all(engine)
    return engine


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
    """Store an already-cleaned frame as a new dataset of this chat, in one transaction.

    Adds `_line_amount` and `_is_return` for order data, and makes it the chat's active
    dataset.
    """
    frame = frame.copy()
    if kind in {"orders", "baskets"}:
        frame[LINE_AMOUNT] = _line_amount(frame, roles)
        frame[IS_RETURN] = _is_return(frame, roles).astype("int8")
    now = utcnow()
    with engine.begin() as connection:
        dataset_id = connection.execute(
            insert(datasets).values(
                chat_id=chat_id,
                name=name,
                table_name=f"pending_{chat_id}_{now.timestamp():.0f}",
                source_file=source_file,
                kind=kind,
                row_count=len(frame),
                roles=roles,
                columns={column: str(dtype) for column, dtype in frame.dtypes.items()},
                stats=stats or {},
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        table_name = f"ds_{dataset_id}"
        connection.execute(
            update(datasets).where(datasets.c.id == dataset_id).values(table_name=table_name)
        )
        frame.to_sql(table_name, connection, index=False)
        for column in roles.values():
            connection.execute(
                text(
                    f"CREATE INDEX {quote_identifier(f'ix_{table_name}_{column}')} "
                    f"ON {quote_identifier(table_name)} ({quote_identifier(column)})"
                )
            )
    set_active_dataset(engine, chat_id, dataset_id)
    return get_dataset_by_id(engine, dataset_id)


def _line_amount(frame: pd.DataFrame, roles: dict[str, str]) -> pd.Series:
    if "amount" in roles:
        return pd.to_numeric(frame[roles["amount"]], errors="coerce")
    if "quantity" in roles and "unit_price" in roles:
        quantity = pd.to_numeric(frame[roles["quantity"]], errors="coerce")
        return quantity * pd.to_numeric(frame[roles["unit_price"]], errors="coerce")
    return pd.Series(float("nan"), index=frame.index)


def _is_return(frame: pd.DataFrame, roles: dict[str, str]) -> pd.Series:
    flag = pd.Series(False, index=frame.index)
    if "quantity" in roles:
        flag |= pd.to_numeric(frame[roles["quantity"]], errors="coerce").fillna(0) < 0
    if "amount" in roles:
        flag |= pd.to_numeric(frame[roles["amount"]], errors="coerce").fillna(0) < 0
    if "order_id" in roles:
        flag |= frame[roles["order_id"]].astype(str).str.upper().str.startswith("C")
    return flag
