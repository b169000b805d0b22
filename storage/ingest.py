"""Loading an upload into the store: read, detect roles, clean, and write in one transaction.

    ingest_path(engine, path, chat_id=..., settings=...) -> IngestSummary

The steps: check the file and its size (`reader`), look at the first chunk to type the
columns (`clean`) and find their roles (`roles`), then stream every chunk through cleaning
into the dataset table (`writer`). Exact duplicate lines are counted and dropped; returns
are kept and marked. The summary says what was stored, in lines the chat and the CLI show.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from storage import bulk, reader
from storage.clean import (
    BOOLEAN,
    REAL,
    TEXT,
    ColumnType,
    clean_column,
    detect_currency,
    id_text,
    infer_type,
    normalise_text,
    real_values,
)
from storage.datasets import (
    IS_RETURN,
    LINE_AMOUNT,
    ROLES,
    Dataset,
    get_dataset_by_id,
    quote_identifier,
)
from storage.errors import BadFileError, BadParameterError, FileTooLargeError
from storage.roles import (
    MEASURES,
    TEXT_ROLES,
    ColumnProfile,
    Detection,
    apply_overrides,
    detect,
    is_time_header,
)
from storage.settings import Settings
from storage.writer import TableWriter, Target, finish, reserve, transaction

log = logging.getLogger(__name__)

ORDER_KINDS = ("orders", "baskets")
#: An order id like `C536379` marks a cancellation (the UCI export's convention).
CANCELLED_ORDER = "^C[0-9]"
_ROLE_WORDS = {role: role.replace("_", " ") for role in ROLES}


def parse_role_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """Read `role=Column` pairs; `role=` (empty) clears a role. Unknown roles are refused."""
    overrides: dict[str, str | None] = {}
    for pair in pairs:
        role, sep, column = pair.partition("=")
        role = role.strip().lower().replace("-", "_").replace(" ", "_")
        if not sep or not role:
            raise BadParameterError(
                f"I could not read '{pair}' as ROLE=COLUMN.",
                hint="Write it like product=Description.",
            )
        if role not in ROLES:
            raise BadParameterError(
                f"'{role}' is not a column role.", hint="Roles: " + ", ".join(ROLES)
            )
        overrides[role] = column.strip() or None
    return overrides


@dataclass
class IngestSummary:
    """What an upload stored, for the chat answer and the CLI."""

    dataset: Dataset
    rows_read: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    returns: int = 0
    orders: int | None = None
    customers: int | None = None
    products: int | None = None
    first_date: str | None = None
    last_date: str | None = None
    revenue: float | None = None
    currency: str = ""
    replaced: bool = False
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as plain text lines."""
        info = self.dataset.info
        verb = "Replaced" if self.replaced else "Stored"
        lines = [
            f"{verb} '{info.name}' ({info.kind}): {self.rows_kept:,} rows kept "
            f"of {self.rows_read:,} read."
        ]
        dropped = [f"{count:,} {reason}" for reason, count in self.dropped.items() if count]
        lines.append("Dropped: " + (", ".join(dropped) if dropped else "nothing") + ".")
        if self.returns:
            lines.append(
                f"Returns and cancellations: {self.returns:,} lines, kept and marked, "
                "left out of baskets and revenue."
            )
        lines.extend(self._figures())
        lines.append("Columns:")
        by_column = {column: role for role, column in info.roles.items()}
        for column, stored in info.columns.items():
            if column.startswith("_"):
                continue
            role = _ROLE_WORDS.get(by_column.get(column, ""), "no role")
            lines.append(f"  {column}: {role} ({stored})")
        if self.unreadable:
            parts = [f"{column} {count:,}" for column, count in self.unreadable.items()]
            lines.append("Unreadable values, stored empty: " + ", ".join(parts) + ".")
        return lines

    def _figures(self) -> list[str]:
        counts = [
            f"{label}: {value:,}"
            for label, value in (
                ("Orders", self.orders),
                ("customers", self.customers),
                ("products", self.products),
            )
            if value is not None
        ]
        lines = [", ".join(counts)] if counts else []
        if self.first_date and self.last_date:
            lines.append(f"Dates: {self.first_date} to {self.last_date}")
        if self.revenue is not None:
            lines.append(f"Revenue: {self.currency}{self.revenue:,.2f}")
        return lines


@dataclass
class _Plan:
    """How each column is stored, the roles, the kind, and the derived columns."""

    names: list[str]
    types: dict[str, ColumnType]
    detection: Detection
    #: The currency symbol the money columns carry ("¥", "$", ...), or "".
    currency: str = ""

    @property
    def roles(self) -> dict[str, str]:
        return self.detection.roles

    @property
    def derived(self) -> bool:
        return self.detection.kind in ORDER_KINDS

    def stored_columns(self) -> dict[str, str]:
        columns = {name: self.types[name].type for name in self.names}
        if self.derived:
            columns[LINE_AMOUNT] = REAL
            columns[IS_RETURN] = BOOLEAN
        return columns


def ingest_path(
    engine: Engine,
    path: str | Path,
    *,
    chat_id: int,
    name: str | None = None,
    overrides: dict[str, str | None] | None = None,
    settings: Settings,
) -> IngestSummary:
    """Store an uploaded file as a dataset of this chat, whole or not at all."""
    started = time.perf_counter()
    path = Path(path)
    source = reader.open_source(path, max_bytes=settings.max_upload_bytes)
    dataset_name = _dataset_name(name, path)
    with ExitStack() as stack:
        batches = _open_batches(source, stack, max_rows=settings.max_rows)
        first = next(batches, None)
        if first is None:
            raise BadFileError(f"{path.name} has a header but no rows of data.")
        # An SQLite file is written by the ADBC child (Arrow columns as they are); any other
        # database through SQLAlchemy. Both run the same statements in one transaction. The
        # child starts now, so that it is ready by the time the first chunk is planned.
        begin = bulk.transaction if bulk.supported(engine) else transaction
        with begin(engine) as connection:
            plan = _plan(first, overrides or {})
            loader = _Loader(plan, max_rows=settings.max_rows, name=path.name)
            target = reserve(connection, chat_id=chat_id, name=dataset_name, source_file=path.name)
            summary_values = loader.load(connection, target, _chain(first, batches))
            finish(connection, target, chat_id=chat_id, values=summary_values)
    summary = loader.summary(get_dataset_by_id(engine, target.dataset_id), target)
    summary.seconds = time.perf_counter() - started
    log.info(
        "ingest chat=%s dataset=%s rows=%s kind=%s took=%.1fs ok",
        chat_id,
        target.dataset_id,
        summary.rows_kept,
        plan.detection.kind,
        summary.seconds,
    )
    return summary


def _dataset_name(name: str | None, path: Path) -> str:
    if name and name.strip():
        return name.strip()[:100]
    stem = path.name
    for suffix in (".gz", ".zip", ".xlsx", ".csv", ".tsv", ".txt"):
        stem = stem.removesuffix(suffix).removesuffix(suffix.upper())
    return re.sub(r"\s+", " ", stem).strip()[:100] or "data"


def _open_batches(
    source: reader.Source, stack: ExitStack, *, max_rows: int
) -> Iterator[pa.RecordBatch]:
    if source.kind == "xlsx":
        header, chunks = reader.xlsx_rows(source, max_rows=max_rows)
        return reader.xlsx_batches(header, chunks)
    text_format = reader.sniff_text(source)
    return stack.enter_context(reader.text_chunks(source, text_format))


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


# Planning from the first chunk ---------------------------------------------------------


def detect_columns(
    header: list[str], rows: list[list[str | None]], overrides: dict[str, str | None] | None = None
) -> Detection:
    """Roles and kind for a header and some rows of text, as an upload would get them."""
    names = reader.column_names(header)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [pa.array(list(column), type=pa.string()) for column in columns]
    return _plan(pa.RecordBatch.from_arrays(arrays, names=names), overrides or {}).detection


def _plan(first: pa.RecordBatch, overrides: dict[str, str | None]) -> _Plan:
    names = list(first.schema.names)
    columns = {name: normalise_text(first.column(name)) for name in names}
    types = {
        name: infer_type(values, time_header=is_time_header(name))
        for name, values in columns.items()
    }
    profiles = [_profile(name, columns[name], types[name]) for name in names]
    detection = detect(profiles)
    if overrides:
        detection = apply_overrides(detection, profiles, overrides)
    for role, column in detection.roles.items():
        # Identifiers and labels stay text: `C536379` may follow a page of plain numbers.
        if role in TEXT_ROLES:
            types[column] = ColumnType(TEXT)
    money = [detection.roles[role] for role in ("amount", "unit_price") if role in detection.roles]
    currency = next(filter(None, (detect_currency(columns[column]) for column in money)), "")
    return _Plan(names, types, detection, currency)


def _profile(name: str, values: pa.Array, column_type: ColumnType) -> ColumnProfile:
    present = values.drop_null()
    distinct = pc.unique(present)
    binary = len(present) > 0 and set(distinct.to_pylist()) <= {"0", "1"}
    return ColumnProfile(
        name=name,
        type=column_type.type,
        filled=len(present) / max(len(values), 1),
        distinct=len(distinct),
        binary=binary,
        examples=tuple(distinct.slice(0, 20).to_pylist()),
    )


# Loading -------------------------------------------------------------------------------


class _Loader:
    """Streams chunks through cleaning into the table, counting what it keeps and drops."""

    def __init__(self, plan: _Plan, *, max_rows: int, name: str) -> None:
        self.plan = plan
        self.max_rows = max_rows
        self.name = name
        self.rows_read = 0
        self.dropped = {"exact duplicates": 0, "empty rows": 0}
        self.unreadable: dict[str, int] = {}
        self.figures: dict[str, Any] = {}
        self.rows_kept = 0
        self._dedupe = _Deduplicator()
        self._tally = _Tally()

    def load(
        self,
        connection: Connection | bulk.BulkConnection,
        target: Target,
        batches: Iterator[pa.RecordBatch],
    ) -> dict[str, Any]:
        columns = self.plan.stored_columns()
        writer = TableWriter(connection, target.table_name, columns)
        writer.create()
        for batch in batches:
            self._count_rows(batch.num_rows)
            writer.insert(self._stored(batch, list(columns)))
        if writer.rows == 0:
            raise BadFileError(f"{self.name} has no rows left to store after cleaning.")
        writer.index(self.plan.roles)
        self.figures = self._tally.figures(self.plan, writer.rows)
        self.rows_kept = writer.rows
        return {
            "kind": self.plan.detection.kind,
            "row_count": writer.rows,
            "roles": self.plan.roles,
            "columns": columns,
            "stats": self._stats(),
        }

    def _count_rows(self, count: int) -> None:
        self.rows_read += count
        if self.rows_read > self.max_rows:
            raise FileTooLargeError(
                f"{self.name} has more than {self.max_rows:,} rows, the limit.",
                hint="Split the file, or raise MARKETBOT_MAX_ROWS in the bot's settings.",
            )

    def _stored(self, batch: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
        """One chunk as the table stores it: kept rows, cleaned columns, derived columns."""
        arrays = [normalise_text(batch.column(name)) for name in self.plan.names]
        keep = self._keep(arrays)
        if keep is not None:
            arrays = [array.filter(keep) for array in arrays]
        by_name = dict(zip(self.plan.names, arrays, strict=True))
        values = [self._clean(name, by_name[name]) for name in self.plan.names]
        if self.plan.derived:
            amount, is_return = _derived(by_name, self.plan)
            values += [pa.array(amount, from_pandas=True), pa.array(is_return)]
            self._tally.add(values, self.plan, amount, is_return)
        return pa.RecordBatch.from_arrays(values, names=names)

    def _keep(self, arrays: list[pa.Array]) -> pa.Array | None:
        empty = np.logical_and.reduce(
            [array.is_null().to_numpy(zero_copy_only=False) for array in arrays]
        )
        duplicate = self._dedupe.seen_before(arrays)
        self.dropped["empty rows"] += int(empty.sum())
        self.dropped["exact duplicates"] += int((duplicate & ~empty).sum())
        drop = empty | duplicate
        return pa.array(~drop) if drop.any() else None

    def _clean(self, name: str, values: pa.Array) -> pa.Array:
        column_type = self.plan.types[name]
        if column_type.type == TEXT and name in self.plan.roles.values():
            values = id_text(values)
        cleaned = clean_column(values, column_type)
        if cleaned.unreadable:
            self.unreadable[name] = self.unreadable.get(name, 0) + cleaned.unreadable
        return cleaned.values

    def _stats(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "dropped": self.dropped,
            "unreadable": self.unreadable,
            "currency": self.plan.currency,
            **self.figures,
        }

    def summary(self, dataset: Dataset, target: Target) -> IngestSummary:
        return IngestSummary(
            dataset=dataset,
            rows_read=self.rows_read,
            rows_kept=self.rows_kept,
            dropped=self.dropped,
            unreadable=self.unreadable,
            replaced=target.replaces is not None,
            currency=self.plan.currency,
            **self.figures,
        )


def _derived(by_name: dict[str, pa.Array], plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """`_line_amount` (amount, or quantity x unit price) and `_is_return` for one chunk."""
    roles, types = plan.roles, plan.types
    length = len(next(iter(by_name.values())))

    def numbers(role: str) -> np.ndarray | None:
        if role not in roles:
            return None
        return real_values(by_name[roles[role]], types[roles[role]])

    quantity, price, amount = numbers("quantity"), numbers("unit_price"), numbers("amount")
    if amount is not None:
        line_amount = amount
    elif price is not None:
        # No quantity column means one unit per line (Olist's order items).
        line_amount = price * (quantity if quantity is not None else 1.0)
    else:
        line_amount = np.full(length, np.nan)

    is_return = np.zeros(length, dtype=bool)
    for measure in (quantity, amount):
        if measure is not None:
            is_return |= np.nan_to_num(measure) < 0
    if "order_id" in roles:
        cancelled = pc.match_substring_regex(by_name[roles["order_id"]], CANCELLED_ORDER)
        is_return |= pc.fill_null(cancelled, False).to_numpy(zero_copy_only=False)
    return line_amount, is_return.astype(np.int64)


class _Tally:
    """Orders, customers, products, dates, revenue and returns, counted while loading."""

    def __init__(self) -> None:
        self.distinct: dict[str, set] = {"order_id": set(), "customer_id": set(), "product": set()}
        self.dates: list[str] = []
        self.revenue = 0.0
        self.returns = 0

    def add(
        self, values: list[pa.Array], plan: _Plan, amount: np.ndarray, is_return: np.ndarray
    ) -> None:
        kept = ~is_return.astype(bool)
        keep = pa.array(kept)
        self.returns += int(is_return.sum())
        self.revenue += float(np.nansum(amount[kept]))
        position = {name: index for index, name in enumerate(plan.names)}
        for role, seen in self.distinct.items():
            if role in plan.roles:
                column = values[position[plan.roles[role]]].filter(keep)
                seen.update(pc.unique(column.drop_null()).to_pylist())
        if "timestamp" in plan.roles:
            column = pc.cast(values[position[plan.roles["timestamp"]]], pa.string())
            bounds = pc.min_max(column.filter(keep))
            self.dates += [d for d in (bounds["min"].as_py(), bounds["max"].as_py()) if d]

    def figures(self, plan: _Plan, rows: int) -> dict[str, Any]:
        roles = plan.roles
        if plan.detection.kind == "onehot":
            return {
                "orders": rows,
                "products": sum(1 for n in plan.names if n not in roles.values()),
            }
        if not plan.derived:
            return {}
        figures: dict[str, Any] = {
            {"order_id": "orders", "customer_id": "customers", "product": "products"}[role]: len(
                seen
            )
            for role, seen in self.distinct.items()
            if role in roles
        }
        figures["returns"] = self.returns
        if self.dates:
            figures["first_date"], figures["last_date"] = (
                min(self.dates)[:10],
                max(self.dates)[:10],
            )
        if any(measure in roles for measure in MEASURES):
            figures["revenue"] = round(self.revenue, 2)
        return figures


class _Deduplicator:
    """Remembers a 64-bit hash of every row kept so far, to drop exact repeats.

    Memory stays at 8 bytes a row; two different rows share a hash with a chance of about
    one in 10^8 per million rows.
    """

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.uint64)

    def seen_before(self, arrays: list[pa.Array]) -> np.ndarray:
        hashes = _row_hashes(arrays)
        repeated = pd.Series(hashes).duplicated().to_numpy()
        if len(self._seen):
            position = np.searchsorted(self._seen, hashes).clip(max=len(self._seen) - 1)
            repeated = repeated | (self._seen[position] == hashes)
        fresh = np.sort(hashes[~repeated])  # unique already: repeats within the chunk are out
        self._seen = np.sort(np.concatenate([self._seen, fresh]), kind="stable")
        return repeated


def _row_hashes(arrays: list[pa.Array]) -> np.ndarray:
    combined = np.zeros(len(arrays[0]), dtype=np.uint64)
    for array in arrays:
        encoded = pc.dictionary_encode(array)
        words = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        per_value = np.append(pd.util.hash_array(words), np.uint64(0x9E3779B97F4A7C15))
        index = pc.fill_null(encoded.indices, len(words)).to_numpy(zero_copy_only=False)
        combined = combined * np.uint64(1_099_511_628_211) ^ per_value[index]
    return combined


def dataset_figures(
    connection: Connection, table_name: str, detection: Detection, rows: int, *, items: int = 0
) -> dict[str, Any]:
    """Orders, customers, products, dates and revenue, counted by the database."""
    q = quote_identifier
    kind, roles = detection.kind, detection.roles
    table = q(table_name)
    if kind == "onehot":
        return {"orders": rows, "products": items}
    if kind not in ORDER_KINDS:
        return {}
    where = f"WHERE {q(IS_RETURN)} = 0"
    parts = {
        "orders": f"COUNT(DISTINCT {q(roles['order_id'])})" if "order_id" in roles else None,
        "customers": (
            f"COUNT(DISTINCT {q(roles['customer_id'])})" if "customer_id" in roles else None
        ),
        "products": f"COUNT(DISTINCT {q(roles['product'])})" if "product" in roles else None,
        "first_date": f"MIN({q(roles['timestamp'])})" if "timestamp" in roles else None,
        "last_date": f"MAX({q(roles['timestamp'])})" if "timestamp" in roles else None,
        "revenue": f"SUM({q(LINE_AMOUNT)})" if any(m in roles for m in MEASURES) else None,
        "returns": f"(SELECT COUNT(*) FROM {table} WHERE {q(IS_RETURN)} = 1)",
    }
    wanted = {key: sql for key, sql in parts.items() if sql}
    select_sql = ", ".join(wanted.values())
    row = connection.exec_driver_sql(f"SELECT {select_sql} FROM {table} {where}").one()
    figures: dict[str, Any] = dict(zip(wanted, row, strict=True))
    for key in ("first_date", "last_date"):
        if figures.get(key):
            figures[key] = str(figures[key])[:10]
    if figures.get("revenue") is not None:
        figures["revenue"] = round(float(figures["revenue"]), 2)
    return figures
