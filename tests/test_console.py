"""`marketbot shell` driven through a pipe, the way a script would use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fake_telegram import marketbot_environment

from storage.demo import write_demo_csv
from storage.settings import Settings
from storage.store import open_store, store_frame

MARKETBOT = Path(sys.executable).with_name("marketbot")


def shell(data_dir: Path, script: str, *args: str, timeout: float = 120) -> str:
    """Run the console with `script` on standard input; return what it printed."""
    env = marketbot_environment(MARKETBOT_DATA_DIR=str(data_dir), COLUMNS="100")
    done = subprocess.run(
        [str(MARKETBOT), "shell", *args],
        input=script,
        capture_output=True,
        text=True,
        cwd=data_dir.parent,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


def test_scripted_upload_then_describe(data_dir, tmp_path):
    orders = write_demo_csv(tmp_path / "orders.csv", rows=3_000, seed=5)
    out = shell(data_dir, f":upload {orders}\n/describe\n/datasets\n")
    assert "rows" in out
    assert "orders" in out and "(active)" in out
    saved = [line.split()[1] for line in out.splitlines() if line.startswith("saved ")]
    assert saved, out
    assert all(Path(path).is_file() for path in saved)
    assert any(path.endswith(".png") for path in saved)
    # Log lines stay out of the conversation and go to a file.
    assert " INFO " not in out
    assert "tool=describe chat=1" in (data_dir / "console.log").read_text()


def test_same_commands_and_errors_as_the_bot_until_quit(data_dir):
    script = "/help\n/segment k=99\n/segmnt\nhello there\n:upload /no/such.csv\n:quit\n/datasets\n"
    out = shell(data_dir, script)
    assert "/forget — " in out and "/segment — " in out
    assert "! Bad value for k: '99'" in out and "Usage: /segment" in out
    assert "Did you mean /segment?" in out
    assert "I did not understand that." in out
    assert "! There is no file at /no/such.csv." in out
    assert "no data yet" not in out  # nothing is read after :quit


def test_buttons_are_pressed_by_number_and_demo_data_only_fills_an_empty_chat(data_dir):
    settings = Settings(_env_file=None, data_dir=data_dir)
    engine = open_store(settings)
    frame = pd.DataFrame({"order": ["1", "2"], "item": ["tea", "milk"]})
    roles = {"order_id": "order", "product": "item"}
    for name in ("spring", "summer"):
        store_frame(engine, frame, chat_id=5, name=name, roles=roles, kind="baskets")
    engine.dispose()

    out = shell(data_dir, "/datasets\n:press 1\n/datasets\n", "--chat", "5", "--demo")
    assert "Loading demo data" not in out
    assert "[1] Use spring  (/use spring)" in out
    assert "you> /use spring" in out and "Now using spring" in out
    assert "spring — 2 rows, baskets (active)" in out


def test_demo_loads_demo_data_into_an_empty_chat(data_dir):
    out = shell(data_dir, "/datasets\n", "--demo", timeout=180)
    assert "Loading demo data" in out and "demo — " in out
