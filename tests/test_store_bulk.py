"""The ADBC writer process and Python's sqlite3 on one WAL database, and the two write paths."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from sqlalchemy import text

from storage import bulk
from storage.datasets import get_dataset, list_datasets
from storage.engine import make_engine
from storage.ingest import ingest_path
from storage.store import log_run, migrate
from storage.writer import TableWriter, finish, reserve

UCI = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"
    "536366,22633,CAFÉ HAND WARMER,6,12/13/2010 8:28,1.85,17850.0,France\n"
    "C536379,D,Discount,-1,12/14/2010 9:41,27.50,14527,United Kingdom\n"
    "536380,22139,RETROSPOT TEA SET,2,12/14/2010 10:00,,,United Kingdom\n"
)
COLUMNS = {"order": "text", "qty": "integer", "price": "real"}


def _batch(rows: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "order": [f"o{i}" for i in range(rows)],
            "qty": pa.array(range(rows), type=pa.int64()),
            "price": pa.array([i / 4 if i % 7 else None for i in range(rows)]),
        }
    )


def _log_run(engine, chat_id: int) -> int:
    started = datetime(2024, 3, 5, tzinfo=UTC)
    return log_run(
        engine, chat_id=chat_id, user_id=None, tool="describe", params={}, dataset_id=None,
        started_at=started, duration_s=0.1, outcome="ok",
    )  # fmt: skip


def test_sqlite3_readers_and_writers_work_around_the_writer_process(engine, settings) -> None:
    database = str(settings.data_dir / "marketbot.db")
    with bulk.transaction(engine) as connection:
        target = reserve(connection, chat_id=1, name="shop", source_file="shop.csv")
        writer = TableWriter(connection, target.table_name, COLUMNS)
        writer.create()
        writer.insert(_batch(1000))

        # Readers here see the store as it was: no half-written dataset.
        assert list_datasets(engine, 1) == []
        # A writer here waits for the lock instead of writing beside the other SQLite copy.
        other = sqlite3.connect(database, timeout=0.2, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()

        writer.insert(_batch(500))
        writer.index({"order_id": "order"})
        values = {"kind": "orders", "row_count": writer.rows, "roles": {"order_id": "order"},
                  "columns": COLUMNS, "stats": {"rows_read": 1500}}  # fmt: skip
        finish(connection, target, chat_id=1, values=values)

    info = get_dataset(engine, 1).info
    assert (info.name, info.row_count, info.stats) == ("shop", 1500, {"rows_read": 1500})
    assert isinstance(info.created_at, datetime) and info.roles == {"order_id": "order"}
    with engine.connect() as connection:
        table = f'"{info.table_name}"'
        stored = connection.execute(
            text(f"SELECT typeof(qty), typeof(price), COUNT(*) FROM {table} GROUP BY 1, 2")
        ).all()
        assert sorted(stored) == [("integer", "null", 215), ("integer", "real", 1285)]
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"

    # Python's sqlite3 writes after it, and the writer process writes after that.
    assert _log_run(engine, 1) > 0
    second = ingest_path(engine, _write(settings.data_dir / "b.csv"), chat_id=1, settings=settings)
    assert second.rows_kept == 5
    assert _log_run(engine, 1) > 0


def _write(path):
    path.write_text(UCI, encoding="utf-8")
    return path


def test_writer_process_waits_for_the_lock(engine, settings) -> None:
    database = str(settings.data_dir / "marketbot.db")
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.perf_counter()
    try:
        with bulk.transaction(engine) as connection:
            reserve(connection, chat_id=2, name="late", source_file="late.csv")
    finally:
        release.join()
        holder.close()
    assert time.perf_counter() - started >= 0.4  # it waited (busy timeout) and then wrote
    assert [info.name for info in list_datasets(engine, 2)] == ["late"]


def test_failed_statement_rolls_the_whole_transaction_back(engine) -> None:
    with pytest.raises(bulk.BulkWriteError, match="no_such_table"), bulk.transaction(engine) as c:
        reserve(c, chat_id=3, name="broken", source_file="x.csv")
        c.exec_driver_sql("SELECT * FROM no_such_table")
    assert list_datasets(engine, 3) == []
    assert _log_run(engine, 3) > 0  # the lock is free again


def test_both_write_paths_store_the_same_rows(engine, settings, tmp_path) -> None:
    path = _write(tmp_path / "orders.csv")
    assert bulk.supported(engine)
    through_adbc = ingest_path(engine, path, chat_id=1, settings=settings)

    memory = make_engine("sqlite://")
    assert not bulk.supported(memory)
    migrate(memory)
    try:
        through_sqlalchemy = ingest_path(memory, path, chat_id=1, settings=settings)
        results = []
        for store, summary in ((engine, through_adbc), (memory, through_sqlalchemy)):
            info = summary.dataset.info
            with store.connect() as connection:
                rows = connection.execute(text(f'SELECT * FROM "{info.table_name}"')).all()
                types = connection.execute(
                    text(
                        f'SELECT typeof("UnitPrice"), typeof("Quantity") FROM "{info.table_name}"'
                    )
                ).all()
                sql = connection.execute(
                    text("SELECT type, sql FROM sqlite_master WHERE tbl_name = :t ORDER BY name"),
                    {"t": info.table_name},
                ).all()
            results.append((rows, types, sql, info.columns, info.roles, info.stats))
        assert results[0] == results[1]
    finally:
        memory.dispose()
