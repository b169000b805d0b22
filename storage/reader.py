"""Reading uploads: file type, limits, encoding, delimiter, then text in chunks.

Accepted: `.csv`, `.tsv` and `.txt` with a comma, semicolon, tab or pipe between fields,
the same inside `.gz` or a `.zip` holding one file, and `.xlsx`. The type is taken from the
bytes, not the name, so a renamed image or PDF gets a clear answer instead of noise.

Every chunk comes out as Arrow string columns under cleaned-up header names; cleaning and
typing happen later. Size limits are checked before a byte is parsed: the file itself, the
size its archive declares, and (for `.gz`, whose declared size can lie) a running count.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import pyarrow as pa
import pyarrow.csv as pa_csv

from storage.errors import BadFileError, FileTooLargeError

#: Bytes looked at for the encoding, the delimiter and the header.
HEAD_BYTES = 1 << 20
#: Bytes of text parsed per chunk (about 25,000 order lines): larger chunks cost memory
#: and gave no measurable speed on a million lines.
BLOCK_BYTES = 2 << 20
#: An archive member that expands more than this is treated as a zip bomb.
MAX_COMPRESSION_RATIO = 100
#: An .xlsx may expand to this many times the upload limit (its XML is verbose).
XLSX_EXPANSION = 10
XLSX_CHUNK_ROWS = 20_000
DELIMITERS = (",", ";", "\t", "|")
TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ""}
MAX_COLUMN_NAME = 60

_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"RIFF", "a media file"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or Office file"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"SQLite format 3", "an SQLite database"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a program"),
)
_FIX_TYPE = "Export the orders as CSV (or .xlsx) and send that file."


class ByteStream(Protocol):
    """What the readers need from an upload's bytes: an open file, or an unpacking stream."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...


@dataclass(frozen=True)
class TextFormat:
    """How a text file is written."""

    encoding: str
    delimiter: str
    header: list[str]


@dataclass
class Source:
    """An upload ready to read: where its bytes come from, and what kind of table it holds."""

    path: Path
    kind: str  # "text" or "xlsx"
    open_bytes: Callable[[], ByteStream]
    limit: int


def limit_hint(what: str, limit_bytes: int) -> str:
    return (
        f"The limit is {limit_bytes / 1024 / 1024:,.0f} MB {what}. Split the file, or raise "
        "MARKETBOT_MAX_UPLOAD_MB (and MARKETBOT_MAX_ROWS) in the bot's settings."
    )


def open_source(path: Path, *, max_bytes: int) -> Source:
    """Check an upload's type and size without parsing it; raise BadFileError if unusable."""
    if not path.is_file():
        raise BadFileError(f"I cannot find the file {path.name}.", hint="Send the file again.")
    size = path.stat().st_size
    if size == 0:
        raise BadFileError(f"{path.name} is empty (0 bytes).", hint=_FIX_TYPE)
    if size > max_bytes:
        raise FileTooLargeError(
            f"{path.name} is {size / 1024 / 1024:,.1f} MB, over the upload limit.",
            hint=limit_hint("per file", max_bytes),
        )
    with path.open("rb") as handle:
        magic = handle.read(16)
    if magic.startswith(b"\x1f\x8b"):
        return _gzip_source(path, max_bytes)
    if magic.startswith(b"PK\x03\x04"):
        return _zip_source(path, max_bytes)
    _refuse_binary(path.name, magic)
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise BadFileError(f"I cannot read {path.suffix} files.", hint=_FIX_TYPE)
    return Source(path, "text", lambda: path.open("rb"), max_bytes)


def _refuse_binary(name: str, magic: bytes) -> None:
    for signature, what in _MAGIC:
        if magic.startswith(signature):
            raise BadFileError(f"{name} is {what}, not a table.", hint=_FIX_TYPE)


def _gzip_source(path: Path, max_bytes: int) -> Source:
    with path.open("rb") as handle:
        handle.seek(-4, io.SEEK_END)
        declared = int.from_bytes(handle.read(4), "little")  # the size modulo 4 GiB
    if declared > max_bytes:
        raise FileTooLargeError(
            f"{path.name} unpacks to {declared / 1024 / 1024:,.1f} MB, over the upload limit.",
            hint=limit_hint("of data", max_bytes),
        )

    def open_bytes() -> ByteStream:
        return _Capped(gzip.open(path, "rb"), max_bytes, path.name)

    return Source(path, "text", open_bytes, max_bytes)


def _zip_source(path: Path, max_bytes: int) -> Source:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not _is_clutter(info)]
            names = {info.filename for info in members}
    except zipfile.BadZipFile as exc:
        raise BadFileError(f"{path.name} is a damaged zip file.", hint=_FIX_TYPE) from exc
    if "[Content_Types].xml" in names and any(name.startswith("xl/") for name in names):
        _check_expansion(path.name, members, max_bytes * XLSX_EXPANSION)
        return Source(path, "xlsx", lambda: path.open("rb"), max_bytes)
    if len(members) != 1:
        raise BadFileError(
            f"{path.name} holds {len(members)} files; I need exactly one table in a zip.",
            hint="Zip a single CSV file, or send the CSV as it is.",
        )
    member = members[0]
    if Path(member.filename).suffix.lower() not in TEXT_SUFFIXES:
        raise BadFileError(
            f"The file inside {path.name} is {member.filename}, not a CSV.", hint=_FIX_TYPE
        )
    _check_expansion(path.name, members, max_bytes)

    def open_bytes() -> ByteStream:
        archive = zipfile.ZipFile(path)
        return _Capped(archive.open(member), max_bytes, path.name, owner=archive)

    return Source(path, "text", open_bytes, max_bytes)


def _is_clutter(info: zipfile.ZipInfo) -> bool:
    name = info.filename
    return info.is_dir() or name.startswith("__MACOSX/") or Path(name).name.startswith(".")


def _check_expansion(name: str, members: list[zipfile.ZipInfo], max_bytes: int) -> None:
    """Refuse zip bombs from the sizes the archive declares, before anything is unpacked."""
    total = sum(info.file_size for info in members)
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1 << 20 and ratio > MAX_COMPRESSION_RATIO:
            raise BadFileError(
                f"{name} looks like a zip bomb: {info.filename} would expand {ratio:,.0f} times.",
                hint="Send the table itself, saved normally.",
            )
    if total > max_bytes:
        raise FileTooLargeError(
            f"{name} unpacks to {total / 1024 / 1024:,.1f} MB, over the limit.",
            hint=limit_hint("of unpacked data", max_bytes),
        )


class _Capped(io.RawIOBase):
    """A byte stream that stops with FileTooLargeError once it passes the limit."""

    def __init__(
        self, inner: ByteStream, limit: int, name: str, owner: zipfile.ZipFile | None = None
    ) -> None:
        self._inner, self._limit, self._name, self._owner = inner, limit, name, owner
        self._seen = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = super().read(size)
        if data is None:  # RawIOBase returns None only when readinto does; ours never does
            raise BlockingIOError(f"{self._name} gave no bytes without blocking.")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self._seen += len(data)
        if self._seen > self._limit:
            raise FileTooLargeError(
                f"{self._name} unpacks to more than the limit.",
                hint=limit_hint("of data", self._limit),
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        if self._owner is not None:
            self._owner.close()
        super().close()


# Text: encoding, delimiter, header ----------------------------------------------------


def sniff_text(source: Source) -> TextFormat:
    """Find the encoding, delimiter and header from the first megabyte."""
    with source.open_bytes() as stream:
        head = stream.read(HEAD_BYTES)
    name = source.path.name
    if not head.strip():
        raise BadFileError(f"{name} is empty: it holds no text.", hint=_FIX_TYPE)
    _refuse_binary(name, head[:16])
    encoding = detect_encoding(head)
    if encoding != "utf-16" and b"\x00" in head:
        raise BadFileError(f"{name} is a binary file, not a table.", hint=_FIX_TYPE)
    text = _decode_head(head, encoding)
    lines = text.splitlines()
    # The last line may be cut off at the megabyte boundary.
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]
    delimiter = _sniff_delimiter(lines, source.path.suffix.lower())
    header = next(csv.reader(lines[:1], delimiter=delimiter), [])
    if not any(cell.strip() for cell in header):
        raise BadFileError(f"{name} has no header row.", hint="Put column names in the first row.")
    if not any(line.strip() for line in lines[1:]):
        raise BadFileError(
            f"{name} has a header but no rows of data.", hint="Export again with the orders in it."
        )
    return TextFormat(encoding, delimiter, header)


def detect_encoding(head: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, GB18030 (GBK), else cp1252."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes(head, "utf-8"):
        return "utf-8"
    # GB18030 decodes most byte soup; accept it only if the text is then mostly Chinese.
    if _decodes(head, "gb18030"):
        text = _decode_head(head, "gb18030")
        if _mostly_common_chinese(text):
            return "gb18030"
    # cp1252 leaves five bytes undefined; Latin-1 reads every byte.
    return "cp1252" if _decodes(head, "cp1252") else "latin-1"


def _mostly_common_chinese(text: str) -> bool:
    """Common Chinese characters take two bytes of 0xA1 and up in GBK; Latin-1 accents
    followed by ASCII letters (`è` then `m`) also decode as GBK, but not in that range."""
    wide = [char for char in text if ord(char) > 127]
    if not wide:
        return False
    common = 0
    for char in wide:
        encoded = char.encode("gb18030")
        common += len(encoded) == 2 and encoded[0] >= 0xA1 and encoded[1] >= 0xA1
    return common / len(wide) > 0.9


def _decodes(head: bytes, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        decoder.decode(head, final=False)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return True


def _decode_head(head: bytes, encoding: str) -> str:
    return codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)


def _sniff_delimiter(lines: list[str], suffix: str) -> str:
    """The delimiter that splits the first lines into the same number (> 1) of fields."""
    sample = [line for line in lines[:200] if line.strip()]
    best = "\t" if suffix == ".tsv" else ","
    best_score: tuple[float, int] = (0, 0)
    for delimiter in DELIMITERS:
        counts = [len(row) for row in csv.reader(sample, delimiter=delimiter)]
        if not counts or counts[0] < 2:
            continue
        consistent = sum(1 for count in counts if count == counts[0]) / len(counts)
        score = (round(consistent, 2), counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def column_names(header: list[str]) -> list[str]:
    """Header cells as usable, distinct column names (blank ones become column_N)."""
    names: list[str] = []
    seen: set[str] = set()
    for position, cell in enumerate(header, start=1):
        name = " ".join(cell.split())[:MAX_COLUMN_NAME] or f"column_{position}"
        if name.startswith("_"):
            name = name.lstrip("_") or f"column_{position}"  # "_" names are ingestion's own
        candidate, copy = name, 2
        while candidate.lower() in seen:
            candidate, copy = f"{name} ({copy})", copy + 1
        seen.add(candidate.lower())
        names.append(candidate)
    return names


# Chunks -------------------------------------------------------------------------------


@contextmanager
def text_chunks(source: Source, text_format: TextFormat) -> Iterator[Iterator[pa.RecordBatch]]:
    """Yield the file's rows as string record batches (header row skipped)."""
    names = column_names(text_format.header)
    stream = source.open_bytes()
    read = pa_csv.ReadOptions(
        encoding="utf8" if text_format.encoding.startswith("utf-8") else text_format.encoding,
        block_size=BLOCK_BYTES,
        column_names=names,
        skip_rows=1,
    )
    parse = pa_csv.ParseOptions(
        delimiter=text_format.delimiter,
        newlines_in_values=True,
        invalid_row_handler=_RaggedRow(len(names), source.path.name),
    )
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        reader = pa_csv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
        yield _batches(reader, source.path.name, parse.invalid_row_handler)
    except pa.ArrowInvalid as exc:
        raise _parse_error(source.path.name, exc) from None
    except UnicodeDecodeError as exc:
        raise BadFileError(
            f"{source.path.name} mixes text encodings: it starts as {text_format.encoding} "
            "and has bytes further on that are not.",
            hint="Save it again as UTF-8 CSV.",
        ) from exc
    finally:
        stream.close()


def _batches(reader: Any, name: str, ragged: _RaggedRow) -> Iterator[pa.RecordBatch]:
    try:
        for batch in reader:
            if ragged.problem is not None:
                raise ragged.problem
            if batch.num_rows:
                yield batch
    except pa.ArrowInvalid as exc:
        raise _parse_error(name, exc) from None
    if ragged.problem is not None:
        raise ragged.problem


class _RaggedRow:
    """Remembers the first row whose field count differs from the header's.

    Arrow cannot carry an exception out of this callback, so it skips the row and the
    reading loop raises once the batch is done.
    """

    def __init__(self, expected: int, name: str) -> None:
        self.expected, self.name = expected, name
        self.problem: BadFileError | None = None

    def __call__(self, row: Any) -> str:
        if self.problem is None:
            where = f" (row {row.number})" if row.number is not None else ""
            self.problem = BadFileError(
                f"{self.name} has ragged rows: a row{where} has {row.actual_columns} fields "
                f"where the header has {self.expected}.",
                hint="Check the delimiter and quoting (a comma inside a value needs quotes), "
                "or export the file again.",
            )
        return "skip"


def _parse_error(name: str, exc: Exception) -> BadFileError:
    # Arrow's message quotes the offending row; that is customer data and stays out.
    return BadFileError(
        f"I could not parse {name} as a table ({str(exc).split(':')[0]}).",
        hint="Export it again as CSV with one header row.",
    )


def xlsx_rows(source: Source, *, max_rows: int) -> tuple[list[str], Iterator[list[list]]]:
    """The header and row chunks of an .xlsx's first sheet, every cell as text or None."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(source.path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise BadFileError(
            f"{source.path.name} is a damaged or unsupported Excel file.", hint=_FIX_TYPE
        ) from exc
    sheet = workbook.worksheets[0]
    if sheet.max_row and sheet.max_row - 1 > max_rows:
        workbook.close()
        raise FileTooLargeError(
            f"{source.path.name} has {sheet.max_row - 1:,} rows, over the limit of {max_rows:,}.",
            hint="Split the file, or raise MARKETBOT_MAX_ROWS in the bot's settings.",
        )
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None or not any(cell is not None for cell in header):
        workbook.close()
        raise BadFileError(f"{source.path.name} has an empty first sheet.", hint=_FIX_TYPE)
    return [str(cell) if cell is not None else "" for cell in header], _xlsx_chunks(
        rows, len(header), workbook
    )


def _xlsx_chunks(rows: Iterator[tuple], width: int, workbook: Any) -> Iterator[list[list]]:
    try:
        chunk: list[list] = []
        for row in rows:
            cells = [_cell_text(cell) for cell in row[:width]]
            if not any(cell is not None for cell in cells):
                continue
            chunk.append(cells + [None] * (width - len(cells)))
            if len(chunk) >= XLSX_CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        workbook.close()


def _cell_text(cell: Any) -> str | None:
    if cell is None:
        return None
    if hasattr(cell, "strftime"):
        return cell.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def xlsx_batches(header: list[str], chunks: Iterator[list[list]]) -> Iterator[pa.RecordBatch]:
    """Spreadsheet row chunks as string record batches, like `text_chunks` gives."""
    names = column_names(header)
    for chunk in chunks:
        columns = list(zip(*chunk, strict=True))
        arrays = [pa.array(column, type=pa.string()) for column in columns]
        yield pa.RecordBatch.from_arrays(arrays, names=names)
