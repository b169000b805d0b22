"""Baskets for market-basket analysis, read from a stored dataset.

A basket is one order (`basket=order`) or everything one customer bought on one day
(`basket=customer_day`); its items are products (the product role, else the product code)
or categories (`level=category`). Return and cancellation lines are left out. A one-hot
dataset (one row per basket, one 0/1 column per item) is read as it is.

Counting is pushed down to SQL: the item counts come from one GROUP BY, and only
(basket, item) pairs of items that can be frequent are read, in chunks, into a sparse
matrix. The matrix size is known from those counts before anything is read, so the memory
budget is checked first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sqlalchemy import text

from storage.datasets import IS_RETURN, LINE_AMOUNT, Dataset, quote_identifier
from storage.errors import EmptyDataError, MemoryBudgetError

BasketUnit = Literal["order", "customer_day"]
ItemLevel = Literal["product", "category"]

#: Rows fetched from the database at a time.
CHUNK_ROWS = 200_000
#: Bytes a (basket, item) pair costs while read: two int32 ids, then a CSR entry.
BYTES_PER_PAIR = 16
#: Bytes one chunk of text rows costs in pandas (two Python strings a row, generously).
BYTES_PER_TEXT_ROW = 240
#: Bytes of one dense chunk of a one-hot table while it is read.
ONEHOT_CHUNK_BYTES = 64 * 1024 * 1024
#: Values meaning "in the basket" in a one-hot table (1 also matches 1.0 and True);
#: a column with any other value is not an item column.
_TRUE = {1, "1", "true", "True", "TRUE", "yes", "y"}
_FALSE = {0, "0", "false", "False", "FALSE", "no", "n", "", None}


@dataclass(frozen=True)
class Baskets:
    """Baskets as a sparse basket x item matrix, with every item's basket count.

    Attributes:
        matrix: one row per basket that has a kept item, one boolean column per kept item.
        items: name of each matrix column.
        item_counts: baskets containing each item, for every item (kept or not), by name.
        n_baskets: all baskets, including those with no kept item: the support denominator.
        multi_item: baskets with at least two different items (kept or not).
        unit: what one basket is, in words ("order", "customer and day", "customer", "row").
    """

    matrix: sp.csr_matrix
    items: list[str]
    item_counts: pd.Series
    n_baskets: int
    multi_item: int
    unit: str


def load_baskets(
    dataset: Dataset,
    *,
    basket: BasketUnit = "order",
    level: ItemLevel = "product",
    min_count: int | Callable[[int], int] = 1,
    memory_budget_mb: float = 1024,
) -> Baskets:
    """Read baskets, keeping only items found in at least `min_count` baskets.

    `min_count` may be a function of the number of baskets (known only once counted),
    such as the count a minimum support means.
    """
    min_count_of = _as_function(min_count)
    budget = int(memory_budget_mb * 1024 * 1024)
    if dataset.info.kind == "onehot":
        return _OneHotReader(dataset, budget).read(min_count_of)
    return _LineReader(dataset, basket, level, budget).read(min_count_of)


def _as_function(min_count: int | Callable[[int], int]) -> Callable[[int], int]:
    if callable(min_count):
        return min_count

    def fixed(_n_baskets: int) -> int:
        return min_count

    return fixed


class _LineReader:
    """Baskets from order lines (or basket id + item rows) with SQL aggregation."""

    def __init__(self, dataset: Dataset, basket: BasketUnit, level: ItemLevel, budget: int):
        self.dataset = dataset
        self.budget = budget
        self.unit = _unit(dataset, basket)
        self.basket_sql = _basket_expression(dataset, self.unit)
        self.item_sql = _item_expression(dataset, level)
        conditions = [f"{self.basket_sql} IS NOT NULL", f"{self.item_sql} IS NOT NULL"]
        if IS_RETURN in dataset.info.columns:
            conditions.append(f"{quote_identifier(IS_RETURN)} = 0")
        self.where = " AND ".join(conditions)

    def read(self, min_count_of: Callable[[int], int]) -> Baskets:
        # Count first: item counts decide which pairs are worth reading at all.
        counts = self._item_counts()
        if counts.empty:
            raise EmptyDataError(
                "There are no baskets: every line is a return or lacks a basket or item.",
                hint="Check the column roles with /describe.",
            )
        n_baskets, multi_item = self._basket_counts()
        min_count = min_count_of(n_baskets)
        kept = counts[counts >= min_count]
        self._check_budget(int(kept.sum()))

        # Then read the (basket, item) pairs of kept items, chunk by chunk.
        items = list(kept.index)
        matrix = self._pairs(items, min_count)
        return Baskets(matrix, items, counts, n_baskets, multi_item, self.unit)

    def _item_counts(self) -> pd.Series:
        frame = self.dataset.read_sql(
            f"SELECT {self.item_sql} AS item, COUNT(DISTINCT {self.basket_sql}) AS baskets "
            f"FROM {{table}} WHERE {self.where} GROUP BY {self.item_sql}"
        )
        counts = pd.Series(frame["baskets"].to_numpy(), index=frame["item"].astype(str))
        # Different raw values can print the same (1 and "1"); merge them.
        return counts.groupby(level=0).sum().sort_values(ascending=False, kind="stable")

    def _basket_counts(self) -> tuple[int, int]:
        """All baskets, and those with at least two different items."""
        frame = self.dataset.read_sql(
            f"SELECT COUNT(*) AS baskets, "
            f"COALESCE(SUM(CASE WHEN items >= 2 THEN 1 ELSE 0 END), 0) AS multi FROM ("
            f"SELECT COUNT(DISTINCT {self.item_sql}) AS items FROM {{table}} "
            f"WHERE {self.where} GROUP BY {self.basket_sql}) AS per_basket"
        )
        return int(frame["baskets"].iloc[0]), int(frame["multi"].iloc[0])

    def _pairs(self, items: list[str], min_count: int) -> sp.csr_matrix:
        sql = (
            f"SELECT {self.basket_sql} AS basket, {self.item_sql} AS item FROM {{table}} "
            f"WHERE {self.where} AND {self.item_sql} IN ("
            f"SELECT {self.item_sql} FROM {{table}} WHERE {self.where} "
            f"GROUP BY {self.item_sql} HAVING COUNT(DISTINCT {self.basket_sql}) >= :min_count) "
            f"ORDER BY 1"
        )
        rows: list[np.ndarray] = []
        columns: list[np.ndarray] = []
        next_row, last_basket = 0, None
        for chunk in _read_chunks(self.dataset, sql, {"min_count": min_count}):
            codes = pd.Categorical(chunk["item"].astype(str), categories=items).codes
            baskets = chunk["basket"].astype(str).to_numpy()
            local, uniques = pd.factorize(baskets, sort=False)
            # Rows arrive ordered by basket; one basket may straddle two chunks.
            offset = next_row - 1 if uniques[0] == last_basket else next_row
            rows.append((local + offset).astype(np.int32))
            columns.append(codes.astype(np.int32))
            next_row, last_basket = offset + len(uniques), uniques[-1]
        return _matrix(rows, columns, next_row, len(items))

    def _check_budget(self, pairs: int) -> None:
        needed = pairs * BYTES_PER_PAIR + CHUNK_ROWS * BYTES_PER_TEXT_ROW
        if needed > self.budget:
            raise MemoryBudgetError(
                f"The basket matrix would need about {needed / 2**20:,.0f} MB, over the "
                f"{self.budget / 2**20:,.0f} MB budget.",
                hint="Raise min_support, so that fewer items are kept.",
            )


def _unit(dataset: Dataset, basket: BasketUnit) -> str:
    """What one basket is. Without order ids, a customer's day (or all a customer bought)."""
    if basket == "order" and not dataset.has("order_id"):
        if dataset.has("customer_id") and dataset.has("timestamp"):
            return "customer and day"
        if dataset.has("customer_id"):
            return "customer"
        dataset.require("order_id", tool="rules")
    return "order" if basket == "order" else "customer and day"


def _basket_expression(dataset: Dataset, unit: str) -> str:
    if unit == "order":
        return dataset.quoted("order_id", tool="rules")
    customer = f"CAST({dataset.quoted('customer_id', tool='rules')} AS TEXT)"
    if unit == "customer":
        return customer
    day = f"substr(CAST({dataset.quoted('timestamp', tool='rules')} AS TEXT), 1, 10)"
    return f"({customer} || '|' || {day})"


def _item_expression(dataset: Dataset, level: ItemLevel) -> str:
    if level == "category":
        return dataset.quoted("category", tool="rules")
    if dataset.has("product"):
        return dataset.quoted("product")
    return dataset.quoted("product_code", tool="rules")


def _read_chunks(
    dataset: Dataset,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    statement = text(sql.replace("{table}", quote_identifier(dataset.table_name)))
    with dataset.engine.connect() as connection:
        yield from pd.read_sql_query(statement, connection, params=params or {}, chunksize=rows)


def _matrix(
    rows: list[np.ndarray], columns: list[np.ndarray], n_rows: int, n_columns: int
) -> sp.csr_matrix:
    row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int32)
    column = np.concatenate(columns) if columns else np.empty(0, dtype=np.int32)
    data = np.ones(len(row), dtype=bool)
    matrix = sp.csr_matrix((data, (row, column)), shape=(n_rows, n_columns))
    # A line repeated within one order is still one item in the basket.
    matrix.sum_duplicates()
    matrix.data[:] = True
    return matrix


class _OneHotReader:
    """Baskets from a one-hot table: each row a basket, each 0/1 column an item."""

    def __init__(self, dataset: Dataset, budget: int) -> None:
        self.dataset = dataset
        self.budget = budget
        skipped = {*dataset.roles.values(), IS_RETURN, LINE_AMOUNT}
        self.candidates = [name for name in dataset.info.columns if name not in skipped]

    def read(self, min_count_of: Callable[[int], int]) -> Baskets:
        if not self.candidates:
            raise EmptyDataError("This table has no item columns.")
        self._check_budget()
        blocks, flags = self._blocks()
        if not blocks:
            raise EmptyDataError("There are no baskets: the table has no rows.")

        matrix = sp.vstack(blocks, format="csr")
        keep = np.flatnonzero(flags)
        if len(keep) == 0:
            raise EmptyDataError(
                "No column holds only 0/1 values, so there are no items.",
                hint="A one-hot table has one row per basket and one 0/1 column per item.",
            )
        names = [self.candidates[index] for index in keep]
        counts = np.asarray(matrix[:, keep].sum(axis=0)).ravel()
        item_counts = pd.Series(counts, index=names).sort_values(ascending=False, kind="stable")
        min_count = min_count_of(matrix.shape[0])
        chosen = [index for index, count in zip(keep, counts, strict=True) if count >= min_count]
        columns = [self.candidates[index] for index in chosen]
        items_per_row = np.diff(matrix[:, keep].tocsr().indptr)
        multi_item = int((items_per_row >= 2).sum())
        kept = matrix[:, chosen].tocsr()
        return Baskets(kept, columns, item_counts, matrix.shape[0], multi_item, "row")

    def _blocks(self) -> tuple[list[sp.csr_matrix], np.ndarray]:
        """Chunks of the table as sparse blocks, and which columns held only 0/1."""
        names = ", ".join(quote_identifier(name) for name in self.candidates)
        binary = np.ones(len(self.candidates), dtype=bool)
        blocks = []
        sql = f"SELECT {names} FROM {{table}}"
        for chunk in _read_chunks(self.dataset, sql, rows=self._chunk_rows()):
            present = chunk.isin(list(_TRUE)).to_numpy()
            absent = chunk.isin(list(_FALSE)).to_numpy() | chunk.isna().to_numpy()
            binary &= (present | absent).all(axis=0)
            blocks.append(sp.csr_matrix(present))
        return blocks, binary

    def _chunk_rows(self) -> int:
        # A chunk is read densely: ~8 bytes a cell as values plus boolean copies.
        return max(1, min(CHUNK_ROWS, ONEHOT_CHUNK_BYTES // (24 * len(self.candidates))))

    def _check_budget(self) -> None:
        # The blocks kept are sparse; the one dense chunk and the index dominate.
        rows = self.dataset.info.row_count
        needed = ONEHOT_CHUNK_BYTES + rows * len(self.candidates) // 8 + rows * 64
        if needed > self.budget:
            raise MemoryBudgetError(
                f"Reading this one-hot table would need about {needed / 2**20:,.0f} MB, over "
                f"the {self.budget / 2**20:,.0f} MB budget.",
                hint="Upload it as one line per basket and item instead.",
            )
