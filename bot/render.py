"""Turn replies into what a channel can show: Telegram HTML messages, or terminal text.

Telegram side: every string that may come from a user or an upload is HTML-escaped; tables
become monospace `<pre>` blocks about 40 characters wide (a phone held upright), and a table
that had to be cut also goes out whole as a CSV document; messages are split under 4,096
characters without breaking a tag, captions kept under 1,024, several charts sent as one album.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import numbers
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bot.export import safe_filename, table_csv
from bot.reply import Button, Reply
from tools.base import Attachment, Report, Table

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ALBUM_LIMIT = 10
PHONE_WIDTH = 40
PHONE_ROWS = 15
#: A table too wide for a phone with at most this many rows is sent as one card a row.
CARD_ROWS = 10
MIN_TEXT_WIDTH = 8
TERMINAL_ROWS = 30

_MONEY_WORDS = (
    "revenue", "amount", "sales", "spend", "spent", "monetary", "price", "value", "aov",
    "total", "金额", "销售额", "收入", "单价", "价格", "实付",
)  # fmt: skip
_PERCENT_WORDS = (
    "support", "confidence", "share", "pct", "percent", "rate", "%", "占比", "比例",
    "支持度", "置信度",
)  # fmt: skip


@dataclass
class TextMessage:
    html: str
    buttons: list[Button] = field(default_factory=list)


@dataclass
class PhotoMessage:
    png: bytes
    caption: str = ""


@dataclass
class AlbumMessage:
    photos: list[PhotoMessage]


@dataclass
class DocumentMessage:
    filename: str
    data: bytes
    caption: str = ""


Message = TextMessage | PhotoMessage | AlbumMessage | DocumentMessage


# Numbers and cells -----------------------------------------------------------------------


def format_value(value: object, *, column: str = "", currency: str = "") -> str:
    """Format one cell for people: separators, currency and percentages by column name."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return format_date(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, numbers.Integral):
        return _money(float(value), currency) if _is_money(column) else f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return format_number(float(value), column=column, currency=currency)
    return str(value)


def format_number(value: float, *, column: str = "", currency: str = "") -> str:
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if "%" in column:
        # Tools name a column "share %" when its values are already percentages.
        return f"{value:.1f}%"
    if _is_percent(column) and abs(value) <= 1:
        return f"{value * 100:.1f}%"
    if _is_money(column):
        return _money(value, currency)
    if value.is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        # 16.3 rather than 16.30: trailing zeros only add width on a phone.
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def format_date(value: pd.Timestamp | dt.datetime) -> str:
    if (value.hour, value.minute, value.second) == (0, 0, 0):
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M")


def _money(value: float, currency: str) -> str:
    sign = "-" if value < 0 else ""
    # Big sums lose their cents: they cost width on a phone and nobody reads them.
    digits = f"{abs(value):,.0f}" if abs(value) >= 10_000 else f"{abs(value):,.2f}"
    return f"{sign}{currency}{digits}"


def _is_money(column: str) -> bool:
    name = column.lower()
    return any(word in name for word in _MONEY_WORDS)


def _is_percent(column: str) -> bool:
    name = column.lower()
    return any(word in name for word in _PERCENT_WORDS)


def display_width(text: str) -> int:
    """Columns the text takes in a monospace font: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def clip(text: str, width: int) -> str:
    """Cut text to a display width, marking the cut with an ellipsis."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += display_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


# Tables ----------------------------------------------------------------------------------


@dataclass
class FittedTable:
    """A table laid out as monospace text, and whether anything was left out."""

    text: str
    hidden_rows: int = 0
    hidden_columns: int = 0
    clipped: bool = False

    @property
    def complete(self) -> bool:
        return not (self.hidden_rows or self.hidden_columns or self.clipped)

    def note(self) -> str:
        parts = []
        if self.hidden_rows:
            parts.append(f"{self.hidden_rows:,} more rows")
        if self.hidden_columns:
            parts.append(f"{self.hidden_columns} more columns")
        if not parts:
            return "Some names are shortened; the file has them in full." if self.clipped else ""
        return " and ".join(parts) + " in the file."


def fit_table(
    frame: pd.DataFrame, *, width: int = PHONE_WIDTH, rows: int = PHONE_ROWS, currency: str = ""
) -> FittedTable:
    """Lay a frame out in at most `width` columns and `rows` rows."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name:
        frame = frame.reset_index()
    shown = frame.head(rows)
    columns = [str(column) for column in frame.columns]
    cells = [
        [format_value(value, column=name, currency=currency) for value in shown[column]]
        for name, column in zip(columns, frame.columns, strict=True)
    ]
    numeric = [pd.api.types.is_numeric_dtype(frame[column]) for column in frame.columns]
    widths = [
        max([display_width(name)] + [display_width(cell) for cell in column_cells])
        for name, column_cells in zip(columns, cells, strict=True)
    ]

    clipped = _shrink_text_columns(widths, numeric, width)
    keep = _columns_that_fit(widths, width)
    lines = [_line(columns[:keep], widths, numeric)]
    lines.append(" ".join("-" * widths[index] for index in range(keep)))
    for row in range(len(shown)):
        lines.append(_line([cells[column][row] for column in range(keep)], widths, numeric))
    return FittedTable(
        text="\n".join(line.rstrip() for line in lines),
        hidden_rows=len(frame) - len(shown),
        hidden_columns=len(columns) - keep,
        clipped=clipped,
    )


def _shrink_text_columns(widths: list[int], numeric: list[bool], limit: int) -> bool:
    """Narrow the widest text columns (names, not numbers) until the row fits; True if cut."""
    clipped = False
    while _total(widths) > limit:
        text_columns = [i for i, is_number in enumerate(numeric) if not is_number]
        widest = max(text_columns, key=lambda i: widths[i], default=None)
        if widest is None or widths[widest] <= MIN_TEXT_WIDTH:
            break
        widths[widest] = max(MIN_TEXT_WIDTH, widths[widest] - (_total(widths) - limit))
        clipped = True
    return clipped


def _columns_that_fit(widths: list[int], limit: int) -> int:
    keep = len(widths)
    while keep > 1 and _total(widths[:keep]) > limit:
        keep -= 1
    return keep


def _total(widths: list[int]) -> int:
    return sum(widths) + max(0, len(widths) - 1)


def _line(values: list[str], widths: list[int], numeric: list[bool]) -> str:
    parts = []
    for index, value in enumerate(values):
        value = clip(value, widths[index])
        pad = " " * (widths[index] - display_width(value))
        parts.append(pad + value if numeric[index] else value + pad)
    return " ".join(parts)


# Telegram HTML ---------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape text for Telegram HTML (quotes too, as values may land in attributes)."""
    return html.escape(text, quote=True)


def render_telegram(reply: Reply) -> list[Message]:
    """Turn a reply into Telegram messages: texts, then charts, then documents."""
    blocks, documents = _reply_blocks(reply, reply.tool)
    messages: list[Message] = [TextMessage(part) for part in pack_blocks(blocks)]
    report = reply.report
    if report is not None:
        messages.extend(_chart_messages(report))
        documents = [_document(file) for file in report.files] + documents
    documents.extend(_document(file) for file in reply.files)

    texts = [message for message in messages if isinstance(message, TextMessage)]
    if texts:
        texts[-1].buttons = list(reply.buttons)
    elif reply.buttons:
        messages.append(TextMessage("Next:", list(reply.buttons)))
    return messages + documents


def _reply_blocks(reply: Reply, tool: str) -> tuple[list[str], list[DocumentMessage]]:
    blocks: list[str] = []
    documents: list[DocumentMessage] = []
    if reply.text:
        blocks.append(("⚠️ " if reply.error else "") + escape(reply.text))
    if reply.hint:
        blocks.append(f"<i>{escape(reply.hint)}</i>")
    if reply.report is not None:
        report_blocks, documents = _report_blocks(reply.report, tool)
        blocks.extend(report_blocks)
    return [block for block in blocks if block.strip()], documents


def _report_blocks(report: Report, tool: str) -> tuple[list[str], list[DocumentMessage]]:
    blocks = [f"<b>{escape(report.title)}</b>"]
    if report.text:
        blocks.append(escape(report.text))
    currency = str(report.facts.get("currency", ""))
    documents = []
    for number, table in enumerate(report.tables, start=1):
        fitted = fit_table(table.frame, currency=currency)
        block = f"<i>{escape(table.caption)}</i>\n" if table.caption else ""
        cut = fitted.hidden_columns or fitted.clipped
        if cut and not fitted.hidden_rows and len(table.frame) <= CARD_ROWS:
            # Too wide for a phone but short: one card a row shows every value in full.
            blocks.append(block + table_cards(table.frame, currency=currency))
            continue
        block += f"<pre>{escape(fitted.text)}</pre>"
        if not fitted.complete:
            block += f"\n<i>{escape(fitted.note())}</i>"
            documents.append(_table_document(table, tool or report.title, number))
        blocks.append(block)
    return blocks, documents


def table_cards(frame: pd.DataFrame, *, currency: str = "") -> str:
    """A table as HTML cards: the first column in bold, then the row's other values."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name:
        frame = frame.reset_index()
    columns = [str(column) for column in frame.columns]
    head, *rest = columns
    # A rank column makes a poor title on its own: "1. Bread -> Butter" reads better.
    ranked = head == "#" and bool(rest)
    cards = []
    for row in frame.itertuples(index=False):
        values = dict(zip(columns, row, strict=True))
        title = format_value(values[head], column=head, currency=currency)
        if ranked:
            title += ". " + format_value(values[rest[0]], column=rest[0], currency=currency)
        facts = []
        for column in rest[1:] if ranked else rest:
            shown = format_value(values[column], column=column, currency=currency)
            # "share 24.8%" rather than "share % 24.8%".
            label = column.removesuffix(" %") if shown.endswith("%") else column
            facts.append(f"{escape(label)} <b>{escape(shown)}</b>")
        cards.append(f"<b>{escape(title)}</b>\n" + " · ".join(facts))
    return "\n".join(cards)


def _table_document(table: Table, stem: str, number: int) -> DocumentMessage:
    name = f"{safe_filename(stem)}-{number}.csv"
    caption = table.caption or "The whole table"
    return DocumentMessage(name, table_csv(table), caption_html(caption))


def _chart_messages(report: Report) -> list[Message]:
    photos = [PhotoMessage(chart.png, caption_html(chart.caption)) for chart in report.charts]
    if len(photos) == 1:
        return photos
    return [
        AlbumMessage(photos[start : start + ALBUM_LIMIT])
        for start in range(0, len(photos), ALBUM_LIMIT)
    ]


def _document(file: Attachment) -> DocumentMessage:
    return DocumentMessage(file.filename, file.data, caption_html(file.caption))


def caption_html(text: str, *, limit: int = CAPTION_LIMIT) -> str:
    """A plain caption escaped and cut so that it stays under Telegram's caption limit."""
    escaped = escape(text)
    if telegram_length(escaped) <= limit:
        return escaped
    cut = len(text)
    while cut > 0 and telegram_length(escaped) > limit:
        cut -= max(1, (telegram_length(escaped) - limit) // 2)
        escaped = escape(text[:cut].rstrip() + "…")
    return escaped


def telegram_length(text: str) -> int:
    """Length as Telegram counts it, in UTF-16 code units (an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def pack_blocks(blocks: list[str], *, limit: int = TEXT_LIMIT) -> list[str]:
    """Join well-formed HTML blocks into messages under `limit`, splitting big blocks."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        joined = f"{current}\n\n{block}" if current else block
        if telegram_length(joined) <= limit:
            current = joined
            continue
        if current:
            messages.append(current)
        pieces = split_html(block, limit=limit)
        messages.extend(pieces[:-1])
        current = pieces[-1] if pieces else ""
    if current:
        messages.append(current)
    return messages


_TOKEN = re.compile(r"<[^>]*>|&[#A-Za-z0-9]+;|[^<&]+|[<&]")
_TAG = re.compile(r"<(/?)([A-Za-z0-9-]+)")


def split_html(text: str, *, limit: int = TEXT_LIMIT) -> list[str]:
    """Split HTML into pieces under `limit`; tags open at a cut are closed and reopened.

    Cuts fall at a line break where possible, else at a space, never inside a tag or an
    entity such as `&amp;`.
    """
    splitter = _Splitter(limit)
    for token in _TOKEN.findall(text):
        splitter.add(token)
    return splitter.finish()


class _Splitter:
    """Feeds tokens into pieces, keeping the stack of open tags to close and reopen."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[str] = []
        self.stack: list[tuple[str, str]] = []  # (tag name, opening tag text)
        self.current = ""

    def add(self, token: str) -> None:
        tag = _TAG.match(token) if token.startswith("<") and len(token) > 1 else None
        atomic = tag is not None or token.startswith("&")
        while telegram_length(token) > self.room():
            empty = self.current == _openers(self.stack)
            if not atomic and self.room() > 0:
                head, token = _cut_text(token, self.room())
                self.current += head
                empty = empty and not head
            if empty:
                raise ValueError(f"a limit of {self.limit} is too small for this markup")
            self.flush()
        self.current += token
        if tag is not None:
            _track(self.stack, tag, token)

    def room(self) -> int:
        used = telegram_length(self.current) + telegram_length(_closers(self.stack))
        return self.limit - used

    def flush(self) -> None:
        """End the piece, at its last line break if that is not far back and outside tags."""
        openers = _openers(self.stack)
        cut = self.current.rfind("\n")
        floor = max(self.current.rfind(">"), len(openers) - 1)
        carry = ""
        piece = self.current
        if cut > floor and telegram_length(self.current[cut:]) < self.limit // 3:
            piece, carry = self.current[:cut], self.current[cut + 1 :]
        self.pieces.append(piece + _closers(self.stack))
        self.current = openers + carry

    def finish(self) -> list[str]:
        if _visible(self.current):
            self.pieces.append(self.current + _closers(self.stack))
        return [piece for piece in self.pieces if _visible(piece)]


def _visible(markup: str) -> str:
    return re.sub(r"<[^>]*>", "", markup).strip()


def _track(stack: list[tuple[str, str]], tag: re.Match[str], token: str) -> None:
    closing, name = tag.group(1), tag.group(2).lower()
    if not closing:
        stack.append((name, token))
        return
    for index in range(len(stack) - 1, -1, -1):
        if stack[index][0] == name:
            del stack[index:]
            return


def _openers(stack: list[tuple[str, str]]) -> str:
    return "".join(opening for _, opening in stack)


def _closers(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _cut_text(text: str, room: int) -> tuple[str, str]:
    """Cut plain text to fit `room`, preferring a line break, then a space."""
    end = room
    while end > 0 and telegram_length(text[:end]) > room:
        end -= 1
    head = text[:end]
    for separator in ("\n", " "):
        position = head.rfind(separator)
        if position > end // 2:
            return text[: position + 1], text[position + 1 :]
    return head, text[end:]


# Terminal --------------------------------------------------------------------------------


def render_terminal(reply: Reply, *, out_dir: Path, width: int = 100) -> str:
    """Render a reply as terminal text; charts and files are saved and their paths printed."""
    lines: list[str] = []
    if reply.text:
        lines.append(("! " if reply.error else "") + reply.text)
    if reply.hint:
        lines.append(f"  {reply.hint}")
    report = reply.report
    saved: list[tuple[Path, str]] = []
    if report is not None:
        lines.extend(_terminal_report(report, width=width))
        saved.extend(_save_report_files(report, out_dir, reply.tool or report.title))
    saved.extend((save_file(file, out_dir), file.caption) for file in reply.files)
    for path, caption in saved:
        lines.append(f"saved {path}" + (f"  ({caption})" if caption else ""))
    for number, button in enumerate(reply.buttons, start=1):
        lines.append(f"  [{number}] {button.label}  ({button.command})")
    return "\n".join(lines)


def _terminal_report(report: Report, *, width: int) -> list[str]:
    lines = ["", f"== {report.title} =="]
    if report.text:
        lines.append(report.text)
    currency = str(report.facts.get("currency", ""))
    for table in report.tables:
        fitted = fit_table(table.frame, width=width, rows=TERMINAL_ROWS, currency=currency)
        lines.extend(["", table.caption] if table.caption else [""])
        lines.append(fitted.text)
        if not fitted.complete:
            lines.append(f"({fitted.note()})")
    return lines


def _save_report_files(report: Report, out_dir: Path, stem: str) -> list[tuple[Path, str]]:
    stem = safe_filename(stem)
    saved = []
    for number, chart in enumerate(report.charts, start=1):
        path = _unique_write(out_dir, f"{stem}-chart{number}.png", chart.png)
        saved.append((path, chart.caption))
    for number, table in enumerate(report.tables, start=1):
        if len(table.frame) > TERMINAL_ROWS:
            path = _unique_write(out_dir, f"{stem}-{number}.csv", table_csv(table))
            saved.append((path, table.caption or "the whole table"))
    saved.extend((save_file(file, out_dir), file.caption) for file in report.files)
    return saved


def save_file(file: Attachment, out_dir: Path) -> Path:
    return _unique_write(out_dir, safe_filename(file.filename), file.data)


def _unique_write(out_dir: Path, name: str, data: bytes) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    stem, suffix, number = path.stem, path.suffix, 2
    while path.exists():
        path = out_dir / f"{stem}-{number}{suffix}"
        number += 1
    path.write_bytes(data)
    return path
