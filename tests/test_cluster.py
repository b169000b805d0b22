"""KMeans on any table: column choice, missing values, k, centres in original units, errors."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from storage.errors import BadParameterError, EmptyDataError
from storage.store import store_frame
from tools import charts
from tools.cluster import ClusterTool
from tools.params import parse_params

CENTRES = {"price": (10.0, 50.0, 90.0), "weight": (1.0, 5.0, 1.0), "rating": (2.0, 3.0, 4.5)}


def three_blobs(rows_per_blob: int = 60, seed: int = 1) -> pd.DataFrame:
    """Three well-separated groups in three numeric columns, plus text and an id column."""
    rng = np.random.default_rng(seed)
    parts = []
    for blob in range(3):
        part = {
            column: rng.normal(centres[blob], 0.05 * max(centres), rows_per_blob)
            for column, centres in CENTRES.items()
        }
        part["shop"] = f"shop {blob}"
        parts.append(pd.DataFrame(part))
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "product_id", np.arange(len(frame)))
    return frame


def store(engine, frame: pd.DataFrame, *, roles: dict[str, str] | None = None, name="table"):
    return store_frame(engine, frame, chat_id=7, name=name, roles=roles or {}, kind="table")


def run(dataset, *words: str):
    tool = ClusterTool()
    return tool.run(dataset, parse_params(tool, list(words)))


def decoded_size(png: bytes) -> tuple[int, int]:
    height, width = imread(io.BytesIO(png), format="png").shape[:2]
    return width, height


def test_auto_finds_three_blobs_with_centres_in_original_units(engine) -> None:
    report = run(store(engine, three_blobs()))
    table = report.tables[0].frame

    assert report.facts["k"] == 3
    assert "k=3 was chosen" in report.text
    assert list(table.columns) == ["cluster", "rows", "share %", "price", "weight", "rating"]
    assert table["rows"].tolist() == [60, 60, 60]
    found = sorted(table["price"].round(-1).tolist())
    assert found == [10.0, 50.0, 90.0]
    assert "identifier-like columns: product_id" in report.text
    assert decoded_size(report.charts[0].png) == charts.SIZE


def test_chosen_columns_and_fixed_k(engine) -> None:
    report = run(store(engine, three_blobs()), "2", "columns=Price, weight")
    table = report.tables[0].frame
    assert report.facts["k"] == 2
    assert list(table.columns) == ["cluster", "rows", "share %", "price", "weight"]
    assert table["rows"].iloc[0] >= table["rows"].iloc[1]  # numbered largest first
    assert [followup.command for followup in report.followups] == ["/cluster 3"]


def test_role_columns_are_left_out_unless_asked_for(engine) -> None:
    frame = three_blobs()
    dataset = store(engine, frame, roles={"quantity": "rating"})
    report = run(dataset, "3")
    assert "rating" not in report.tables[0].frame.columns
    assert "mapped to roles: rating" in report.text
    report = run(dataset, "3", "columns=quantity,price")
    assert list(report.tables[0].frame.columns)[3:] == ["rating", "price"]


def test_one_column_draws_a_chart_too(engine) -> None:
    report = run(store(engine, three_blobs()), "3", "columns=price")
    assert decoded_size(report.charts[0].png) == charts.SIZE


@pytest.mark.parametrize(
    ("missing", "rows", "note"),
    [
        ("drop", 170, "Dropped 10 of 180 rows"),
        ("impute", 180, "Filled missing values with the column median in 10 rows: weight (10)"),
        ("auto", 180, "Filled missing values"),  # 10 of 180 is over 5%, so auto imputes
    ],
)
def test_missing_values_are_handled_and_reported(engine, missing, rows, note) -> None:
    frame = three_blobs()
    frame.loc[::18, "weight"] = np.nan
    report = run(store(engine, frame), "3", f"missing={missing}")
    assert report.facts["rows"] == rows
    assert note in report.text


def test_unknown_column_suggests_the_closest(engine) -> None:
    with pytest.raises(BadParameterError, match="Did you mean columns=weight"):
        run(store(engine, three_blobs()), "columns=price,wieght")


def test_text_column_is_refused_with_the_numeric_ones_listed(engine) -> None:
    with pytest.raises(BadParameterError) as error:
        run(store(engine, three_blobs()), "columns=shop")
    assert "Not numeric: shop" in str(error.value)
    assert "price, weight, rating" in str(error.value)


def test_no_numeric_columns(engine) -> None:
    frame = pd.DataFrame({"name": ["a", "b", "c"], "city": ["x", "y", "z"]})
    with pytest.raises(EmptyDataError, match="no numeric columns"):
        run(store(engine, frame))


def test_order_data_says_which_columns_were_left_out_and_how_to_use_them(engine) -> None:
    frame = pd.DataFrame(
        {"InvoiceNo": ["1", "2", "3"], "Quantity": [1, 5, 2], "UnitPrice": [2.5, 1.0, 9.9]}
    )
    roles = {"order_id": "InvoiceNo", "quantity": "Quantity", "unit_price": "UnitPrice"}
    with pytest.raises(EmptyDataError) as error:
        run(store(engine, frame, roles=roles))
    assert "leaves out by default: Quantity, UnitPrice" in str(error.value)
    assert "/cluster columns=Quantity,UnitPrice" in str(error.value)
    assert "no numeric columns" not in str(error.value)


def test_too_few_rows(engine) -> None:
    frame = pd.DataFrame({"price": [1.0, 2.0], "weight": [3.0, 4.0]})
    with pytest.raises(EmptyDataError, match="too few to cluster"):
        run(store(engine, frame))


def test_more_clusters_than_distinct_rows(engine) -> None:
    frame = pd.DataFrame({"price": [1.0, 2.0, 1.0, 2.0], "weight": [3.0, 4.0, 3.0, 4.0]})
    with pytest.raises(BadParameterError, match="at least 3 different rows, and there are 2"):
        run(store(engine, frame), "3")


def test_constant_columns_are_left_out(engine) -> None:
    frame = three_blobs().assign(flat=7.0)
    report = run(store(engine, frame), "3")
    assert "single value: flat" in report.text


def test_same_data_same_clusters(engine) -> None:
    dataset = store(engine, three_blobs(seed=4))
    first, second = run(dataset), run(dataset)
    pd.testing.assert_frame_equal(first.tables[0].frame, second.tables[0].frame)
