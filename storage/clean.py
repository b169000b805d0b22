"""Value cleaning for ingestion: column types, numbers, money and dates, vectorised.

Every column arrives as text. `infer_type` looks at a sample and decides how the column is
stored; `clean_column` turns one chunk of text into stored values. The expensive parsing
runs once per distinct value (a date or a price repeats on thousands of lines), and the
result is spread back with Arrow's `take`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

INTEGER, REAL, TIMESTAMP, TEXT, BOOLEAN = "integer", "real", "timestamp", "text", "boolean"
ISO_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Share of a sample's values that must parse for a column to get a numeric or date type.
TYPE_THRESHOLD = 0.98
#: Longer digit strings are identifiers (order numbers), not quantities: kept as text.
MAX_INTEGER_DIGITS = 15
SAMPLE_UNIQUES = 5_000

_INTEGER_RE = re.compile(r"^[+-]?(0|[1-9]\d{0,14})$")
# Currency marks and codes, spaces (also non-breaking and thin) and apostrophes (1'299.00).
_CURRENCY_RE = re.compile(
    r"[$€£¥￥₹₽₩฿₫₺₴\s\u00a0\u202f']|\b(USD|EUR|GBP|CNY|RMB|JPY|HKD|AUD|CAD|CHF)\b|元|円|\bkr\b",
    re.IGNORECASE,
)
_COMMA_DECIMAL_RE = re.compile(r"^-?\d{1,3}(\.\d{3})+(,\d+)?$|^-?\d+,\d{1,2}$")
_DOT_DECIMAL_RE = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$|^-?\d*\.\d+$")
_TZ_SUFFIX_RE = r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})$"
_TRUE = {"true", "yes", "y", "t"}
_FALSE = {"false", "no", "n", "f"}

# Formats tried on a date column; the one that reads most of the sample wins. Day-first and
# month-first variants tie on dates up to the 12th; `_pick_date_format` breaks the tie.
DATE_FORMATS = (
    "ISO8601",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y",
    "%m/%d/%y %H:%M",
    "%m/%d/%y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y",
    "%d/%m/%y %H:%M",
    "%d/%m/%y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
    "%Y年%m月%d日%H:%M",
    "%d %b %Y %H:%M",
    "%d %b %Y",
    "%b %d, %Y",
    "%d-%b-%Y",
)


@dataclass(frozen=True)
class ColumnType:
    """How one column is stored, and how its text is read."""

    type: str
    #: For dates: the format from DATE_FORMATS, or "epoch_s" / "epoch_ms".
    date_format: str = ""
    #: For money: "1.299,00" style (comma as the decimal mark).
    decimal_comma: bool = False


@dataclass
class Cleaned:
    """One chunk of one column, ready to store, and how many values could not be read."""

    values: pa.Array
    unreadable: int


def normalise_text(values: pa.Array) -> pa.Array:
    """Trim whitespace; empty strings become missing values."""
    trimmed = pc.utf8_trim_whitespace(values)
    empty = pc.equal(trimmed, "")
    if not pc.any(empty).as_py():  # the CSV reader already made empty fields missing
        return trimmed
    return pc.if_else(empty, pa.scalar(None, pa.string()), trimmed)


# Type inference -------------------------------------------------------------------------


def infer_type(values: pa.Array, *, time_header: bool = False) -> ColumnType:
    """Decide a column's stored type from a sample of its (normalised) text.

    A type is chosen when at least TYPE_THRESHOLD of the sample's filled rows read as it;
    the rest are counted as unreadable when the column is loaded.
    """
    present = values.drop_null()
    if len(present) == 0:
        return ColumnType(TEXT)
    counted = pc.value_counts(present)
    sample = counted.field("values").to_pylist()[:SAMPLE_UNIQUES]
    weights = np.asarray(counted.field("counts").to_pylist()[:SAMPLE_UNIQUES], dtype=float)
    weights /= weights.sum()

    integers = np.array([bool(_INTEGER_RE.match(value)) for value in sample])
    if weights[integers].sum() >= TYPE_THRESHOLD:
        return _integer_or_epoch(
            [v for v, ok in zip(sample, integers, strict=True) if ok], time_header=time_header
        )
    lowered = {value.lower() for value in sample}
    if lowered <= _TRUE | _FALSE and lowered & _TRUE and lowered & _FALSE:
        return ColumnType(BOOLEAN)
    date_format = pick_date_format(present.slice(0, 20_000).to_pylist())
    if date_format:
        return ColumnType(TIMESTAMP, date_format=date_format)
    decimal_comma = _uses_decimal_comma(sample)
    numbers = parse_money(sample, decimal_comma=decimal_comma)
    if weights[~np.isnan(numbers)].sum() >= TYPE_THRESHOLD:
        return ColumnType(REAL, decimal_comma=decimal_comma)
    return ColumnType(TEXT)


def _integer_or_epoch(sample: list[str], *, time_header: bool) -> ColumnType:
    numbers = np.array([int(value) for value in sample], dtype=np.int64)
    # Unix times only where the header says time: order numbers can fall in the same range.
    if time_header and numbers.min() >= 10**8 and numbers.max() < 4 * 10**9:
        return ColumnType(TIMESTAMP, date_format="epoch_s")
    if time_header and numbers.min() >= 10**11 and numbers.max() < 4 * 10**12:
        return ColumnType(TIMESTAMP, date_format="epoch_ms")
    if time_header and numbers.min() >= 19_000_101 and numbers.max() <= 21_001_231:
        return ColumnType(TIMESTAMP, date_format="%Y%m%d")
    return ColumnType(INTEGER)


# Dates ----------------------------------------------------------------------------------


def pick_date_format(sample: list[str]) -> str:
    """The date format that reads at least TYPE_THRESHOLD of the sample, or ""."""
    if not sample or not any(char.isdigit() for char in sample[0]):
        return ""
    counts = pd.Series(sample).value_counts()
    distinct = counts.index[:SAMPLE_UNIQUES].tolist()
    weights = counts.to_numpy()[:SAMPLE_UNIQUES] / counts.to_numpy()[:SAMPLE_UNIQUES].sum()
    rates = {
        fmt: float(weights[parse_dates(distinct, fmt).notna().to_numpy()].sum())
        for fmt in DATE_FORMATS
    }
    best = max(rates.values())
    if best < TYPE_THRESHOLD:
        return ""
    winners = [fmt for fmt, rate in rates.items() if rate == best]
    return _break_day_month_tie(winners, sample)


def _break_day_month_tie(winners: list[str], sample: list[str]) -> str:
    """Between month-first and day-first, keep the reading whose dates move most smoothly.

    Exports list lines roughly in time order; read the wrong way round, dates up to the
    12th jump back and forth by months. With nothing to tell them apart, month-first wins.
    """
    month_first = [fmt for fmt in winners if fmt.startswith("%m")]
    day_first = [fmt for fmt in winners if fmt.startswith("%d")]
    if not (month_first and day_first):
        return winners[0]
    ordered = sample[:5_000]
    jumps = {}
    for fmt in (month_first[0], day_first[0]):
        stamps = parse_dates(ordered, fmt).dropna().astype("int64").to_numpy()
        jumps[fmt] = float(np.abs(np.diff(stamps)).sum()) if len(stamps) > 1 else 0.0
    if jumps[day_first[0]] < jumps[month_first[0]]:
        return day_first[0]
    return month_first[0]


def parse_dates(values: list[str] | pd.Series, fmt: str) -> pd.Series:
    """Parse text with one format; values that do not fit become NaT."""
    series = pd.Series(values, dtype=object)
    if fmt in {"epoch_s", "epoch_ms"}:
        numbers = pd.to_numeric(series, errors="coerce")
        return pd.to_datetime(numbers, unit="s" if fmt == "epoch_s" else "ms", errors="coerce")
    if fmt == "ISO8601":
        # Keep the shop's wall-clock time: a trailing offset or Z is dropped, not converted.
        series = series.str.replace(_TZ_SUFFIX_RE, "", regex=True)
    return pd.to_datetime(series, format=fmt, errors="coerce")


def _format_iso(stamps: pd.Series) -> pa.Array:
    seconds = pa.array(
        stamps.to_numpy(dtype="datetime64[s]"), type=pa.timestamp("s"), from_pandas=True
    )
    return pc.strftime(seconds, format=ISO_FORMAT)


# Numbers and money ----------------------------------------------------------------------


def _uses_decimal_comma(sample: list[str]) -> bool:
    stripped = [_CURRENCY_RE.sub("", value) for value in sample]
    comma = sum(1 for value in stripped if _COMMA_DECIMAL_RE.match(value))
    dot = sum(1 for value in stripped if _DOT_DECIMAL_RE.match(value))
    return comma > dot


def parse_money(values: list[str | None], *, decimal_comma: bool) -> np.ndarray:
    """Read numbers such as `¥1,299.00`, `$1,299.00`, `1.299,00 €`, `(12.50)`; NaN if not."""
    out = np.full(len(values), np.nan)
    for position, value in enumerate(values):
        if value is not None:
            out[position] = _money_value(value, decimal_comma)
    return out


def _money_value(value: str, decimal_comma: bool) -> float:
    text = _CURRENCY_RE.sub("", value.replace("\u2212", "-"))
    negative = (text.startswith("(") and text.endswith(")")) or text.endswith("-")
    text = text.strip("()").rstrip("-")
    # With a decimal comma, dots group thousands; otherwise commas do.
    grouping, mark = (".", ",") if decimal_comma else (",", ".")
    text = text.replace(grouping, "").replace(mark, ".")
    try:
        number = float(text)
    except ValueError:
        return float("nan")
    return -abs(number) if negative else number


# Cleaning a chunk -----------------------------------------------------------------------


def clean_column(values: pa.Array, column_type: ColumnType) -> Cleaned:
    """Turn one chunk of normalised text into an Arrow array of values to store.

    Text stays text, integers and booleans become int64, reals float64 (missing and
    unreadable values are nulls), timestamps ISO text.
    """
    if column_type.type == TEXT:
        return Cleaned(values, 0)
    if column_type.type == REAL:
        numbers = _real(values, column_type.decimal_comma)
        return Cleaned(pa.array(numbers, from_pandas=True), _unreadable(values, numbers))
    if column_type.type == INTEGER:
        return _integers(values)
    if column_type.type == BOOLEAN:
        lowered = pc.utf8_lower(values)
        flags = pc.if_else(pc.is_in(lowered, pa.array(sorted(_TRUE))), 1, 0)
        flags = pc.if_else(pc.is_null(values), pa.scalar(None, pa.int64()), flags)
        return Cleaned(pc.cast(flags, pa.int64()), 0)
    return _timestamps(values, column_type.date_format)


def real_values(values: pa.Array, column_type: ColumnType) -> np.ndarray:
    """A numeric column's chunk as float64 (NaN where missing), for derived columns."""
    if column_type.type == INTEGER:
        return pc.cast(_integers_array(values), pa.float64()).to_numpy(zero_copy_only=False)
    return _real(values, column_type.decimal_comma)


def _real(values: pa.Array, decimal_comma: bool) -> np.ndarray:
    if not decimal_comma:
        try:
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            pass  # money strings or stray text: parse each distinct value below
    return _per_distinct(values, lambda text: parse_money(text, decimal_comma=decimal_comma))


def _integers_array(values: pa.Array) -> pa.Array:
    try:
        return pc.cast(values, pa.int64())
    except pa.ArrowInvalid:
        numbers = _per_distinct(values, lambda text: parse_money(text, decimal_comma=False))
        whole = np.where(np.isnan(numbers) | (numbers != np.round(numbers)), np.nan, numbers)
        return pc.cast(pa.array(whole, from_pandas=True), pa.int64())


def _integers(values: pa.Array) -> Cleaned:
    numbers = _integers_array(values)
    return Cleaned(numbers, numbers.null_count - values.null_count)


def _timestamps(values: pa.Array, date_format: str) -> Cleaned:
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pylist()
    stamps = parse_dates(distinct, date_format)
    missing = stamps.isna().to_numpy()
    if missing.any() and date_format not in {"epoch_s", "epoch_ms"}:
        stamps[missing] = _parse_with_any_format(
            [value for value, bad in zip(distinct, missing, strict=True) if bad], date_format
        ).to_numpy()
    text = pc.take(_format_iso(stamps), encoded.indices)
    return Cleaned(text, text.null_count - values.null_count)


def _parse_with_any_format(values: list[str], preferred: str) -> pd.Series:
    """Second chance for dates the column's format missed, keeping its day/month order."""
    result = pd.Series(pd.NaT, index=range(len(values)), dtype="datetime64[us]")
    day_first = preferred.startswith("%d")
    for fmt in DATE_FORMATS:
        if (fmt.startswith("%d") and not day_first) or (fmt.startswith("%m") and day_first):
            continue
        todo = result.isna().to_numpy()
        if not todo.any():
            break
        parsed = parse_dates([v for v, t in zip(values, todo, strict=True) if t], fmt)
        result[todo] = parsed.to_numpy()
    return result


def _per_distinct(values: pa.Array, parse: Callable[[list], np.ndarray]) -> np.ndarray:
    """Apply a Python parser once per distinct value and spread the results back."""
    encoded = pc.dictionary_encode(values)
    parsed = pa.array(parse(encoded.dictionary.to_pylist()), type=pa.float64())
    taken = pc.take(parsed, encoded.indices)
    return taken.to_numpy(zero_copy_only=False)


def _unreadable(values: pa.Array, numbers: np.ndarray) -> int:
    return int(np.isnan(numbers).sum()) - values.null_count


def id_text(values: pa.Array) -> pa.Array:
    """Identifiers as text; `17850.0` (a spreadsheet's float id) becomes `17850`."""
    # A plain substring search is many times faster than the regex, and most chunks have
    # no such value at all.
    if not pc.any(pc.match_substring(values, ".0")).as_py():
        return values
    return pc.replace_substring_regex(values, pattern=r"^(\d+)\.0+$", replacement=r"\1")


#: Currency marks as they appear in shop exports, and the symbol shown for each.
CURRENCY_MARKS = {
    "¥": "¥", "￥": "¥", "元": "¥", "RMB": "¥", "CNY": "¥", "JPY": "¥",
    "€": "€", "EUR": "€", "£": "£", "GBP": "£", "₹": "₹", "INR": "₹",
    "₩": "₩", "KRW": "₩", "₽": "₽", "RUB": "₽", "$": "$", "USD": "$",
}  # fmt: skip


def detect_currency(values: pa.Array) -> str:
    """The currency symbol that most values of a money column carry, or "" if none does."""
    texts = [text for text in values.drop_null().slice(0, 2000).to_pylist() if text]
    counts: dict[str, int] = {}
    for text in texts:
        upper = text.upper()
        symbol = next((sign for mark, sign in CURRENCY_MARKS.items() if mark in upper), None)
        if symbol is not None:
            counts[symbol] = counts.get(symbol, 0) + 1
    if not counts:
        return ""
    symbol, count = max(counts.items(), key=lambda item: item[1])
    return symbol if count * 2 >= len(texts) else ""
