"""`/segment`: customer segments from recency, frequency and monetary value (RFM + KMeans).

Steps: RFM per customer in SQL (returns left out), log-transform and standardise, KMeans
(k fixed or chosen by silhouette), then business names from each segment's average R, F
and M scores (1-5, higher is better), advice per segment, a chart and a CSV of customers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from scipy.optimize import linear_sum_assignment
from sklearn.preprocessing import StandardScaler

from storage.datasets import IS_RETURN, LINE_AMOUNT, Dataset, quote_identifier
from storage.errors import BadParameterError, EmptyDataError, MissingRoleError
from tools import charts
from tools.base import Attachment, BaseTool, Chart, Followup, Params, Report, Table
from tools.cluster import SEED, auto_candidates, choose_k, fit_kmeans, resolve_column, why_k

#: Most customers drawn in the scatter; more only hides points under points.
CHART_POINTS = 4000
#: Most distinct values of a by= column shown as rows of the comparison table.
BY_ROWS = 10

#: Where each named segment sits in (R, F, M) score space, scores 1 (worst) to 5 (best).
PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "Champions": (5.0, 5.0, 5.0),
    "Loyal": (3.5, 4.0, 4.0),
    "Potential loyalists": (4.5, 2.5, 2.5),
    "New": (5.0, 1.0, 2.0),
    "At risk": (2.0, 3.5, 3.5),
    "Can't lose them": (1.5, 4.5, 4.5),
    "Hibernating": (2.5, 1.5, 1.5),
    "Lost": (1.0, 1.0, 1.0),
}
#: How much farther (in score units) than its nearest name a segment's assigned name may be
#: before we keep the nearest name and add a qualifier instead.
NAME_SLACK = 1.0

ADVICE = {
    "Champions": "Your best customers: recent, frequent and big spenders. Reward them with "
    "early access and perks, and ask for reviews and referrals rather than giving discounts.",
    "Loyal": "They buy often and spend well. Offer higher-value items and a loyalty "
    "programme to keep them coming back.",
    "Potential loyalists": "Recent buyers with a few orders. A bundle or membership offer "
    "can turn their next order into a habit.",
    "New": "First orders placed recently. Welcome them and give a reason for a second "
    "order soon, such as a small time-limited incentive.",
    "At risk": "They used to buy often and spend well but have not ordered for a while. "
    "Send personal win-back offers before they drift away.",
    "Can't lose them": "Big spenders who have gone quiet. Reach out personally, ask what "
    "changed and make a strong offer to win them back.",
    "Hibernating": "Few, small orders a long time ago. Remind them with best-sellers or a "
    "seasonal offer, but keep the spend on them low.",
    "Lost": "Lowest recency, frequency and spend. Try one cheap reactivation message, then "
    "leave them out of paid campaigns.",
}

_QUALIFIERS = {
    0: ("more recent", "mid recency", "less recent"),
    1: ("more frequent", "mid frequency", "less frequent"),
    2: ("higher spend", "mid spend", "lower spend"),
}


class SegmentParams(Params):
    """Parameters of `/segment`."""

    k: Annotated[int, Field(ge=2, le=10)] | Literal["auto"] = Field(
        "auto", description="number of segments, 2-10, or auto to choose by silhouette"
    )
    since: date | None = Field(None, description="first order date to include")
    until: date | None = Field(None, description="last order date to include")
    by: str | None = Field(
        None, description="column or role to compare segments across, e.g. country"
    )

    @model_validator(mode="after")
    def _period_in_order(self) -> SegmentParams:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        return self


@dataclass(frozen=True)
class Segmentation:
    """Customers with their RFM values, scores and segment, and how k was chosen."""

    customers: pd.DataFrame
    names: list[str]
    k: int
    silhouettes: dict[int, float]
    #: The last and the first sale of the period: recency counts back from the last.
    reference: pd.Timestamp
    first_sale: pd.Timestamp


class SegmentTool(BaseTool):
    """Customer segments with business names, from RFM values and KMeans."""

    name = "segment"
    summary = "Customer segments (RFM + KMeans) with business names, advice and a CSV"
    help = (
        "Groups customers by how recently, how often and how much they bought, names each "
        "group (Champions, Loyal, At risk, ...) and says what to do with it.\n"
        "Examples: /segment, /segment 5, /segment since=2024-01-01 by=country"
    )
    params_model = SegmentParams
    positional = "k"
    roles = ("customer_id", "timestamp")
    phrases = (
        "segment",
        "segments",
        "customer segments",
        "segment my customers",
        "who are my customers",
        "best customers",
        "rfm",
        "customer groups",
        "客户分群",
        "用户分层",
        "客户细分",
        "客户分层",
        "用户分群",
        "我的客户是谁",
        "RFM分析",
    )

    def run(self, dataset: Dataset, params: Params) -> Report:
        assert isinstance(params, SegmentParams)
        rfm = query_rfm(dataset, since=params.since, until=params.until)
        segmentation = segment_customers(rfm, k=params.k)
        report = build_report(segmentation, params)
        if params.by:
            column = resolve_column(dataset, params.by, parameter="by")
            groups = query_groups(dataset, column, since=params.since, until=params.until)
            report.tables.append(compare_by(segmentation, groups, column))
        return report


# --- query ---------------------------------------------------------------------------------


def query_rfm(
    dataset: Dataset, *, since: date | None = None, until: date | None = None
) -> pd.DataFrame:
    """Recency (days), frequency (orders) and monetary value (spend) per customer, via SQL.

    Returns and cancellations are left out. Recency counts calendar days back from the
    dataset's last sale in the period (guest checkouts included), not from today, so an
    old export is not all "lost". Without an order id, frequency counts purchase days.
    """
    customer = dataset.quoted("customer_id", tool="segment")
    timestamp = dataset.quoted("timestamp", tool="segment")
    _require_amount(dataset)
    if dataset.has("order_id"):
        orders = f"COUNT(DISTINCT {dataset.quoted('order_id')})"
    else:
        orders = f"COUNT(DISTINCT substr({timestamp}, 1, 10))"
    where, bound = period_filter(timestamp, since=since, until=until)
    group = _without_index(dataset, customer)
    sql = (
        f"SELECT {customer} AS customer, MAX({timestamp}) AS last_purchase, "
        f"{orders} AS orders, COALESCE(SUM({quote_identifier(LINE_AMOUNT)}), 0) AS spend "
        f"FROM {{table}} WHERE {quote_identifier(IS_RETURN)} = 0 "
        f"AND {group} IS NOT NULL AND {where} GROUP BY {group}"
    )
    frame = dataset.read_sql(sql, bound)
    if frame.empty:
        raise EmptyDataError(_empty_message(since, until), hint=_date_range_hint(dataset))
    period = dataset.read_sql(
        f"SELECT MIN({timestamp}) AS first, MAX({timestamp}) AS last FROM {{table}} "
        f"WHERE {quote_identifier(IS_RETURN)} = 0 AND {where}",
        bound,
    ).iloc[0]
    rfm = _add_recency(frame, reference=_day(period["last"]))
    rfm.attrs["first_sale"] = _day(period["first"])
    return rfm


def period_filter(
    timestamp: str, *, since: date | None, until: date | None
) -> tuple[str, dict[str, str]]:
    """A WHERE clause on ISO timestamps for an inclusive date period, with bound values."""
    clauses, bound = [f"{timestamp} IS NOT NULL"], {}
    if since is not None:
        clauses.append(f"{timestamp} >= :since")
        bound["since"] = since.isoformat()
    if until is not None:
        # Timestamps are text; everything before the next day's midnight is in the period.
        clauses.append(f"{timestamp} < :until_next")
        bound["until_next"] = (until + timedelta(days=1)).isoformat()
    return " AND ".join(clauses), bound


def query_groups(
    dataset: Dataset, column: str, *, since: date | None = None, until: date | None = None
) -> pd.Series:
    """Each customer's most frequent value of `column` (ties go to the smallest value)."""
    customer = dataset.quoted("customer_id", tool="segment")
    where, bound = period_filter(dataset.quoted("timestamp"), since=since, until=until)
    value = quote_identifier(column)
    group = _without_index(dataset, customer)
    sql = (
        f"SELECT {customer} AS customer, {value} AS value, COUNT(*) AS lines FROM {{table}} "
        f"WHERE {quote_identifier(IS_RETURN)} = 0 AND {group} IS NOT NULL AND {where} "
        f"GROUP BY {group}, {value}"
    )
    pairs = dataset.read_sql(sql, bound)
    pairs["value"] = pairs["value"].fillna("(missing)").astype(str)
    pairs = pairs.sort_values(["customer", "lines", "value"], ascending=[True, False, True])
    return pairs.drop_duplicates("customer").set_index("customer")["value"]


def _without_index(dataset: Dataset, column: str) -> str:
    """The column as a GROUP BY term that SQLite will not answer through its index.

    Every row is read anyway; through the customer index SQLite fetches rows in index order,
    one random lookup each, which took twice as long as a plain scan on 540,000 rows. A
    unary plus hides the index from SQLite's planner; other databases plan this well.
    """
    return f"+{column}" if dataset.engine.dialect.name == "sqlite" else column


def _require_amount(dataset: Dataset) -> None:
    if not (dataset.has("amount") or (dataset.has("quantity") and dataset.has("unit_price"))):
        raise MissingRoleError(
            "amount",
            tool="segment",
            hint="Map one with /map amount=<column>, or map both quantity= and unit_price=.",
        )


def _day(timestamp: object) -> pd.Timestamp:
    return pd.Timestamp(str(timestamp)).normalize()


def _add_recency(frame: pd.DataFrame, *, reference: pd.Timestamp) -> pd.DataFrame:
    """Whole days from each customer's last purchase to the last sale in the period."""
    frame = frame.copy()
    last = pd.to_datetime(frame["last_purchase"], format="ISO8601").dt.normalize()
    frame["last_purchase"] = last
    frame["recency_days"] = (reference - last).dt.days.astype(int)
    frame.attrs["reference"] = reference
    frame["orders"] = frame["orders"].astype(int)
    frame["spend"] = frame["spend"].astype(float).clip(lower=0)
    return frame.sort_values("customer", kind="stable").reset_index(drop=True)


def _empty_message(since: date | None, until: date | None) -> str:
    if since or until:
        period = f"{since or 'the start'} to {until or 'the end'}"
        return f"No customer purchases from {period}."
    return "No customer purchases in this dataset (returns and rows without a customer skipped)."


def _date_range_hint(dataset: Dataset) -> str:
    timestamp = dataset.quoted("timestamp")
    bounds = dataset.read_sql(
        f"SELECT MIN({timestamp}) AS first, MAX({timestamp}) AS last FROM {{table}}"
    )
    first, last = bounds.iloc[0]["first"], bounds.iloc[0]["last"]
    if first is None:
        return "The dataset has no dated rows; check the timestamp mapping with /map."
    return f"Orders in this dataset run from {str(first)[:10]} to {str(last)[:10]}."


# --- compute -------------------------------------------------------------------------------


def segment_customers(rfm: pd.DataFrame, *, k: int | str = "auto") -> Segmentation:
    """Cluster customers on log RFM values and name the clusters."""
    features = rfm_features(rfm)
    distinct = len(np.unique(features, axis=0))
    if k == "auto":
        candidates = auto_candidates(distinct)
        if not candidates:
            raise EmptyDataError(
                f"Only {distinct} different customer profile(s): too few to form segments.",
                hint="Segments need at least 3 customers who differ in recency, orders or spend.",
            )
        chosen, silhouettes = choose_k(features, candidates)
    else:
        chosen, silhouettes = _check_k(int(k), len(rfm), distinct), {}
    labels = fit_kmeans(features, chosen).labels_

    customers = rfm.assign(**rfm_scores(rfm))
    centroid_scores = (
        customers.groupby(labels)[["r_score", "f_score", "m_score"]].mean().to_numpy()
    )
    names = name_segments(centroid_scores)
    customers["segment"] = [names[label] for label in labels]
    reference = rfm.attrs.get("reference", rfm["last_purchase"].max())
    first_sale = rfm.attrs.get("first_sale", rfm["last_purchase"].min())
    return Segmentation(customers, names, chosen, silhouettes, reference, first_sale)


def rfm_features(rfm: pd.DataFrame) -> np.ndarray:
    """Log-transformed, standardised R, F, M: the raw values are heavily right-skewed."""
    raw = np.column_stack([rfm["recency_days"], rfm["orders"], rfm["spend"]]).astype(float)
    return StandardScaler().fit_transform(np.log1p(raw))


def _check_k(k: int, customers: int, distinct: int) -> int:
    if k > customers:
        raise BadParameterError(
            f"k={k} segments need at least {k} customers, and there are {customers}.",
            hint=f"Try /segment {max(2, min(customers, distinct) - 1)} or /segment auto.",
        )
    if k > distinct:
        raise BadParameterError(
            f"k={k} is more than the {distinct} different customer profiles in the data.",
            hint=f"Try /segment {max(2, distinct - 1)} or /segment auto.",
        )
    return k


def rfm_scores(rfm: pd.DataFrame) -> dict[str, pd.Series]:
    """R, F, M scores 1-5 by quintile of rank; recent buyers get a high R score."""

    def score(values: pd.Series) -> pd.Series:
        rank = values.rank(pct=True, method="average")
        return np.ceil(rank * 5).clip(1, 5).astype(int)

    return {
        "r_score": score(-rfm["recency_days"]),
        "f_score": score(rfm["orders"]),
        "m_score": score(rfm["spend"]),
    }


def name_segments(centroid_scores: np.ndarray) -> list[str]:
    """Business names for segments from their mean (R, F, M) scores, one row per segment.

    Each segment gets a distinct name from `PROTOTYPES` by an optimal one-to-one matching
    on distance. A segment whose matched name is much worse than its nearest name keeps
    the nearest one, and segments sharing a name get qualifiers ("Lost (low spend)").
    """
    scores = np.asarray(centroid_scores, dtype=float).reshape(-1, 3)
    prototypes = np.array(list(PROTOTYPES.values()))
    labels = list(PROTOTYPES)
    distance = np.linalg.norm(scores[:, None, :] - prototypes[None, :, :], axis=2)

    nearest = distance.argmin(axis=1)
    chosen = nearest.copy()
    rows, columns = linear_sum_assignment(distance)
    for row, column in zip(rows, columns, strict=True):
        if distance[row, column] - distance[row, nearest[row]] <= NAME_SLACK:
            chosen[row] = column
    names = [labels[index] for index in chosen]
    return _qualify_duplicates(names, scores)


def _qualify_duplicates(names: list[str], scores: np.ndarray) -> list[str]:
    result = list(names)
    for name in dict.fromkeys(names):
        members = [index for index, other in enumerate(names) if other == name]
        if len(members) < 2:
            continue
        # Qualify by the score that differs most between the segments sharing the name.
        spread = scores[members].max(axis=0) - scores[members].min(axis=0)
        dimension = int(spread.argmax())
        order = sorted(members, key=lambda index: (-scores[index, dimension], index))
        for rank, index in enumerate(order):
            result[index] = f"{name} ({_qualifier(dimension, rank, len(order))})"
    return result


def _qualifier(dimension: int, rank: int, count: int) -> str:
    high, middle, low = _QUALIFIERS[dimension]
    if count == 2:
        return (high, low)[rank]
    if count == 3:
        return (high, middle, low)[rank]
    return f"{high} #{rank + 1}"


# --- render --------------------------------------------------------------------------------


def segment_table(segmentation: Segmentation) -> pd.DataFrame:
    """One row per segment: size, share, average R/F/M and share of revenue."""
    customers = segmentation.customers
    revenue = customers["spend"].sum()
    table = customers.groupby("segment").agg(
        customers=("customer", "size"),
        recency=("recency_days", "mean"),
        orders=("orders", "mean"),
        spend=("spend", "mean"),
        revenue=("spend", "sum"),
    )
    table["share %"] = 100 * table["customers"] / len(customers)
    table["revenue %"] = 100 * table["revenue"] / revenue if revenue > 0 else 0.0
    table = table.sort_values(["revenue", "customers"], ascending=False).reset_index()
    table = table.rename(
        columns={
            "recency": "avg recency (days)",
            "orders": "avg orders",
            "spend": "avg spend",
        }
    )
    columns = ["segment", "customers", "share %", "avg recency (days)", "avg orders"]
    table = table[[*columns, "avg spend", "revenue %"]].round(1)
    table["avg recency (days)"] = table["avg recency (days)"].round().astype(int)
    return table


def compare_by(segmentation: Segmentation, groups: pd.Series, column: str) -> Table:
    """Share of each segment among the customers of each value of the `by` column."""
    segments = segmentation.customers.set_index("customer")["segment"]
    joined = pd.DataFrame({"segment": segments, column: groups.reindex(segments.index)})
    joined[column] = joined[column].fillna("(missing)")
    counts = pd.crosstab(joined[column], joined["segment"]).rename_axis(columns=None)
    order = counts.sum(axis=1).sort_values(ascending=False, kind="stable").index
    counts = counts.loc[order]
    if len(counts) > BY_ROWS:
        rest = counts.iloc[BY_ROWS - 1 :].sum().rename("(other)")
        counts = pd.concat([counts.iloc[: BY_ROWS - 1], rest.to_frame().T])
    shares = (100 * counts.div(counts.sum(axis=1), axis=0)).round(1)
    shares.insert(0, "customers", counts.sum(axis=1))
    shares = shares.rename_axis(column).reset_index()
    caption = f"Segments by {column}: % of each {column}'s customers in each segment"
    return Table(shares, caption=caption)


def segment_chart(segmentation: Segmentation, table: pd.DataFrame) -> bytes:
    """Recency vs spend coloured by segment, next to segment sizes in the same colours."""
    customers = segmentation.customers
    if len(customers) > CHART_POINTS:
        customers = customers.sample(CHART_POINTS, random_state=SEED)
    colours = {name: charts.PALETTE[i % 8] for i, name in enumerate(table["segment"])}

    figure = charts.new_figure("Customer segments: recency vs spend, and segment sizes")
    scatter_ax, sizes_ax = figure.subplots(1, 2, width_ratios=[3, 2])
    for name in table["segment"]:
        members = customers[customers["segment"] == name]
        scatter_ax.scatter(
            members["recency_days"],
            members["spend"].clip(lower=1),
            s=12,
            alpha=0.6,
            linewidths=0,
            color=colours[name],
        )
    charts.log_scale(scatter_ax, "y")
    scatter_ax.set_xlabel("days since last order")
    scatter_ax.set_ylabel("total spend")

    sizes_ax.barh(table["segment"].map(charts.shorten), table["customers"])
    for bar, name in zip(sizes_ax.patches, table["segment"], strict=True):
        bar.set_color(colours[name])
    sizes_ax.invert_yaxis()
    sizes_ax.set_xlabel("customers")
    sizes_ax.grid(axis="y", visible=False)
    return charts.to_png(figure)


def customers_csv(segmentation: Segmentation) -> bytes:
    """Every customer with R, F, M values, 1-5 scores and segment, best segments first."""
    columns = ["customer", "segment", "recency_days", "orders", "spend"]
    frame = segmentation.customers[[*columns, "r_score", "f_score", "m_score"]].copy()
    frame["last_purchase"] = segmentation.customers["last_purchase"].dt.date
    frame["spend"] = frame["spend"].round(2)
    frame = frame.sort_values(["segment", "spend"], ascending=[True, False], kind="stable")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def build_report(segmentation: Segmentation, params: SegmentParams) -> Report:
    """The reply: summary and advice, segment table, chart, CSV, facts and follow-ups."""
    table = segment_table(segmentation)
    customers = segmentation.customers
    revenue = float(customers["spend"].sum())
    text = "\n".join([_summary(segmentation, params), "", *_advice(table)])
    facts: dict[str, float | int | str] = {
        "k": segmentation.k,
        "customers": len(customers),
        "revenue": round(revenue, 2),
        "reference_date": segmentation.reference.date().isoformat(),
        "largest_segment": str(table.sort_values("customers", ascending=False).iloc[0, 0]),
    }
    if segmentation.silhouettes:
        facts["silhouette"] = round(segmentation.silhouettes[segmentation.k], 3)
    return Report(
        title="Customer segments",
        text=text,
        tables=[Table(table, caption="Segments, by share of revenue")],
        charts=[Chart(segment_chart(segmentation, table), caption="Segments at a glance")],
        files=[
            Attachment(
                "customer_segments.csv",
                customers_csv(segmentation),
                caption="Every customer with R, F, M and segment",
            )
        ],
        facts=facts,
        followups=_followups(segmentation),
    )


def _summary(segmentation: Segmentation, params: SegmentParams) -> str:
    customers = segmentation.customers
    start = params.since or segmentation.first_sale.date()
    reference = segmentation.reference.date()
    lines = [
        f"{len(customers):,} customers in {segmentation.k} segments, from orders "
        f"{start} to {reference}; recency is counted back from {reference}.",
    ]
    if segmentation.silhouettes:
        lines.append(why_k(segmentation.k, segmentation.silhouettes, groups="segments"))
    return " ".join(lines)


def _advice(table: pd.DataFrame) -> list[str]:
    lines = []
    for name in table["segment"]:
        base = name.split(" (")[0]
        lines.append(f"{name}: {ADVICE[base]}")
    return lines


def _followups(segmentation: Segmentation) -> list[Followup]:
    options = [k for k in (segmentation.k - 1, segmentation.k + 1) if 2 <= k <= 10]
    followups = [Followup(f"{k} segments", f"/segment {k}") for k in options]
    if segmentation.silhouettes == {}:
        followups.append(Followup("Best k", "/segment auto"))
    return followups
