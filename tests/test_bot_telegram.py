"""Pieces of the Telegram channel that are quicker to check without a server."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from bot import telegram_app
from bot.reply import Button
from bot.telegram_app import Status, TelegramChannel
from tools.base import BaseTool, Report
from tools.registry import Registry


class RecordingBot:
    """Just the Bot methods `Status` calls, recording them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def send_chat_action(self, chat_id: int, action: str) -> None:
        self.calls.append(("action", action))

    async def send_message(self, chat_id: int, text: str, **options: object) -> SimpleNamespace:
        self.calls.append(("send", text))
        return SimpleNamespace(message_id=7)

    async def edit_message_text(self, text: str, **options: object) -> None:
        self.calls.append(("edit", text))


class ShopTool(BaseTool):
    name = "shop_kpis"
    summary = "KPIs"

    def run(self, dataset, params) -> Report:
        return Report(title="kpis")


class BadlyNamedTool(ShopTool):
    name = "Shop-KPIs"


@pytest.fixture
def channel(settings):
    settings = settings.model_copy(
        update={"telegram_api_base_url": "http://127.0.0.1:9/bot", "allowed_user_ids": [5]}
    )
    channel = TelegramChannel(settings, registry=Registry([ShopTool(), BadlyNamedTool()]))
    yield channel
    channel.runner.close()
    channel.engine.dispose()


async def test_fast_requests_send_no_status_message(monkeypatch):
    bot = RecordingBot()
    status = Status(bot, 1, action="typing")
    await status.step("running /segment")
    await asyncio.sleep(0)
    await status.stop()
    assert status.message_id is None
    assert ("send", status._text()) not in bot.calls


async def test_slow_requests_get_a_status_message_edited_as_steps_finish(monkeypatch):
    monkeypatch.setattr(telegram_app, "STATUS_DELAY_S", 0.05)
    bot = RecordingBot()
    status = Status(bot, 1, action="typing")
    await status.step("downloading <the> file")
    await asyncio.sleep(0.15)
    await status.step("reading orders.csv")
    await status.stop()
    assert bot.calls[0] == ("action", "typing")
    assert bot.calls[1] == ("send", "<b>Working…</b>\n⏳ downloading &lt;the&gt; file")
    assert bot.calls[2] == (
        "edit",
        "<b>Working…</b>\n✓ downloading &lt;the&gt; file\n⏳ reading orders.csv",
    )
    assert status.message_id == 7


def test_menu_lists_builtins_and_valid_tool_names(channel):
    names = [command.command for command in channel._menu()]
    assert names[:3] == ["start", "help", "datasets"]
    assert "shop_kpis" in names and "Shop-KPIs" not in names


def test_long_button_commands_are_kept_behind_a_short_token(channel):
    short = channel._callback_data("/segment 4")
    assert short == "/segment 4"
    command = "/use " + "a-very-long-dataset-name-" * 4
    token = channel._callback_data(command)
    assert len(token.encode()) <= 64 and channel._button_commands[token] == command
    keyboard = channel._keyboard([Button("a", "/help"), Button("b", "/help"), Button("c", "/x")])
    assert [len(row) for row in keyboard.inline_keyboard] == [2, 1]


def test_only_allowed_users_and_chats(channel):
    assert channel._allowed(5, 5)
    assert not channel._allowed(6, 6)
    opened = channel.settings.model_copy(update={"allowed_chat_ids": [-100]})
    channel.settings = opened
    assert channel._allowed(6, -100) and not channel._allowed(6, -101)
    channel.settings = opened.model_copy(update={"allow_everyone": True})
    assert channel._allowed(6, 6)


def test_cloud_servers_cap_downloads_and_local_ones_do_not(channel, settings):
    assert channel.download_limit is None
    cloud = TelegramChannel(settings, registry=Registry([ShopTool()]))
    try:
        assert cloud.download_limit == 20 * 1024 * 1024
    finally:
        cloud.runner.close()
        cloud.engine.dispose()
