"""The store: migrations at start-up, storing frames, remapping roles, the run log."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import create_engine, insert, select, text

from storage.catalog import datasets, metadata, run_log
from storage.datasets import get_dataset, utcnow
from storage.errors import BadParameterError
from storage.ingest import ingest_path
from storage.store import log_run, open_store, remap_roles, store_frame


def _version(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_new_store_is_at_the_latest_migration(engine) -> None:
    assert _version(engine) == "0001"


def test_store_from_before_migrations_keeps_its_data(settings) -> None:
    # A store made by the first release (create_all, no alembic_version table).
    settings.data_dir.mkdir(parents=True)
    legacy = create_engine(settings.db_url)
    metadata.create_all(legacy)
    now = utcnow()
    with legacy.begin() as connection:
        connection.execute(
            insert(datasets).values(
                chat_id=9, name="old", table_name="ds_1", source_file="old.csv", kind="orders",
                row_count=3, roles={}, columns={}, stats={}, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    legacy.dispose()

    engine = open_store(settings)
    try:
        assert _version(engine) == "0001"
        with engine.connect() as connection:
            assert connection.execute(select(datasets.c.name)).scalars().all() == ["old"]
    finally:
        engine.dispose()


def test_reopening_an_upgraded_store_keeps_its_data(settings, tmp_path) -> None:
    engine = open_store(settings)
    path = tmp_path / "o.csv"
    path.write_text("order_id,product,qty,price\n1,tea,2,3.5\n")
    ingest_path(engine, path, chat_id=1, settings=settings)
    engine.dispose()
    engine = open_store(settings)
    try:
        assert get_dataset(engine, 1).info.row_count == 1
    finally:
        engine.dispose()


def test_store_frame_types_columns_and_derives_amounts(engine) -> None:
    frame = pd.DataFrame(
        {
            "order": ["1", "1", "C2"],
            "item": ["tea", "mug", "tea"],
            "qty": [2, 1, -1],
            "price": [3.5, 9.0, 3.5],
            "when": pd.to_datetime(["2024-03-05 14:02", "2024-03-05 14:02", "2024-03-07 00:00"]),
        }
    )
    roles = {"order_id": "order", "product": "item", "quantity": "qty", "unit_price": "price",
             "timestamp": "when"}  # fmt: skip
    dataset = store_frame(engine, frame, chat_id=4, name="orders", roles=roles, kind="orders")
    info = dataset.info
    assert info.columns["qty"] == "integer" and info.columns["when"] == "timestamp"
    assert info.stats["revenue"] == 16.0 and info.stats["returns"] == 1
    stored = dataset.read_sql('SELECT "when", _line_amount, _is_return FROM {table}')
    assert stored["when"].tolist()[0] == "2024-03-05 14:02:00"
    assert stored["_line_amount"].tolist() == [7.0, 9.0, -3.5]
    assert stored["_is_return"].tolist() == [0, 0, 1]


def test_remap_roles_recomputes_derived_columns(engine, settings, tmp_path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("ref,what,n,cost,total\nA1,tea,2,3.5,6.0\nA2,mug,-1,9.0,-9.0\n")
    ingest_path(engine, path, chat_id=2, settings=settings)

    info = remap_roles(engine, 2, None, {"amount": "total", "order_id": "ref", "product": "what"})
    assert info.kind == "orders" and info.roles["amount"] == "total"
    dataset = get_dataset(engine, 2)
    stored = dataset.read_sql("SELECT _line_amount, _is_return FROM {table} ORDER BY rowid")
    assert stored["_line_amount"].tolist() == [6.0, -9.0]
    assert stored["_is_return"].tolist() == [0, 1]
    assert info.stats["revenue"] == 6.0


def test_remap_roles_refuses_unknown_columns_and_wrong_types(engine, settings, tmp_path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("order_id,product,qty,price\n1,tea,2,3.5\n")
    ingest_path(engine, path, chat_id=2, settings=settings)
    with pytest.raises(BadParameterError, match="no column called 'Nope'"):
        remap_roles(engine, 2, None, {"product": "Nope"})
    with pytest.raises(BadParameterError, match="needs numbers"):
        remap_roles(engine, 2, None, {"quantity": "product"})


def test_log_run_records_a_run(engine) -> None:
    started = datetime(2024, 3, 5, 14, 2, tzinfo=UTC)
    entry = log_run(
        engine, chat_id=1, user_id=42, tool="rules", params={"top": 10, "since": started.date()},
        dataset_id=None, started_at=started, duration_s=1.5, outcome="ok",
    )  # fmt: skip
    with engine.connect() as connection:
        row = connection.execute(select(run_log).where(run_log.c.id == entry)).one()
    assert (row.tool, row.outcome, row.duration_s) == ("rules", "ok", 1.5)
    assert row.params == {"top": 10, "since": "2024-03-05"}
