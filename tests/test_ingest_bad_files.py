"""Bad uploads get a specific answer and store nothing; limits; all-or-nothing; the CLI."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.datasets import list_datasets
from storage.demo import write_demo_csv
from storage.errors import BadFileError, FileTooLargeError
from storage.ingest import ingest_path
from storage.store import open_store

REPO = Path(__file__).resolve().parents[1]
GOOD = "order_id,product,qty,price\n1,tea,2,3.5\n2,mug,1,9.0\n"


def _nothing_stored(engine) -> bool:
    with engine.connect() as connection:
        tables = connection.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT IN "
                "('datasets','chat_settings','subscriptions','run_log','alembic_version')"
            )
        ).all()
    return not tables and not list_datasets(engine, 1)


def _zip_bomb_xlsx(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (64 << 20))


def _make(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "upload.csv"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "blank":
        path.write_text("\n\n  \n")
    elif case == "header-only":
        path.write_text("order_id,product,qty,price\n")
    elif case == "png-renamed":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    elif case == "pdf-renamed":
        path.write_bytes(b"%PDF-1.7\n" + os.urandom(200))
    elif case == "binary":
        path.write_bytes(b"abc,def\n" + bytes(range(256)) * 4)
    elif case == "ragged":
        path.write_text("order_id,product,qty,price\n1,tea,2,3.5\n2,mug,1,9.0,extra\n")
    elif case == "no-usable-column":
        path.write_text("note,comment\nhello,world\nfoo,bar\n")
    elif case == "xlsx-zip-bomb":
        path = tmp_path / "upload.xlsx"
        _zip_bomb_xlsx(path)
    elif case == "zip-with-two-files":
        path = tmp_path / "upload.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.csv", GOOD)
            archive.writestr("b.csv", GOOD)
    elif case == "unsupported-type":
        path = tmp_path / "upload.json"
        path.write_text('{"orders": []}')
    elif case == "damaged-xlsx":
        path = tmp_path / "upload.xlsx"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("[Content_Types].xml", "not xml")
            archive.writestr("xl/workbook.xml", "not xml")
    return path


BAD = {
    "empty": "is empty",
    "blank": "is empty",
    "header-only": "no rows of data",
    "png-renamed": "PNG image",
    "pdf-renamed": "PDF document",
    "binary": "binary file",
    "ragged": "ragged rows",
    "no-usable-column": "No column in this file is usable",
    "xlsx-zip-bomb": "zip bomb",
    "zip-with-two-files": "holds 2 files",
    "unsupported-type": "cannot read .json",
    "damaged-xlsx": "damaged or unsupported Excel",
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_file_is_refused_and_nothing_is_stored(engine, settings, tmp_path, case) -> None:
    path = _make(tmp_path, case)
    with pytest.raises(BadFileError, match=BAD[case]) as caught:
        ingest_path(engine, path, chat_id=1, settings=settings)
    assert caught.value.hint  # every refusal says what to do
    assert _nothing_stored(engine)


def test_file_over_the_size_limit_is_refused_before_reading(engine, settings, tmp_path) -> None:
    small = settings.model_copy(update={"max_upload_mb": 0.001})
    path = tmp_path / "big.csv"
    path.write_text(GOOD + "3,cup,1,2.0\n" * 200)
    with pytest.raises(FileTooLargeError, match="over the upload limit") as caught:
        ingest_path(engine, path, chat_id=1, settings=small)
    assert "MARKETBOT_MAX_UPLOAD_MB" in str(caught.value)
    assert _nothing_stored(engine)


def test_gzip_that_unpacks_over_the_limit_is_refused(engine, settings, tmp_path) -> None:
    small = settings.model_copy(update={"max_upload_mb": 0.01})
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress((GOOD + "3,cup,1,2.0\n" * 5000).encode()))
    with pytest.raises(FileTooLargeError, match="MARKETBOT_MAX_UPLOAD_MB"):
        ingest_path(engine, path, chat_id=1, settings=small)
    assert _nothing_stored(engine)


def test_too_many_rows_is_refused_and_rolled_back(engine, settings, tmp_path) -> None:
    few = settings.model_copy(update={"max_rows": 100})
    path = tmp_path / "rows.csv"
    path.write_text("order_id,product,qty,price\n" + "".join(f"{i},tea,1,2\n" for i in range(500)))
    with pytest.raises(FileTooLargeError, match="more than 100 rows"):
        ingest_path(engine, path, chat_id=1, settings=few)
    assert _nothing_stored(engine)


KILLER = """
import os, signal, sys
from storage import reader, writer
from storage.ingest import ingest_path
from storage.settings import Settings
from storage.store import open_store

reader.BLOCK_BYTES = 64 * 1024  # many chunks, so the kill lands in the middle
original = writer.TableWriter.insert
calls = []

def insert(self, rows):
    original(self, rows)
    calls.append(len(rows))
    if len(calls) == 3:
        print("killing after", sum(calls), "rows", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

writer.TableWriter.insert = insert
settings = Settings(_env_file=None, data_dir=sys.argv[1])
ingest_path(open_store(settings), sys.argv[2], chat_id=1, settings=settings)
"""


def test_killed_ingest_leaves_no_partial_dataset(settings, tmp_path) -> None:
    orders = write_demo_csv(tmp_path / "orders.csv", rows=20_000, seed=3)
    child = subprocess.run(
        [sys.executable, "-c", KILLER, str(settings.data_dir), str(orders)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.returncode == -9, child.stderr
    assert "killing after" in child.stdout

    engine = open_store(settings)
    try:
        assert _nothing_stored(engine)
        # The store is healthy: the same file loads whole afterwards.
        summary = ingest_path(engine, orders, chat_id=1, settings=settings)
        assert summary.rows_read == 20_000
    finally:
        engine.dispose()


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TELEGRAM_BOT_TOKEN", "DATABASE_URL"}
    }
    env.update(PYTHONPATH=str(REPO), MARKETBOT_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_ingest_prints_the_summary(tmp_path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text("InvoiceNo,Description,Quantity,UnitPrice\n1,Tea,2,3.5\n2,Mug,1,9.0\n")
    done = _cli(
        ["ingest", str(path), "--name", "spring", "--chat", "5", "--map", "product=Description"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Stored 'spring' (orders): 2 rows kept of 2 read." in done.stdout
    assert "  Description: product (text)" in done.stdout


def test_cli_ingest_refusal_exits_non_zero_with_the_reason(tmp_path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    done = _cli(["ingest", str(path), "--name", "x"], tmp_path)
    assert done.returncode == 1
    assert "refused: empty.csv is empty" in done.stderr
    bad_role = _cli(["ingest", str(path), "--map", "colour=Description"], tmp_path)
    assert bad_role.returncode == 1 and "not a column role" in bad_role.stderr
