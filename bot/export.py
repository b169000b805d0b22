"""Tables as files: CSV (UTF-8 with BOM, so Excel shows Chinese names) and XLSX workbooks."""

from __future__ import annotations

import io
import re

import pandas as pd

from tools.base import Attachment, Report, Table

_UNSAFE = re.compile(r"[^\w.-]+", re.UNICODE)
# Characters Excel forbids in sheet names.
_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\]")
# A cell starting with one of these is run as a formula by spreadsheet apps.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def table_csv(table: Table) -> bytes:
    """One table as CSV bytes."""
    return _safe_frame(table.frame).to_csv(index=False).encode("utf-8-sig")


def report_files(report: Report, tool: str, *, fmt: str = "csv") -> list[Attachment]:
    """Every table of a report as files: one CSV per table, or one XLSX with a sheet each."""
    if fmt == "xlsx":
        return [Attachment(f"{safe_filename(tool)}.xlsx", report_xlsx(report), report.title)]
    files = []
    for number, table in enumerate(report.tables, start=1):
        suffix = f"-{number}" if len(report.tables) > 1 else ""
        name = f"{safe_filename(tool)}{suffix}.csv"
        files.append(Attachment(name, table_csv(table), table.caption or report.title))
    return files


def report_xlsx(report: Report) -> bytes:
    """A workbook with one sheet per table, named after the table captions."""
    buffer = io.BytesIO()
    used: set[str] = set()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for number, table in enumerate(report.tables, start=1):
            sheet = _sheet_name(table.caption or f"Table {number}", used)
            _safe_frame(table.frame).to_excel(writer, sheet_name=sheet, index=False)
    return buffer.getvalue()


def safe_filename(name: str) -> str:
    """A file name made of word characters, dots and dashes only."""
    return _UNSAFE.sub("-", name).strip("-.") or "result"


def _safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a named index as a column and formula-like text cells defused."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name:
        frame = frame.reset_index()
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(_defuse)
    return frame


def _defuse(value: object) -> object:
    # Product names come from uploads; a name like "=HYPERLINK(...)" must stay text.
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sheet_name(caption: str, used: set[str]) -> str:
    base = _SHEET_UNSAFE.sub(" ", caption).strip()[:31] or "Sheet"
    name, number = base, 2
    while name.lower() in used:
        tail = f" ({number})"
        name, number = base[: 31 - len(tail)] + tail, number + 1
    used.add(name.lower())
    return name
