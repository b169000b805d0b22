"""Settings: defaults, the environment and `.env`, and messages that name a wrong setting."""

from __future__ import annotations

import pytest

from storage.settings import Settings, SettingsError, load_settings

_NAMES = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE_URL",
    "TELEGRAM_API_FILE_URL",
    "DATABASE_URL",
    "MARKETBOT_DATA_DIR",
    "ALLOWED_USER_IDS",
    "ALLOWED_CHAT_IDS",
    "MARKETBOT_TIMEZONE",
    "MARKETBOT_MAX_UPLOAD_MB",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in _NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_example_file_lists_every_setting_and_loads_as_defaults(request):
    example = request.config.rootpath / ".env.example"
    text = example.read_text()
    for name in _NAMES:
        assert f"\n{name}=" in text, name
    loaded = Settings(_env_file=example)
    assert loaded.telegram_bot_token is None
    assert loaded.allowed_user_ids == []
    assert loaded.timezone == "UTC"


def test_comma_lists_and_derived_urls(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLOWED_USER_IDS", "42, 7 ,1001")
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081/bot")
    monkeypatch.setenv("MARKETBOT_DATA_DIR", str(tmp_path / "d"))
    loaded = load_settings()
    assert loaded.allowed_user_ids == [42, 7, 1001]
    assert loaded.file_url == "http://127.0.0.1:8081/file/bot"
    assert loaded.db_url == f"sqlite:///{tmp_path / 'd' / 'marketbot.db'}"


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("ALLOWED_CHAT_IDS=-100123\nMARKETBOT_TIMEZONE=Asia/Shanghai\n")
    loaded = load_settings()
    assert loaded.allowed_chat_ids == [-100123]
    assert loaded.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MARKETBOT_TIMEZONE", "Mars/Olympus"),
        ("ALLOWED_USER_IDS", "42,bob"),
        ("MARKETBOT_MAX_UPLOAD_MB", "-5"),
    ],
    ids=["time-zone", "user-id", "upload-limit"],
)
def test_a_wrong_value_names_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
