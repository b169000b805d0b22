"""`/describe`: what is in the active dataset, for any kind of dataset.

Order data gets its business overview (orders, customers, products, dates, revenue by month,
top products, returns, gaps per role); every dataset also gets a profile of its columns.
Each figure is an aggregate computed in SQL; no rows are loaded into Python.
"""

from __future__ import annotations

import pandas as pd

from storage.datasets import IS_RETURN, LINE_AMOUNT, ROLES, Dataset, quote_identifier
from storage.errors import EmptyDataError
from tools import charts
from tools.base import BaseTool, Chart, Followup, Params, Report, Table

#: Top products listed.
TOP_PRODUCTS = 10
#: Columns profiled one by one; wider tables (one-hot baskets) are summarised instead.
PROFILE_COLUMNS = 30
#: Rows read to tell numeric columns from text ones.
PROBE_ROWS = 2000


class DescribeParams(Params):
    """`/describe` takes no parameters."""


class DescribeTool(BaseTool):
    """An overview of the active dataset: size, dates, revenue, products, gaps."""

    name = "describe"
    summary = "What is in your data: rows, orders, customers, dates, revenue, top products"
    help = (
        "Describes the active dataset: how many rows, orders, customers and products, the "
        "date range, revenue by month, top products, returns and missing values.\n"
        "Example: /describe"
    )
    params_model = DescribeParams
    phrases = (
        "describe",
        "describe my data",
        "what is in my data",
        "overview",
        "dataset summary",
        "data overview",
        "数据概况",
        "数据概览",
        "描述数据",
        "我的数据里有什么",
    )

    def run(self, dataset: Dataset, params: Params) -> Report:
        columns = _columns(dataset)
        total = _count_rows(dataset)
        if total == 0:
            raise EmptyDataError(f"The dataset '{dataset.info.name}' has no rows.")
        report = Report(title=f"About '{dataset.info.name}'")
        lines = [f"Kind: {dataset.info.kind}. {total:,} rows, {len(columns)} columns."]
        lines += add_order_overview(report, dataset, total)
        add_column_profile(report, dataset, columns, total)
        report.text = "\n".join(lines)
        report.facts.setdefault("rows", total)
        report.followups = _followups(dataset)
        return report


def _columns(dataset: Dataset) -> list[str]:
    probe = dataset.read_sql("SELECT * FROM {table} LIMIT 0")
    return [column for column in probe.columns if not column.startswith("_")]


def _count_rows(dataset: Dataset) -> int:
    return int(dataset.read_sql("SELECT COUNT(*) AS n FROM {table}").iloc[0, 0])


# --- order data ------------------------------------------------------------------------------


def add_order_overview(report: Report, dataset: Dataset, total: int) -> list[str]:
    """Counts, dates, revenue, returns, monthly chart and top products, where roles allow."""
    counts = count_entities(dataset)
    lines = []
    if counts:
        returns_note = " (returns left out)" if _has_return_flag(dataset) else ""
        lines.append(
            ", ".join(f"{value:,} {name}" for name, value in counts.items()) + returns_note
        )
    report.facts.update(counts)
    if dataset.has("timestamp"):
        lines.append(_date_range(dataset, report))
    has_amounts = _has_amounts(dataset)
    if has_amounts:
        lines += _revenue_and_returns(dataset, report, total)
    if dataset.has("timestamp"):
        _add_monthly_chart(report, dataset, revenue=has_amounts)
    if dataset.has("product") or dataset.has("product_code"):
        report.tables.append(top_products(dataset, revenue=has_amounts))
    if dataset.roles:
        report.tables.append(missing_by_role(dataset, total))
    return lines


def count_entities(dataset: Dataset) -> dict[str, int]:
    """Distinct orders, customers and products, in one SQL query."""
    wanted = {"orders": "order_id", "customers": "customer_id", "products": "product"}
    if not dataset.has("product"):
        wanted["products"] = "product_code"
    parts = [
        f"COUNT(DISTINCT {dataset.quoted(role)}) AS {name}"
        for name, role in wanted.items()
        if dataset.has(role)
    ]
    if not parts:
        return {}
    # Return invoices are not orders: count what the upload answer and /segment count.
    where = f" WHERE {quote_identifier(IS_RETURN)} = 0" if _has_return_flag(dataset) else ""
    row = dataset.read_sql(f"SELECT {', '.join(parts)} FROM {{table}}{where}").iloc[0]
    return {name: int(row[name]) for name in row.index}


def _has_return_flag(dataset: Dataset) -> bool:
    return dataset.info.kind in {"orders", "baskets"}


def _date_range(dataset: Dataset, report: Report) -> str:
    timestamp = dataset.quoted("timestamp")
    row = dataset.read_sql(
        f"SELECT MIN({timestamp}) AS first, MAX({timestamp}) AS last FROM {{table}}"
    ).iloc[0]
    if row["first"] is None:
        return "No dates: the timestamp column is empty."
    first, last = str(row["first"])[:10], str(row["last"])[:10]
    report.facts.update(first_date=first, last_date=last)
    days = (pd.Timestamp(last) - pd.Timestamp(first)).days + 1
    return f"Dates: {first} to {last} ({days:,} days)."


def _has_amounts(dataset: Dataset) -> bool:
    if dataset.info.kind not in {"orders", "baskets"}:
        return False
    return dataset.has("amount") or (dataset.has("quantity") and dataset.has("unit_price"))


def _revenue_and_returns(dataset: Dataset, report: Report, total: int) -> list[str]:
    amount, is_return = quote_identifier(LINE_AMOUNT), quote_identifier(IS_RETURN)
    row = dataset.read_sql(
        f"SELECT SUM(CASE WHEN {is_return} = 0 THEN {amount} END) AS revenue, "
        f"SUM(CASE WHEN {is_return} = 1 THEN -{amount} END) AS returned, "
        f"SUM({is_return}) AS return_lines FROM {{table}}"
    ).iloc[0]
    revenue = float(row["revenue"] or 0)
    returned = abs(float(row["returned"] or 0))
    return_lines = int(row["return_lines"] or 0)
    report.facts.update(
        revenue=round(revenue, 2),
        return_lines=return_lines,
        return_line_share=round(return_lines / total, 4),
    )
    money = dataset.currency
    lines = [f"Revenue (returns left out): {money}{revenue:,.2f}."]
    if not return_lines:
        return [*lines, "No returns or cancellations."]
    share = f"{100 * returned / revenue:.1f}% of revenue" if revenue > 0 else "no sales"
    return [
        *lines,
        f"Returns and cancellations: {return_lines:,} lines "
        f"({100 * return_lines / total:.1f}% of lines), worth {money}{returned:,.2f} ({share}).",
    ]


def monthly(dataset: Dataset, *, revenue: bool) -> pd.DataFrame:
    """Revenue (or lines, without amounts) per calendar month, returns left out."""
    timestamp = dataset.quoted("timestamp")
    measure = f"SUM({quote_identifier(LINE_AMOUNT)})" if revenue else "COUNT(*)"
    where = f"{timestamp} IS NOT NULL"
    if dataset.info.kind in {"orders", "baskets"}:
        where += f" AND {quote_identifier(IS_RETURN)} = 0"
    return dataset.read_sql(
        f"SELECT substr({timestamp}, 1, 7) AS month, {measure} AS value FROM {{table}} "
        f"WHERE {where} GROUP BY substr({timestamp}, 1, 7) ORDER BY month"
    )


def _add_monthly_chart(report: Report, dataset: Dataset, *, revenue: bool) -> None:
    months = monthly(dataset, revenue=revenue)
    if months.empty:
        return
    what = "Revenue" if revenue else "Lines"
    png = charts.bar_chart(
        months["month"].tolist(),
        months["value"].fillna(0).tolist(),
        title=f"{what} by month",
        ylabel=what.lower(),
    )
    report.charts.append(Chart(png, caption=f"{what} by month, returns left out"))


def top_products(dataset: Dataset, *, revenue: bool) -> Table:
    """The best-selling products by revenue (or by lines, without amounts)."""
    product = dataset.quoted("product" if dataset.has("product") else "product_code")
    amount = quote_identifier(LINE_AMOUNT)
    measures = ["COUNT(*) AS lines"]
    if revenue:
        measures.append(f"SUM({amount}) AS revenue")
    where = f"{product} IS NOT NULL"
    if dataset.info.kind in {"orders", "baskets"}:
        where += f" AND {quote_identifier(IS_RETURN)} = 0"
    order = "revenue" if revenue else "lines"
    frame = dataset.read_sql(
        f"SELECT {product} AS product, {', '.join(measures)} FROM {{table}} WHERE {where} "
        f"GROUP BY {product} ORDER BY {order} DESC, product LIMIT :top",
        {"top": TOP_PRODUCTS},
    )
    if revenue:
        frame["revenue"] = frame["revenue"].round(2)
    return Table(frame, caption=f"Top {len(frame)} products by {order}")


def missing_by_role(dataset: Dataset, total: int) -> Table:
    """For each mapped role: its column and how many rows leave it empty."""
    mapped = [role for role in ROLES if dataset.has(role)]
    parts = [f"COUNT({dataset.quoted(role)}) AS {quote_identifier(role)}" for role in mapped]
    filled = dataset.read_sql(f"SELECT {', '.join(parts)} FROM {{table}}").iloc[0]
    frame = pd.DataFrame(
        {
            "role": mapped,
            "column": [dataset.roles[role] for role in mapped],
            "missing": [total - int(filled[role]) for role in mapped],
        }
    )
    frame["missing %"] = (100 * frame["missing"] / total).round(1)
    return Table(frame, caption="Missing values per role")


# --- any data ------------------------------------------------------------------------------


def add_column_profile(report: Report, dataset: Dataset, columns: list[str], total: int) -> None:
    """Per column: type, missing and distinct values, and numeric range; or a wide summary."""
    probe = dataset.read_sql(f"SELECT * FROM {{table}} LIMIT {PROBE_ROWS}")
    numeric = [column for column in columns if pd.api.types.is_numeric_dtype(probe[column])]
    if _looks_one_hot(probe, columns):
        report.tables.append(item_counts(dataset, columns))
        return
    shown = columns[:PROFILE_COLUMNS]
    report.tables.append(column_profile(dataset, shown, set(numeric), total))
    if len(columns) > len(shown):
        report.text += f"\nThe first {len(shown)} of {len(columns)} columns are profiled."


def _looks_one_hot(probe: pd.DataFrame, columns: list[str]) -> bool:
    """Many columns holding only 0/1 (or true/false): one column per item, one row per basket."""
    if len(columns) < 3:
        return False
    flags = [
        column
        for column in columns
        if probe[column].dropna().isin([0, 1, True, False]).all() and probe[column].notna().any()
    ]
    return len(flags) >= 0.8 * len(columns)


def item_counts(dataset: Dataset, columns: list[str]) -> Table:
    """For one-hot baskets: how many rows contain each item, most common first."""
    parts = [f"SUM(CASE WHEN {quote_identifier(c)} THEN 1 ELSE 0 END)" for c in columns]
    row = dataset.read_sql(
        "SELECT "
        + ", ".join(f"{part} AS c{index}" for index, part in enumerate(parts))
        + " FROM {table}"
    ).iloc[0]
    frame = pd.DataFrame({"item": columns, "baskets": [int(value or 0) for value in row]})
    frame = frame.sort_values(["baskets", "item"], ascending=[False, True]).head(TOP_PRODUCTS)
    return Table(
        frame.reset_index(drop=True),
        caption=f"One row per basket, one column per item ({len(columns)} items): most common",
    )


def column_profile(dataset: Dataset, columns: list[str], numeric: set[str], total: int) -> Table:
    """Type, missing and distinct counts for each column, with min/mean/max for numbers."""
    parts = []
    for index, column in enumerate(columns):
        quoted = quote_identifier(column)
        parts += [f"COUNT({quoted}) AS n{index}", f"COUNT(DISTINCT {quoted}) AS d{index}"]
        if column in numeric:
            parts += [f"MIN({quoted}) AS lo{index}", f"AVG({quoted}) AS av{index}"]
            parts.append(f"MAX({quoted}) AS hi{index}")
    row = dataset.read_sql(f"SELECT {', '.join(parts)} FROM {{table}}").iloc[0]
    records = []
    for index, column in enumerate(columns):
        record = {
            "column": column,
            "type": "number" if column in numeric else "text",
            "missing": total - int(row[f"n{index}"]),
            "distinct": int(row[f"d{index}"]),
        }
        if column in numeric:
            record |= {
                "min": row[f"lo{index}"],
                "mean": round(float(row[f"av{index}"] or 0), 2),
                "max": row[f"hi{index}"],
            }
        records.append(record)
    return Table(pd.DataFrame(records), caption="Columns")


def _followups(dataset: Dataset) -> list[Followup]:
    followups = []
    if dataset.has("customer_id") and dataset.has("timestamp"):
        followups.append(Followup("Customer segments", "/segment"))
    if dataset.has("order_id") and (dataset.has("product") or dataset.has("product_code")):
        followups.append(Followup("Bought together", "/rules"))
    if not dataset.roles:
        followups.append(Followup("Clusters", "/cluster"))
    return followups
