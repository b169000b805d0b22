"""Customer segments: RFM math known by hand, naming, determinism and every bad input."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from storage.demo import demo_frame
from storage.errors import BadParameterError, EmptyDataError, MissingRoleError
from storage.store import store_frame
from tools import charts
from tools.params import parse_params
from tools.segment import (
    ADVICE,
    PROTOTYPES,
    SegmentParams,
    SegmentTool,
    name_segments,
    query_rfm,
    segment_customers,
)

ROLES = {
    "order_id": "invoice",
    "customer_id": "customer",
    "timestamp": "when",
    "quantity": "qty",
    "unit_price": "price",
    "country": "country",
}
# (invoice, customer, when, qty, price, country). By hand, with the last sale on 2024-04-05:
#   A: orders O1 (10 + 20) and O2 (30), last 2024-03-01 -> R 35 days, F 2, M 60
#   B: order O3 (100) and a return C4 (left out),      -> R 50 days, F 1, M 100
#   C: order O5 (5) late on 2024-03-31                   -> R 5 days,  F 1, M 5
#   D: orders O6 (40), O7 (40), O8 (20)                  -> R 5 days,  F 3, M 100
#   a guest order O9 without customer sets the last sale date but is no customer.
LINES = [
    ("O1", "A", "2024-01-10 09:00:00", 1, 10.0, "UK"),
    ("O1", "A", "2024-01-10 09:00:00", 2, 10.0, "UK"),
    ("O2", "A", "2024-03-01 12:00:00", 3, 10.0, "UK"),
    ("O3", "B", "2024-02-15 10:00:00", 1, 100.0, "DE"),
    ("C4", "B", "2024-02-20 10:00:00", -1, 100.0, "DE"),
    ("O5", "C", "2024-03-31 23:59:59", 1, 5.0, "DE"),
    ("O6", "D", "2024-01-01 08:00:00", 4, 10.0, "UK"),
    ("O7", "D", "2024-01-02 08:00:00", 2, 20.0, "FR"),
    ("O8", "D", "2024-03-31 08:00:00", 1, 20.0, "UK"),
    ("O9", None, "2024-04-05 08:00:00", 1, 999.0, "UK"),
]


@pytest.fixture
def small(engine):
    frame = pd.DataFrame(LINES, columns=["invoice", "customer", "when", "qty", "price", "country"])
    return store_frame(engine, frame, chat_id=1, name="small", roles=ROLES, kind="orders")


@pytest.fixture(scope="module")
def demo_orders() -> pd.DataFrame:
    frame = demo_frame(rows=20_000, seed=3)
    when = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M")
    return frame.assign(InvoiceDate=when.dt.strftime("%Y-%m-%d %H:%M:%S"))


@pytest.fixture
def demo(engine, demo_orders):
    roles = {
        "order_id": "InvoiceNo",
        "customer_id": "CustomerID",
        "product": "Description",
        "quantity": "Quantity",
        "unit_price": "UnitPrice",
        "timestamp": "InvoiceDate",
        "country": "Country",
        "channel": "Channel",
    }
    return store_frame(engine, demo_orders, chat_id=2, name="demo", roles=roles, kind="orders")


def rfm_by_customer(frame: pd.DataFrame) -> dict[str, tuple[int, int, float]]:
    rows = frame.set_index("customer")[["recency_days", "orders", "spend"]]
    return {customer: tuple(row) for customer, row in rows.iterrows()}


# --- the math ------------------------------------------------------------------------------


def test_rfm_matches_hand_computation(small) -> None:
    assert rfm_by_customer(query_rfm(small)) == {
        "A": (35, 2, 60.0),
        "B": (50, 1, 100.0),
        "C": (5, 1, 5.0),
        "D": (5, 3, 100.0),
    }


def test_since_keeps_reference_at_the_last_sale(small) -> None:
    rfm = query_rfm(small, since=date(2024, 2, 1))
    assert rfm_by_customer(rfm) == {
        "A": (35, 1, 30.0),
        "B": (50, 1, 100.0),
        "C": (5, 1, 5.0),
        "D": (5, 1, 20.0),
    }


def test_until_is_inclusive_and_moves_the_reference(small) -> None:
    # The last sale up to 2024-03-01 is A's O2 at noon; D's last order was 2024-01-02.
    rfm = query_rfm(small, until=date(2024, 3, 1))
    assert rfm_by_customer(rfm) == {
        "A": (0, 2, 60.0),
        "B": (15, 1, 100.0),
        "D": (59, 2, 80.0),
    }


def test_without_order_id_frequency_counts_purchase_days(engine) -> None:
    frame = pd.DataFrame(LINES, columns=["invoice", "customer", "when", "qty", "price", "country"])
    roles = {key: value for key, value in ROLES.items() if key != "order_id"}
    dataset = store_frame(engine, frame, chat_id=1, name="no ids", roles=roles, kind="orders")
    # Without an invoice id the "C4" return is no longer recognised by its prefix, but its
    # negative quantity still marks it.
    assert rfm_by_customer(query_rfm(dataset))["D"] == (5, 3, 100.0)


# --- naming --------------------------------------------------------------------------------


def test_prototypes_name_themselves_in_any_order() -> None:
    names = list(PROTOTYPES)
    order = [3, 0, 7, 5, 1, 6, 2, 4]
    centroids = np.array([PROTOTYPES[names[index]] for index in order])
    assert name_segments(centroids) == [names[index] for index in order]


@pytest.mark.parametrize(
    ("centroids", "expected"),
    [
        ([[4.8, 4.6, 4.7], [1.2, 1.3, 1.1]], ["Champions", "Lost"]),
        (
            [[4.9, 1.1, 2.2], [1.4, 4.4, 4.6], [2.1, 3.4, 3.3]],
            ["New", "Can't lose them", "At risk"],
        ),
        (
            [[3.6, 4.1, 3.9], [4.4, 2.4, 2.6], [2.6, 1.4, 1.6]],
            ["Loyal", "Potential loyalists", "Hibernating"],
        ),
    ],
    ids=["best-and-worst", "new-and-slipping", "middle"],
)
def test_names_from_constructed_centroids(centroids, expected) -> None:
    assert name_segments(np.array(centroids)) == expected


def test_two_champion_like_segments_get_qualifiers() -> None:
    names = name_segments(np.array([[4.9, 4.8, 4.4], [4.8, 4.9, 5.0], [1.0, 1.0, 1.0]]))
    assert names == ["Champions (lower spend)", "Champions (higher spend)", "Lost"]


def test_ten_segments_get_ten_distinct_vocabulary_names() -> None:
    rng = np.random.default_rng(5)
    centroids = rng.uniform(1, 5, size=(10, 3))
    names = name_segments(centroids)
    assert len(set(names)) == 10
    assert all(name.split(" (")[0] in PROTOTYPES for name in names)
    assert not any("cluster" in name.lower() for name in names)


def test_every_name_has_advice() -> None:
    assert set(ADVICE) == set(PROTOTYPES)


# --- the whole tool --------------------------------------------------------------------------


def test_segment_report_on_demo_data(demo) -> None:
    report = SegmentTool().run(demo, SegmentParams())
    table = report.tables[0].frame
    customers = report.facts["customers"]

    assert list(table.columns) == [
        "segment",
        "customers",
        "share %",
        "avg recency (days)",
        "avg orders",
        "avg spend",
        "revenue %",
    ]
    assert table["customers"].sum() == customers
    assert table["share %"].sum() == pytest.approx(100, abs=0.5)
    assert table["revenue %"].sum() == pytest.approx(100, abs=0.5)
    assert report.facts["k"] == len(table) and 2 <= len(table) <= 8
    assert all(name.split(" (")[0] in PROTOTYPES for name in table["segment"])
    assert f"k={report.facts['k']} was chosen" in report.text
    assert all(name in report.text for name in table["segment"])

    pixels = imread(io.BytesIO(report.charts[0].png), format="png")
    assert pixels.shape[1::-1] == charts.SIZE
    rows = pd.read_csv(io.BytesIO(report.files[0].data))
    assert len(rows) == customers
    assert {"customer", "segment", "recency_days", "orders", "spend"} <= set(rows.columns)
    assert rows["r_score"].between(1, 5).all()


def test_same_data_gives_the_same_segments(demo) -> None:
    first = SegmentTool().run(demo, SegmentParams(k=4))
    second = SegmentTool().run(demo, SegmentParams(k=4))
    assert first.files[0].data == second.files[0].data
    pd.testing.assert_frame_equal(first.tables[0].frame, second.tables[0].frame)


def test_fixed_k_and_followups(demo) -> None:
    report = SegmentTool().run(demo, parse_params(SegmentTool(), ["5"]))
    assert len(report.tables[0].frame) == 5
    assert "silhouette" not in report.facts
    assert [followup.command for followup in report.followups] == [
        "/segment 4",
        "/segment 6",
        "/segment auto",
    ]


def test_by_compares_segments_across_a_role(demo) -> None:
    report = SegmentTool().run(demo, parse_params(SegmentTool(), ["k=3", "by=channel"]))
    compare = report.tables[1].frame
    assert compare.columns[0] == "Channel"
    assert compare["customers"].sum() == report.facts["customers"]
    segment_columns = compare.columns[2:]
    assert compare[segment_columns].sum(axis=1).round().eq(100).all()


def test_scores_and_segments_on_the_small_dataset(small) -> None:
    # Scores are quintiles of rank (ties share the average rank), by hand:
    #   R from recency 35, 50, 5, 5 -> 3, 2, 5, 5;  F from 2, 1, 1, 3 -> 4, 2, 2, 5;
    #   M from 60, 100, 5, 100 -> 3, 5, 2, 5.
    segmentation = segment_customers(query_rfm(small), k=3)
    customers = segmentation.customers.set_index("customer")
    assert customers[["r_score", "f_score", "m_score"]].to_dict("index") == {
        "A": {"r_score": 3, "f_score": 4, "m_score": 3},
        "B": {"r_score": 2, "f_score": 2, "m_score": 5},
        "C": {"r_score": 5, "f_score": 2, "m_score": 2},
        "D": {"r_score": 5, "f_score": 5, "m_score": 5},
    }
    assert customers["segment"].to_dict() == {
        "A": "At risk",
        "B": "At risk",
        "C": "Potential loyalists",
        "D": "Champions",
    }
    assert segmentation.reference == pd.Timestamp("2024-04-05")
    # The period starts at the first sale (D's O6), not at the earliest last purchase.
    assert segmentation.first_sale == pd.Timestamp("2024-01-01")
    report = SegmentTool().run(small, SegmentParams(k=3))
    assert "from orders 2024-01-01 to 2024-04-05" in report.text


# --- bad input -----------------------------------------------------------------------------


def test_missing_customer_role_says_how_to_map(engine) -> None:
    frame = pd.DataFrame(LINES, columns=["invoice", "customer", "when", "qty", "price", "country"])
    roles = {key: value for key, value in ROLES.items() if key != "customer_id"}
    dataset = store_frame(engine, frame, chat_id=1, name="anon", roles=roles, kind="orders")
    with pytest.raises(MissingRoleError) as error:
        SegmentTool().run(dataset, SegmentParams())
    assert "customer_id" in str(error.value) and "/map" in str(error.value)


def test_missing_amounts_say_how_to_map(engine) -> None:
    frame = pd.DataFrame(LINES, columns=["invoice", "customer", "when", "qty", "price", "country"])
    roles = {key: value for key, value in ROLES.items() if key != "unit_price"}
    dataset = store_frame(engine, frame, chat_id=1, name="no price", roles=roles, kind="orders")
    with pytest.raises(MissingRoleError, match="/map amount="):
        SegmentTool().run(dataset, SegmentParams())


def test_empty_period_names_the_dates_there_are(small) -> None:
    with pytest.raises(EmptyDataError) as error:
        SegmentTool().run(small, parse_params(SegmentTool(), ["since=2030-01-01"]))
    assert "2024-01-01 to 2024-04-05" in str(error.value)


def test_more_segments_than_customers(small) -> None:
    with pytest.raises(BadParameterError, match="k=5 segments need at least 5 customers"):
        SegmentTool().run(small, parse_params(SegmentTool(), ["5"]))


def test_too_few_customers_for_auto(small) -> None:
    with pytest.raises(EmptyDataError, match="too few"):
        SegmentTool().run(small, parse_params(SegmentTool(), ["until=2024-01-31"]))


def test_unknown_by_column_suggests_the_closest(small) -> None:
    with pytest.raises(BadParameterError, match="Did you mean by=country"):
        SegmentTool().run(small, parse_params(SegmentTool(), ["k=2", "by=countyr"]))


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["k=1"], "a whole number in [2, 10] or auto"),
        (["k=many"], "a whole number in [2, 10] or auto"),
        (["since=yesterday"], "since"),
        (["since=2024-05-01", "until=2024-04-01"], "since must not be after until"),
        (["seed=3"], "has no parameter 'seed'"),
    ],
    ids=["k-too-small", "k-not-a-number", "bad-date", "reversed-period", "unknown"],
)
def test_bad_parameters(words: list[str], message: str) -> None:
    with pytest.raises(BadParameterError) as error:
        parse_params(SegmentTool(), words)
    assert message in str(error.value)
    assert "/segment [k=auto]" in str(error.value)
