"""The plugin door: built-in tools and an installed third-party tool come through one registry."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pandas as pd
import pytest

from storage.store import store_frame
from tools.base import BaseTool
from tools.params import parse_params
from tools.registry import ENTRY_POINT_GROUP, load_registry

SAMPLE = Path(__file__).parent / "plugin_sample"
BUILT_IN = {"describe", "segment", "cluster"}


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The sample package installed as a distribution: a dist-info on a sys.path entry."""
    dist_info = tmp_path / "marketbot_rowcount-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: marketbot-rowcount\nVersion: 0.1.0\n"
        "Summary: Row counts for marketbot\n",
        encoding="utf-8",
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nrowcount = marketbot_rowcount:RowCountTool\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(SAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "marketbot-rowcount"
    sys.modules.pop("marketbot_rowcount", None)
    importlib.invalidate_caches()


def test_registry_lists_every_built_in_tool() -> None:
    registry = load_registry()
    names = {tool.name for tool in registry}
    assert names >= BUILT_IN
    # Every declared tool loads: none is skipped because its module failed to import.
    declared = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert declared <= names


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_tools_declare_the_contract(name: str) -> None:
    tool = load_registry().get(name)
    assert isinstance(tool, BaseTool)
    assert tool.summary and len(tool.summary) < 256
    assert "Example" in tool.help
    assert tool.usage().startswith(f"/{name}")
    assert tool.phrases
    assert any(ord(character) > 0x2E80 for phrase in tool.phrases for character in phrase)
    for field_name, info in tool.params_model.model_fields.items():
        assert info.description, f"{name}.{field_name} has no help text"


def test_installed_plugin_is_registered_and_callable(installed_plugin, engine) -> None:
    registry = load_registry()
    assert "rowcount" in registry
    assert {tool.name for tool in registry} >= BUILT_IN | {"rowcount"}

    tool = registry.get("rowcount")
    assert tool.usage() == "/rowcount [at_least=0]"
    assert tool.summary == "How many rows the active dataset has"

    frame = pd.DataFrame({"x": range(5)})
    dataset = store_frame(engine, frame, chat_id=3, name="five", roles={}, kind="table")
    report = tool.run(dataset, parse_params(tool, ["4"]))
    assert report.text == "5 rows: enough for 4."
    assert report.facts == {"rows": 5}


def test_plugin_is_gone_when_not_installed() -> None:
    assert "rowcount" not in load_registry()
