"""Writing an upload into an SQLite file through the ADBC driver, from a child process.

The ADBC SQLite driver binds Arrow columns in C, so cleaned chunks reach SQLite without
becoming Python objects: several times faster than `sqlite3.executemany`. The driver brings
its own copy of SQLite, though, and two copies of SQLite in one process do not see each
other's locks (POSIX locks belong to the process, and closing one copy's file handle drops
the other's locks), which loses writes or corrupts the file; see "multiple copies of SQLite
linked into the same application" in https://www.sqlite.org/howtocorrupt.html. So the
driver runs in a child process with nothing else open on the database, where locking
between processes works as SQLite expects, and the child inserts one chunk while this
process cleans the next.

This process keeps the transaction's logic: `transaction(engine)` yields a `BulkConnection`
that compiles the same SQLAlchemy statements the other path runs (with SQLAlchemy's own
value processing) and sends them to the child with bound values. The child says
BEGIN IMMEDIATE first and COMMIT only when told to; if this process dies, the child reads
end-of-file and rolls back, so a dataset is stored whole or not at all.

Frames on the pipes: one kind byte, an 8-byte length, the payload.

    Q  a statement, JSON {"sql", "params"}  ->  R  {"columns", "rows", "rowcount", "lastrowid"}
    B  rows for a table, Arrow IPC          (no answer; an error comes with the next answer)
    C  commit                               ->  R  {"peak_mb"}, the child's peak memory
    R  {"error": message}                   when the child failed (it has rolled back)
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, NoReturn

import pyarrow as pa

if TYPE_CHECKING:  # the child process imports only what it needs: pyarrow and the driver
    from sqlalchemy import Engine
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ClauseElement

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">cQ")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class BulkWriteError(RuntimeError):
    """The child writer failed; the transaction was rolled back."""


def supported(engine: Engine) -> bool:
    """Whether the engine's database is an SQLite file the child process can open."""
    database = engine.url.database
    return (
        engine.dialect.name == "sqlite"
        and bool(database)
        and database != ":memory:"
        and not str(database).startswith("file:")
    )


@contextmanager
def transaction(engine: Engine) -> Iterator[BulkConnection]:
    """One transaction in a child writer; committed when the block ends without error."""
    from storage.engine import SQLITE_BUSY_TIMEOUT_MS

    database = Path(str(engine.url.database)).resolve()
    connection = BulkConnection(engine.dialect, database, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()
    log.debug("writer process peak_mb=%.0f", connection.peak_mb)


class BulkConnection:
    """The parts of a SQLAlchemy connection the writer uses, carried out by the child."""

    def __init__(self, dialect: Dialect, database: Path, *, busy_timeout_ms: int) -> None:
        self.dialect = dialect
        self.peak_mb = 0.0
        self._committed = False
        paths = [_PACKAGE_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "storage.bulk", str(database), str(busy_timeout_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def execute(self, statement: ClauseElement) -> SimpleNamespace:
        """Run a Core statement or DDL element; the result has rows and the row counts."""
        from sqlalchemy.sql.compiler import SQLCompiler  # not at the top: see TYPE_CHECKING

        compiled = statement.compile(dialect=self.dialect)
        if not isinstance(compiled, SQLCompiler):  # DDL has no parameters
            return self.exec_driver_sql(compiled.string)
        values = compiled.construct_params()
        # Python-side column defaults (chat_settings.language) are filled in at execution
        # time by SQLAlchemy, so a compiled statement leaves them to us.
        for column in getattr(compiled, "insert_prefetch", ()):
            default = column.default
            values[column.key] = default.arg if default.is_scalar else default.arg(None)
        params = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            params.append(process(values[name]) if process else values[name])
        return self.exec_driver_sql(compiled.string, params)

    def exec_driver_sql(self, sql: str, params: list | None = None) -> SimpleNamespace:
        answer = self._ask(b"Q", json.dumps({"sql": sql, "params": params or []}).encode())
        names = answer["columns"]
        rows = [SimpleNamespace(**dict(zip(names, row, strict=True))) for row in answer["rows"]]
        return SimpleNamespace(
            rows=rows,
            first=lambda: rows[0] if rows else None,
            rowcount=answer["rowcount"],
            inserted_primary_key=(answer["lastrowid"],),
        )

    def ingest(self, table_name: str, batch: pa.RecordBatch) -> None:
        """Append a batch to a table whose columns have the batch's field names."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as stream:
            stream.write_batch(batch)
        name = table_name.encode()
        self._send(b"B", struct.pack(">H", len(name)) + name, sink.getvalue())

    def commit(self) -> None:
        self.peak_mb = self._ask(b"C", b"")["peak_mb"]
        self._committed = True

    def close(self) -> None:
        """End the child; without a commit before, it rolls back (and is waited for)."""
        if self._child.stdin and not self._child.stdin.closed:
            with suppress(BrokenPipeError):
                self._child.stdin.close()
        if self._child.stdout:
            self._child.stdout.close()
        if self._committed:
            # It is still checkpointing (see `serve`): reap it in the background.
            threading.Thread(target=self._child.wait, daemon=True).start()
        else:
            self._child.wait()  # the write lock is free once it has rolled back

    def _send(self, kind: bytes, payload: bytes, body: pa.Buffer | None = None) -> None:
        stdin = self._child.stdin
        assert stdin is not None
        size = len(payload) + (body.size if body is not None else 0)
        try:
            stdin.write(_HEADER.pack(kind, size) + payload)
            if body is not None:
                stdin.write(memoryview(body))
            stdin.flush()
        except BrokenPipeError:
            self._raise_child_error()

    def _ask(self, kind: bytes, payload: bytes) -> dict[str, Any]:
        self._send(kind, payload)
        assert self._child.stdout is not None
        frame = _read_frame(self._child.stdout)
        if frame is None:
            self._raise_child_error()
        answer = json.loads(frame[1])
        if "error" in answer:
            raise BulkWriteError(answer["error"])
        return answer

    def _raise_child_error(self) -> NoReturn:
        assert self._child.stdout is not None
        frame = _read_frame(self._child.stdout)
        message = json.loads(frame[1]).get("error", "") if frame else ""
        raise BulkWriteError(message or f"the writer process ended ({self._child.wait()})")


def _read_frame(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    kind, length = _HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return kind, payload


def _write_frame(stream: IO[bytes], kind: bytes, payload: bytes) -> None:
    stream.write(_HEADER.pack(kind, len(payload)) + payload)
    stream.flush()


# The child process -------------------------------------------------------------------


def serve(database: str, busy_timeout_ms: int, requests: IO[bytes], answers: IO[bytes]) -> int:
    """Run one transaction on `database` from the requests; commit only on request."""
    import adbc_driver_sqlite.dbapi

    connection = adbc_driver_sqlite.dbapi.connect(database, autocommit=True)
    cursor = connection.cursor()
    committed = False
    try:
        for pragma in (
            f"PRAGMA busy_timeout={busy_timeout_ms}",
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            # One helper thread for CREATE INDEX's sort: the parent is idle by then.
            "PRAGMA threads=1",
            # The checkpoint (copying the new pages from the log into the database file)
            # runs after the commit has been answered; see below.
            "PRAGMA wal_autocheckpoint=0",
            "BEGIN IMMEDIATE",
        ):
            cursor.execute(pragma)
            cursor.fetchall()
        while (frame := _read_frame(requests)) is not None:
            kind, payload = frame
            if kind == b"B":
                (size,) = struct.unpack(">H", payload[:2])
                batch = pa.ipc.open_stream(pa.py_buffer(payload)[2 + size :]).read_next_batch()
                cursor.adbc_ingest(payload[2 : 2 + size].decode(), batch, mode="append")
            elif kind == b"Q":
                _write_frame(answers, b"R", json.dumps(_query(cursor, payload)).encode())
            elif kind == b"C":
                cursor.execute("COMMIT")
                committed = True
                _write_frame(answers, b"R", json.dumps({"peak_mb": _peak_mb()}).encode())
                # The dataset is committed and visible; the upload answer need not wait for
                # the checkpoint. PASSIVE blocks no reader or writer meanwhile.
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cursor.fetchall()
                return 0
        return 1  # the parent went away before committing
    except Exception as exc:
        _write_frame(answers, b"R", json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return 1
    finally:
        if not committed:
            with suppress(Exception):  # there may be no transaction left to roll back
                cursor.execute("ROLLBACK")
        cursor.close()
        connection.close()


def _peak_mb() -> float:
    """This process's peak resident memory since it started its program.

    `ru_maxrss` would also count the parent's memory at fork time, so on Linux the peak
    comes from /proc (VmHWM, kB), which starts afresh at exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _query(cursor: Any, payload: bytes) -> dict[str, Any]:
    request = json.loads(payload)
    cursor.execute(request["sql"], request["params"] or None)
    columns = [column[0] for column in cursor.description or ()]
    rows = [list(row) for row in cursor.fetchall()] if columns else []
    cursor.execute("SELECT changes(), last_insert_rowid()")
    rowcount, lastrowid = cursor.fetchone()
    return {"columns": columns, "rows": rows, "rowcount": rowcount, "lastrowid": lastrowid}


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1], int(sys.argv[2]), sys.stdin.buffer, sys.stdout.buffer))
