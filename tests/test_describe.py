"""`/describe` on each kind of dataset: orders, one-hot baskets and plain tables."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from storage.errors import EmptyDataError
from storage.store import store_frame
from tools import charts
from tools.describe import DescribeParams, DescribeTool

ORDER_ROLES = {
    "order_id": "invoice",
    "customer_id": "customer",
    "product": "item",
    "quantity": "qty",
    "unit_price": "price",
    "timestamp": "when",
}
# Three orders, two customers, three products; one return line (C3) worth 20.
ORDER_LINES = [
    ("O1", "A", "绿茶", 2, 10.0, "2024-01-05 10:00:00"),
    ("O1", "A", "茶杯", 1, 30.0, "2024-01-05 10:00:00"),
    ("O2", None, "绿茶", 1, 10.0, "2024-02-10 11:00:00"),
    ("C3", "B", "茶杯", -1, 20.0, "2024-02-11 09:00:00"),
    ("O4", "B", "teapot", 1, 50.0, "2024-03-01 12:00:00"),
]


def run(dataset):
    return DescribeTool().run(dataset, DescribeParams())


def test_orders_overview(engine) -> None:
    frame = pd.DataFrame(
        ORDER_LINES, columns=["invoice", "customer", "item", "qty", "price", "when"]
    )
    dataset = store_frame(
        engine,
        frame,
        chat_id=1,
        name="shop",
        roles=ORDER_ROLES,
        kind="orders",
        stats={"currency": "¥"},
    )
    report = run(dataset)

    assert report.facts["rows"] == 5
    assert report.facts["orders"] == 3  # the return invoice C3 is not an order
    assert report.facts["customers"] == 2
    assert report.facts["products"] == 3
    assert report.facts["revenue"] == 110.0
    assert report.facts["return_lines"] == 1
    assert (report.facts["first_date"], report.facts["last_date"]) == ("2024-01-05", "2024-03-01")
    assert "Dates: 2024-01-05 to 2024-03-01 (57 days)." in report.text
    assert "Revenue (returns left out): ¥110.00." in report.text
    assert "1 lines (20.0% of lines), worth ¥20.00 (18.2% of revenue)" in report.text

    top = report.tables[0].frame
    assert top.to_dict("list") == {
        "product": ["teapot", "绿茶", "茶杯"],
        "lines": [1, 2, 1],
        "revenue": [50.0, 30.0, 30.0],
    }
    missing = report.tables[1].frame.set_index("role")["missing"]
    assert missing["customer_id"] == 1 and missing["product"] == 0
    height, width = imread(io.BytesIO(report.charts[0].png), format="png").shape[:2]
    assert (width, height) == charts.SIZE
    assert [followup.command for followup in report.followups] == ["/segment", "/rules"]


def test_plain_table_gets_a_column_profile(engine) -> None:
    frame = pd.DataFrame(
        {"name": ["a", "b", None, "b"], "score": [1.0, 3.0, 5.0, np.nan], "n": [1, 2, 2, 2]}
    )
    dataset = store_frame(engine, frame, chat_id=1, name="scores", roles={}, kind="table")
    report = run(dataset)

    assert report.text.startswith("Kind: table. 4 rows, 3 columns.")
    assert not report.charts
    profile = report.tables[0].frame.set_index("column")
    assert profile.loc["name", ["type", "missing", "distinct"]].tolist() == ["text", 1, 2]
    assert profile.loc["score", ["missing", "min", "mean", "max"]].tolist() == [1, 1, 3, 5]
    assert [followup.command for followup in report.followups] == ["/cluster"]


def test_one_hot_baskets_list_the_most_common_items(engine) -> None:
    frame = pd.DataFrame(
        {"tea": [1, 1, 1, 0], "cup": [1, 0, 0, 0], "pot": [0, 1, 1, 1], "jam": [0, 0, 0, 0]}
    )
    dataset = store_frame(engine, frame, chat_id=1, name="baskets", roles={}, kind="onehot")
    items = run(dataset).tables[0].frame
    assert items.to_dict("list") == {
        "item": ["pot", "tea", "cup", "jam"],
        "baskets": [3, 3, 1, 0],
    }


def test_empty_dataset(engine) -> None:
    frame = pd.DataFrame({"a": pd.Series([], dtype=float)})
    dataset = store_frame(engine, frame, chat_id=1, name="nothing", roles={}, kind="table")
    with pytest.raises(EmptyDataError, match="no rows"):
        run(dataset)
