"""The synthetic shop export: deterministic, realistic enough for every tool."""

from __future__ import annotations

import pandas as pd

from storage.demo import COLUMNS, demo_frame, write_demo_csv
from storage.ingest import ingest_path


def test_same_seed_writes_the_same_file(tmp_path) -> None:
    first = write_demo_csv(tmp_path / "a.csv", rows=3_000, seed=11).read_bytes()
    second = write_demo_csv(tmp_path / "b.csv", rows=3_000, seed=11).read_bytes()
    other = write_demo_csv(tmp_path / "c.csv", rows=3_000, seed=12).read_bytes()
    assert first == second and first != other


def test_frame_has_the_export_shape() -> None:
    frame = demo_frame(20_000, seed=7)
    assert len(frame) == 20_000 and tuple(frame.columns) == COLUMNS
    returns = frame["InvoiceNo"].str.startswith("C")
    assert 0.005 < returns.mean() < 0.05
    assert (frame.loc[returns, "Quantity"] < 0).all() and (
        frame.loc[~returns, "Quantity"] > 0
    ).all()
    assert frame["Description"].str.contains(r"[\u4e00-\u9fff]").any()
    assert frame["Description"].str.contains(r"^[A-Z ]+", regex=True).any()
    span = frame["InvoiceDate"].max() - frame["InvoiceDate"].min()
    assert span > pd.Timedelta(days=600)


def test_customers_range_from_loyal_to_one_off() -> None:
    frame = demo_frame(50_000, seed=7)
    orders = frame.dropna(subset=["CustomerID"]).groupby("CustomerID")["InvoiceNo"].nunique()
    assert (orders == 1).mean() > 0.2 and orders.max() >= 20


def test_bundles_are_bought_together() -> None:
    frame = demo_frame(50_000, seed=7)
    sales = frame[~frame["InvoiceNo"].str.startswith("C")]
    baskets = [set(codes) for _, codes in sales.groupby("InvoiceNo")["StockCode"]]
    share = pd.Series([code for basket in baskets for code in basket]).value_counts() / len(
        baskets
    )

    def best_lift(product: str) -> float:
        with_it = [basket - {product} for basket in baskets if product in basket]
        partners = pd.Series([code for basket in with_it for code in basket]).value_counts()
        return float((partners / len(with_it) / share[partners.index]).max())

    # Some best sellers have a bundle partner bought with them far more often than chance.
    assert max(best_lift(product) for product in share.index[:10]) > 3


def test_demo_file_ingests_as_orders(engine, settings, tmp_path) -> None:
    path = write_demo_csv(tmp_path / "demo.csv", rows=10_000, seed=7)
    summary = ingest_path(engine, path, chat_id=1, settings=settings)
    info = summary.dataset.info
    assert info.kind == "orders" and summary.returns > 0
    assert {"order_id", "customer_id", "product", "quantity", "unit_price", "timestamp"} <= set(
        info.roles
    )
    assert info.roles["category"] == "Category" and info.roles["channel"] == "Channel"
