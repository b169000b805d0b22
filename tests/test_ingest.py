"""Ingestion end to end: formats, encodings, cleaning, summaries, replacement, overrides."""

from __future__ import annotations

import gzip
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.datasets import get_dataset, list_datasets
from storage.errors import BadParameterError
from storage.ingest import ingest_path, parse_role_overrides

UCI = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"
    "536366,22633,CAFÉ HAND WARMER,6,12/13/2010 8:28,1.85,17850.0,France\n"
    "C536379,D,Discount,-1,12/14/2010 9:41,27.50,14527,United Kingdom\n"
    "536380,22139,RETROSPOT TEA SET,2,12/14/2010 10:00,4.95,,United Kingdom\n"
)


def _write(path: Path, content: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(content.encode(encoding))
    return path


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_uci_export_is_cleaned_and_summarised(engine, settings, tmp_path) -> None:
    path = _write(tmp_path / "Online Retail.csv", UCI, "cp1252")
    summary = ingest_path(engine, path, chat_id=7, settings=settings)

    info = summary.dataset.info
    assert (info.name, info.kind, info.row_count) == ("Online Retail", "orders", 5)
    assert summary.rows_read == 6 and summary.dropped["exact duplicates"] == 1
    assert summary.returns == 1
    assert (summary.orders, summary.customers, summary.products) == (3, 1, 4)
    assert (summary.first_date, summary.last_date) == ("2010-12-01", "2010-12-14")
    assert summary.revenue == pytest.approx(6 * 2.55 + 6 * 3.39 + 6 * 1.85 + 2 * 4.95)
    assert info.columns["Quantity"] == "integer" and info.columns["InvoiceDate"] == "timestamp"

    rows = _rows(
        engine,
        f'SELECT "Description", "InvoiceDate", "CustomerID", _line_amount, _is_return '
        f'FROM "{info.table_name}" ORDER BY rowid',
    )
    assert rows[0] == (
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "2010-12-01 08:26:00",
        "17850",
        pytest.approx(15.3),
        0,
    )
    assert rows[2][0] == "CAFÉ HAND WARMER" and rows[2][2] == "17850"  # "17850.0" read as id
    assert rows[3][3] == pytest.approx(-27.5) and rows[3][4] == 1
    assert rows[4][2] is None

    lines = summary.lines()
    assert lines[0] == "Stored 'Online Retail' (orders): 5 rows kept of 6 read."
    assert "Dropped: 1 exact duplicates, 0 empty rows." not in lines  # zero reasons are left out
    assert "Dropped: 1 exact duplicates." in lines
    assert "Orders: 3, customers: 1, products: 4" in lines
    assert "  InvoiceNo: order id (text)" in lines
    assert any(line.startswith("Revenue: ") for line in lines)
    assert get_dataset(engine, 7).info.id == info.id  # the new dataset is the active one


def test_role_columns_are_indexed(engine, settings, tmp_path) -> None:
    info = ingest_path(engine, _write(tmp_path / "o.csv", UCI), chat_id=1, settings=settings)
    table = info.dataset.table_name
    indexes = _rows(engine, f"SELECT name FROM sqlite_master WHERE tbl_name='{table}'")
    names = {name for (name,) in indexes}
    assert {f"ix_{info.dataset.table_name}_{role}" for role in ("order_id", "timestamp")} <= names


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("gb18030", b""), ("cp1252", b"")],
    ids=["utf-8", "utf-8-bom", "gb18030", "cp1252"],
)
def test_encodings(engine, settings, tmp_path, encoding: str, bom: bytes) -> None:
    name = "龙井绿茶" if encoding != "cp1252" else "Crème brûlée dish"
    content = f"订单编号,商品名称,购买数量,单价\n1,{name},2,3.5\n2,{name},1,3.5\n"
    if encoding == "cp1252":
        content = content.replace("订单编号,商品名称,购买数量,单价", "order,product,qty,price")
    path = tmp_path / "orders.csv"
    path.write_bytes(bom + content.encode(encoding))
    info = ingest_path(engine, path, chat_id=1, settings=settings).dataset.info
    product = info.roles["product"]
    assert _rows(engine, f'SELECT DISTINCT "{product}" FROM "{info.table_name}"') == [(name,)]


@pytest.mark.parametrize(
    ("delimiter", "suffix"),
    [(",", ".csv"), (";", ".csv"), ("\t", ".tsv"), ("|", ".txt"), ("\t", ".txt")],
    ids=["comma", "semicolon", "tab-tsv", "pipe", "tab-txt"],
)
def test_delimiters(engine, settings, tmp_path, delimiter: str, suffix: str) -> None:
    content = UCI.replace(",", delimiter)
    path = _write(tmp_path / f"orders{suffix}", content)
    info = ingest_path(engine, path, chat_id=1, settings=settings).dataset.info
    assert info.kind == "orders" and info.row_count == 5
    assert info.roles["product"] == "Description"


def test_gzip_and_zip(engine, settings, tmp_path) -> None:
    gz = tmp_path / "orders.csv.gz"
    gz.write_bytes(gzip.compress(UCI.encode()))
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("export/orders.csv", UCI)
        handle.writestr("__MACOSX/._orders.csv", b"\x00\x01")
    assert ingest_path(engine, gz, chat_id=1, settings=settings).dataset.info.name == "orders"
    summary = ingest_path(engine, archive, chat_id=1, settings=settings)
    assert summary.dataset.info.name == "export" and summary.rows_kept == 5


def test_xlsx(engine, settings, tmp_path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Order ID", "Customer", "Product", "Qty", "Price", "Order Date"])
    sheet.append([1001, "ann", "Tea", 2, 3.5, datetime(2024, 3, 5, 14, 2)])
    sheet.append([1002, "bob", "Mug", 1, 9.0, datetime(2024, 3, 6, 9, 0)])
    path = tmp_path / "orders.xlsx"
    workbook.save(path)
    summary = ingest_path(engine, path, chat_id=1, settings=settings)
    info = summary.dataset.info
    assert info.kind == "orders" and info.row_count == 2
    dates = _rows(engine, f'SELECT "Order Date", _line_amount FROM "{info.table_name}"')
    assert dates == [("2024-03-05 14:02:00", 7.0), ("2024-03-06 09:00:00", 9.0)]


@pytest.mark.parametrize(
    ("price", "expected", "currency"),
    [
        ('"¥1,299.00"', 1299.0, "¥"),
        ('"$1,299.00"', 1299.0, "$"),
        ('"1.299,00 €"', 1299.0, "€"),
        ('"(12.50)"', -12.5, ""),
        ("RMB 88", 88.0, "¥"),
        ('"1 299,50"', 1299.5, ""),
    ],
    ids=["yuan", "dollar", "euro-decimal-comma", "accounting-negative", "currency-code", "spaces"],
)
def test_money_strings(
    engine, settings, tmp_path, price: str, expected: float, currency: str
) -> None:
    path = _write(tmp_path / "o.csv", f"order_id,product,amount\n1,tea,{price}\n2,mug,{price}\n")
    summary = ingest_path(engine, path, chat_id=1, settings=settings)
    info = summary.dataset.info
    assert info.columns["amount"] == "real"
    values = _rows(engine, f'SELECT amount FROM "{info.table_name}"')
    assert values == [(expected,), (expected,)]
    # The currency the file carries is kept, so replies can show money in it.
    assert summary.dataset.currency == currency
    assert any(line.startswith(f"Revenue: {currency}") for line in summary.lines())


@pytest.mark.parametrize(
    ("header", "values", "first"),
    [
        (
            "created_at",
            ["2024-03-05T14:02:00+08:00", "2024-03-06 09:00:00"],
            "2024-03-05 14:02:00",
        ),
        ("InvoiceDate", ["12/1/2010 8:26", "12/13/2010 9:00"], "2010-12-01 08:26:00"),
        ("date", ["13/01/2024 10:00", "14/01/2024 10:00"], "2024-01-13 10:00:00"),
        ("date", ["2010/12/01", "2010/12/02"], "2010-12-01 00:00:00"),
        ("下单时间", ["2024年3月5日 14:02", "2024年3月6日 09:00"], "2024-03-05 14:02:00"),
        ("created_at", ["1709647320", "1709733600"], "2024-03-05 14:02:00"),
        ("Date", ["05.03.2024", "06.03.2024"], "2024-03-05 00:00:00"),
    ],
    ids=["iso-offset", "uci-month-first", "day-first", "year-first", "chinese", "epoch", "dots"],
)
def test_dates(engine, settings, tmp_path, header: str, values: list[str], first: str) -> None:
    lines = "\n".join(f"{i},tea,1,{value}" for i, value in enumerate(values))
    path = _write(tmp_path / "o.csv", f"order_id,product,qty,{header}\n{lines}\n")
    info = ingest_path(engine, path, chat_id=1, settings=settings).dataset.info
    assert info.roles["timestamp"] == header and info.columns[header] == "timestamp"
    stored = _rows(engine, f'SELECT "{header}" FROM "{info.table_name}" ORDER BY rowid')
    assert stored[0] == (first,)


def test_ambiguous_dates_are_read_the_way_that_keeps_them_in_order(
    engine, settings, tmp_path
) -> None:
    # 1/2 .. 12/2 read day-first steps a day at a time; month-first jumps a month each line.
    lines = "\n".join(f"{day},tea,1,{day:02d}/02/2024" for day in range(1, 13))
    path = _write(tmp_path / "o.csv", f"order_id,product,qty,date\n{lines}\n")
    info = ingest_path(engine, path, chat_id=1, settings=settings).dataset.info
    stored = _rows(engine, f'SELECT date FROM "{info.table_name}" ORDER BY rowid')
    assert stored[0] == ("2024-02-01 00:00:00",) and stored[-1] == ("2024-02-12 00:00:00",)


def test_duplicates_are_found_across_chunks(engine, settings, tmp_path, monkeypatch) -> None:
    from storage import reader

    monkeypatch.setattr(reader, "BLOCK_BYTES", 4096)
    lines = [f"{i},p{i % 50},1,2.0\n" for i in range(2000)]
    path = _write(
        tmp_path / "o.csv", "order_id,product,qty,price\n" + "".join(lines + lines[:300])
    )
    summary = ingest_path(engine, path, chat_id=1, settings=settings)
    assert summary.dropped["exact duplicates"] == 300 and summary.rows_kept == 2000


def test_unreadable_values_are_counted(engine, settings, tmp_path) -> None:
    body = "".join(f"{i},tea,{i % 5 + 1},2.0\n" for i in range(200)) + "999,tea,lots,2.0\n"
    path = _write(tmp_path / "o.csv", "order_id,product,qty,price\n" + body)
    summary = ingest_path(engine, path, chat_id=1, settings=settings)
    assert summary.unreadable == {"qty": 1}
    assert "Unreadable values, stored empty: qty 1." in summary.lines()


def test_same_name_replaces_the_dataset_atomically(engine, settings, tmp_path) -> None:
    first = ingest_path(
        engine, _write(tmp_path / "a.csv", UCI), chat_id=3, name="shop", settings=settings
    )
    fewer = "\n".join(UCI.splitlines()[:3]) + "\n"
    second = ingest_path(
        engine, _write(tmp_path / "b.csv", fewer), chat_id=3, name="Shop", settings=settings
    )
    assert second.replaced and "Replaced 'shop'" in second.lines()[0]
    assert second.dataset.info.id == first.dataset.info.id
    assert [info.row_count for info in list_datasets(engine, 3)] == [2]
    tables = {
        name for (name,) in _rows(engine, "SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert first.dataset.table_name not in tables and second.dataset.table_name in tables


def test_overrides_are_applied(engine, settings, tmp_path) -> None:
    path = _write(tmp_path / "o.csv", UCI)
    overrides = parse_role_overrides(["product=StockCode", "country="])
    info = ingest_path(
        engine, path, chat_id=1, overrides=overrides, settings=settings
    ).dataset.info
    assert info.roles["product"] == "StockCode" and "country" not in info.roles


@pytest.mark.parametrize(
    ("pairs", "message"),
    [(["colour=Description"], "not a column role"), (["product"], "ROLE=COLUMN")],
    ids=["unknown-role", "no-equals"],
)
def test_parse_role_overrides_refuses(pairs: list[str], message: str) -> None:
    with pytest.raises(BadParameterError, match=message):
        parse_role_overrides(pairs)


def test_basket_and_onehot_files(engine, settings, tmp_path) -> None:
    baskets = _write(tmp_path / "b.csv", "TransactionID,Item\nT1,Coffee\nT1,Bread\nT2,Tea\n")
    summary = ingest_path(engine, baskets, chat_id=1, settings=settings)
    assert summary.dataset.info.kind == "baskets" and summary.orders == 2
    onehot = _write(tmp_path / "h.csv", "bread,milk,eggs,tea\n1,0,1,0\n0,1,1,1\n")
    summary = ingest_path(engine, onehot, chat_id=1, settings=settings)
    info = summary.dataset.info
    assert info.kind == "onehot" and info.roles == {} and summary.products == 4
    assert info.columns == {
        "bread": "integer",
        "milk": "integer",
        "eggs": "integer",
        "tea": "integer",
    }
