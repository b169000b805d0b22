"""Shared fixtures: settings pointing at a temporary data directory, and an open store."""

from __future__ import annotations

import pytest

from storage.settings import Settings
from storage.store import open_store


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    for name in ("TELEGRAM_BOT_TOKEN", "DATABASE_URL", "ALLOWED_USER_IDS", "ALLOWED_CHAT_IDS"):
        monkeypatch.delenv(name, raising=False)
    return Settings(_env_file=None, data_dir=tmp_path / "data")


@pytest.fixture
def engine(settings):
    engine = open_store(settings)
    yield engine
    engine.dispose()
